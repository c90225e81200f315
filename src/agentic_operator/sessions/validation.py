"""Spec validation the CRD schema cannot fully express (or an older CRD may have let through).

The reconciler calls :func:`validate_session` before building anything. A non-empty result marks
the session Failed with reason ``InvalidSpec`` and the joined messages: a bad spec is the user's to
fix, so it must neither crash-loop the operator nor be retried with backoff.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import orjson

from agentic_operator.kube.resources import Obj
from agentic_operator.sessions import bounds
from agentic_operator.sessions.model import service_name

MAX_SESSION_NAME: Final = 63 - len(service_name(""))
"""55: the AG-UI Service ``session-<name>`` must be a DNS-1035 label of at most 63 characters
(stricter than the Job's ``<name>-job``, whose name becomes the 63-character ``job-name`` label)."""

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_TEMPERATURE: Final = bounds.MAX_TEMPERATURE

URL_SCHEMES: Final = ("https", "http", "ssh")
"""Schemes a repository or workflow URL may have; the only other form is scp-like
``user@host:path``. Anything else (``file://``, a local path, git's ``ext::`` transport, an
argument such as ``-u...``) would let a session's author make the runner read local files or run
commands."""
_SCP_LIKE = re.compile(r"^[A-Za-z0-9._][A-Za-z0-9._-]*@([A-Za-z0-9][A-Za-z0-9.-]*):(.+)$")
_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)$")
_URL_FORMS = (
    r"(https?|ssh)://[^\s/?#]+/\S+|[A-Za-z0-9._][A-Za-z0-9._-]*@[A-Za-z0-9][A-Za-z0-9.-]*:\S+"
)
REPO_URL_PATTERN: Final = f"^({_URL_FORMS})$"
"""The CRD's ``pattern`` for ``repos[].url``: the forms above, with a host, without whitespace.
The rest of :func:`url_problem` (ports, credentials, host syntax) is checked here only."""
WORKFLOW_URL_PATTERN: Final = f"^({_URL_FORMS})?$"
"""The same for ``activeWorkflow.gitUrl``, which may also be empty (no workflow)."""


@dataclass(frozen=True)
class FieldError:
    """One problem, addressed by its JSON path (``spec.repos[0].url``)."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def validate_session(session: Obj) -> list[FieldError]:
    """All problems found in the session's name and spec (empty list when valid)."""
    errors: list[FieldError] = []
    _check_name(session, errors)
    spec = session.get("spec")
    if spec is None:
        return errors
    if not isinstance(spec, dict):
        errors.append(FieldError("spec", "must be an object"))
        return errors

    for key in ("interactive", "autoPushOnComplete"):
        if key in spec and not isinstance(spec[key], bool):
            errors.append(FieldError(f"spec.{key}", "must be a boolean"))
    for key in ("initialPrompt", "displayName", "mainRepoName"):
        if key in spec and not isinstance(spec[key], str):
            errors.append(FieldError(f"spec.{key}", "must be a string"))

    _check_int(spec, "timeout", "spec.timeout", 1, bounds.MAX_SECONDS, errors)
    _check_int(spec, "inactivityTimeout", "spec.inactivityTimeout", 0, bounds.MAX_SECONDS, errors)
    _check_repos(spec, errors)
    _check_main_repo_index(spec, errors)
    _check_llm(spec.get("llmSettings"), errors)
    _check_env(spec.get("environmentVariables"), errors)
    _check_string_fields(spec, "activeWorkflow", ("gitUrl", "branch", "path"), errors)
    workflow = spec.get("activeWorkflow")
    # An empty gitUrl means no workflow (as the runner and the live spec push read it).
    if (
        isinstance(workflow, dict)
        and isinstance(workflow.get("gitUrl"), str)
        and workflow["gitUrl"]
    ):
        _check_url(workflow["gitUrl"], "spec.activeWorkflow.gitUrl", errors)
    _check_string_fields(spec, "userContext", ("userId", "displayName"), errors)
    _check_user_lengths(spec, errors)
    return errors


def _check_name(session: Obj, errors: list[FieldError]) -> None:
    name = (session.get("metadata") or {}).get("name")
    if not isinstance(name, str) or not name:
        errors.append(FieldError("metadata.name", "is required"))
        return
    if len(name) > MAX_SESSION_NAME:
        errors.append(
            FieldError(
                "metadata.name",
                f"must be at most {MAX_SESSION_NAME} characters so that the Service "
                f"{service_name('<name>')} is a valid DNS label (got {len(name)})",
            )
        )
    elif not _DNS_LABEL.match(name):
        errors.append(
            FieldError(
                "metadata.name",
                "must consist of lower-case letters, digits and '-' (a DNS label, no dots) "
                "because derived Service and Job names are built from it",
            )
        )


def _check_repos(spec: Obj, errors: list[FieldError]) -> None:
    repos = spec.get("repos")
    if repos is None:
        return
    if not isinstance(repos, list):
        errors.append(FieldError("spec.repos", "must be a list"))
        return
    if len(repos) > bounds.MAX_REPOS:
        errors.append(FieldError("spec.repos", f"must have at most {bounds.MAX_REPOS} entries"))
    for i, repo in enumerate(repos):
        path = f"spec.repos[{i}]"
        if not isinstance(repo, dict):
            errors.append(FieldError(path, "must be an object"))
            continue
        url = repo.get("url")
        if not isinstance(url, str) or not url.strip():
            errors.append(FieldError(f"{path}.url", "is required and must be a non-empty string"))
        else:
            _check_url(url, f"{path}.url", errors)
        if "branch" in repo and not isinstance(repo["branch"], str):
            errors.append(FieldError(f"{path}.branch", "must be a string"))


def _check_main_repo_index(spec: Obj, errors: list[FieldError]) -> None:
    if "mainRepoIndex" not in spec:
        return
    idx = spec["mainRepoIndex"]
    if isinstance(idx, str) and idx.isdigit():
        idx = int(idx)
    if not _is_int(idx) or not 0 <= idx <= bounds.MAX_MAIN_REPO_INDEX:
        errors.append(
            FieldError(
                "spec.mainRepoIndex",
                f"must be an integer between 0 and {bounds.MAX_MAIN_REPO_INDEX}",
            )
        )
        return
    repos = spec.get("repos")
    if isinstance(repos, list) and idx >= len(repos):
        errors.append(
            FieldError("spec.mainRepoIndex", f"{idx} is out of range for {len(repos)} repos")
        )


def _check_llm(llm: Any, errors: list[FieldError]) -> None:
    if llm is None:
        return
    if not isinstance(llm, dict):
        errors.append(FieldError("spec.llmSettings", "must be an object"))
        return
    if "model" in llm and (not isinstance(llm["model"], str) or not llm["model"].strip()):
        errors.append(FieldError("spec.llmSettings.model", "must be a non-empty string"))
    if "temperature" in llm:
        t = llm["temperature"]
        if not isinstance(t, int | float) or isinstance(t, bool) or not math.isfinite(t):
            errors.append(FieldError("spec.llmSettings.temperature", "must be a number"))
        elif not 0 <= t <= MAX_TEMPERATURE:
            errors.append(FieldError("spec.llmSettings.temperature", "must be between 0 and 2"))
    _check_int(llm, "maxTokens", "spec.llmSettings.maxTokens", 1, bounds.MAX_TOKENS, errors)


def _check_env(env: Any, errors: list[FieldError]) -> None:
    if env is None:
        return
    if not isinstance(env, dict):
        errors.append(FieldError("spec.environmentVariables", "must be a map of string to string"))
        return
    for name, value in env.items():
        path = f"spec.environmentVariables[{name}]"
        if not isinstance(name, str) or not _ENV_NAME.match(name):
            errors.append(
                FieldError(
                    path, "is not a valid environment variable name ([A-Za-z_][A-Za-z0-9_]*)"
                )
            )
        if not isinstance(value, str):
            errors.append(FieldError(path, "value must be a string"))
    if all(isinstance(k, str) for k in env) and len(orjson.dumps(env)) > bounds.MAX_ENV_BYTES:
        errors.append(
            FieldError(
                "spec.environmentVariables",
                f"must be at most {bounds.MAX_ENV_BYTES} bytes as JSON (each entry is copied into"
                " the runner pod's three containers, and the Job must fit in etcd's 1.5 MiB)",
            )
        )


def _check_string_fields(
    spec: Obj, key: str, subkeys: tuple[str, ...], errors: list[FieldError]
) -> None:
    obj = spec.get(key)
    if obj is None:
        return
    if not isinstance(obj, dict):
        errors.append(FieldError(f"spec.{key}", "must be an object"))
        return
    for sub in subkeys:
        if sub in obj and not isinstance(obj[sub], str):
            errors.append(FieldError(f"spec.{key}.{sub}", "must be a string"))


def _check_user_lengths(spec: Obj, errors: list[FieldError]) -> None:
    """``userContext`` strings within :data:`bounds.MAX_USER_FIELD` characters."""
    user = spec.get("userContext")
    for sub in ("userId", "displayName"):
        value = user.get(sub) if isinstance(user, dict) else None
        if isinstance(value, str) and len(value) > bounds.MAX_USER_FIELD:
            errors.append(
                FieldError(
                    f"spec.userContext.{sub}",
                    f"must be at most {bounds.MAX_USER_FIELD} characters",
                )
            )


def _check_int(
    obj: Obj, key: str, path: str, low: int, high: int, errors: list[FieldError]
) -> None:
    """``obj[key]``, when present, is an integer in ``low..high``."""
    if key not in obj:
        return
    value = obj[key]
    if not _is_int(value) or not low <= value <= high:
        errors.append(FieldError(path, f"must be an integer between {low} and {high}"))


def _check_url(url: str, path: str, errors: list[FieldError]) -> None:
    problem = url_problem(url)
    if problem is not None:
        errors.append(FieldError(path, problem))


def url_problem(url: str) -> str | None:
    """Why ``url`` is not a repository URL the runner may clone (None when it is one): it must be
    ``https://``, ``http://`` or ``ssh://`` with a host and a path, or scp-like
    ``user@host:path``; no whitespace or control characters, no credentials (a password, or any
    user of an http(s) URL: they come from the integration secrets, and the URL is visible in the
    Job and its logs), at most :data:`bounds.MAX_URL_LENGTH` characters."""
    if len(url) > bounds.MAX_URL_LENGTH:
        return f"must be at most {bounds.MAX_URL_LENGTH} characters"
    if any(c.isspace() or not c.isprintable() for c in url):
        return "must not contain whitespace or control characters"
    scheme, sep, _ = url.partition("://")
    if not sep:
        scp = _SCP_LIKE.match(url)
        if scp is None or scp.group(2).startswith("-"):
            return "must be an https://, http:// or ssh:// URL, or user@host:path"
        return None
    if scheme not in URL_SCHEMES:
        return f"scheme {scheme!r} is not allowed (https, http or ssh)"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as exc:
        return f"is not a valid URL ({exc})"
    hostport = parts.netloc.rpartition("@")[2]
    host = (
        hostport.partition("]")[0] + "]" if hostport.startswith("[") else hostport.partition(":")[0]
    )
    if not host or not _HOST.match(host):
        return "must name a host"
    if parts.password is not None or (scheme != "ssh" and "@" in parts.netloc):
        return "must not contain credentials (they come from the integration secrets)"
    if parts.path in ("", "/"):
        return "must name a repository path"
    return None


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)
