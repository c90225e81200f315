"""``agentic-operator session-trigger``: what a scheduled session's CronJob pod runs.

The platform's backend turns a scheduled session into a CronJob in the project namespace whose pod
runs as the ServiceAccount ``ambient-session-trigger`` (see :mod:`.objects`) and executes
``./operator session-trigger`` from this image with no flags, configured by the environment:

* ``SESSION_TEMPLATE`` (required): JSON object, the spec of the session to create;
* ``PROJECT_NAMESPACE`` (required): where;
* ``SCHEDULED_SESSION_NAME`` (required): the CronJob's name, put on every session as the label
  ``ambient-code.io/scheduled-session-name`` (the backend lists a schedule's runs by it);
* ``REUSE_LAST_SESSION`` (optional boolean): continue the schedule's newest session instead of
  creating one: a Running one gets the template's ``initialPrompt`` as a follow-up message through
  the backend's AG-UI endpoint (authenticated with the pod's ServiceAccount token, the same
  credential the API calls use), a Stopped or Completed one is restarted (``desired-phase=Running``
  and, with a prompt, the new ``spec.initialPrompt`` and ``force-execute-prompt=true``, so the
  runner executes it instead of resuming silently). Any other phase, or no session, creates one;
* ``BACKEND_NAMESPACE`` (default ``ambient-code``) names the backend's Service,
  ``backend-service.<ns>.svc.cluster.local:8080``; ``BACKEND_API_URL`` replaces that URL whole.

A new session is named ``<prefix>-<unix seconds>``: the prefix is the template's ``displayName``
(else the schedule's name) lower-cased, every run of other characters than ``[a-z0-9]`` made one
``-``, cut to 40 characters, without a trailing ``-`` (``run`` if nothing is left). Its display
name gets the run's UTC time appended: ``Nightly (Jan 2, 2026 - 15:04:05)``. The template is
otherwise the spec as is; the API server prunes what the CRD does not know.

Every input is checked before the first API call, and each outcome is one API write (a create,
or one update retried on conflicts) or one POST, so a bad input or a failure never leaves
anything half-made. Exit codes: 0 done, 2 bad input (one line naming the variable), 1 a failure
on the way (one line saying which step).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from agentic_operator.envparse import parse_bool
from agentic_operator.kube.client import ApiClient
from agentic_operator.kube.errors import Conflict
from agentic_operator.kube.resources import AGENTIC_SESSIONS, Obj
from agentic_operator.sessions import model

LABEL_SCHEDULED_SESSION_NAME: Final = "ambient-code.io/scheduled-session-name"
LABEL_SCHEDULED_RUN: Final = "ambient-code.io/scheduled-run"
DEFAULT_BACKEND_NAMESPACE: Final = "ambient-code"
NAME_PREFIX_LENGTH: Final = 40
RESTART_ATTEMPTS: Final = 5
"""Read-modify-write rounds for a restart before a run of conflicts is reported as a failure."""
EXIT_BAD_INPUT: Final = 2
EXIT_FAILED: Final = 1

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")
REUSABLE: Final = frozenset({model.Phase.STOPPED, model.Phase.COMPLETED})


class TriggerError(Exception):
    """A failure with a one-line reason; ``code`` is the exit status."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Inputs:
    template: dict[str, Any]
    namespace: str
    schedule: str
    reuse: bool
    backend_url: str

    @property
    def prompt(self) -> str:
        value = self.template.get("initialPrompt")
        return value if isinstance(value, str) else ""


def _bad(message: str) -> TriggerError:
    return TriggerError(message, EXIT_BAD_INPUT)


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise _bad(f"{name} is required")
    return value


def _template(raw: str) -> dict[str, Any]:
    try:
        template = json.loads(raw)
    except ValueError as exc:
        raise _bad(f"SESSION_TEMPLATE is not JSON: {exc}") from None
    if not isinstance(template, dict):
        raise _bad("SESSION_TEMPLATE must be a JSON object (the session's spec)")
    for key in ("initialPrompt", "displayName"):
        if key in template and not isinstance(template[key], str):
            raise _bad(f"SESSION_TEMPLATE: {key} must be a string")
    return template


def read_inputs(env: Mapping[str, str]) -> Inputs:
    """The trigger's inputs, all checked; raises :class:`TriggerError` (code 2) naming the
    variable."""
    template = _template(_required(env, "SESSION_TEMPLATE"))
    namespace = _required(env, "PROJECT_NAMESPACE")
    if len(namespace) > 63 or not _DNS_LABEL.match(namespace):
        raise _bad(f"PROJECT_NAMESPACE: {namespace!r} is not a namespace name")
    schedule = _required(env, "SCHEDULED_SESSION_NAME")
    if len(schedule) > 63 or not _LABEL_VALUE.match(schedule):
        raise _bad(f"SCHEDULED_SESSION_NAME: {schedule!r} is not a valid label value")
    raw_reuse = env.get("REUSE_LAST_SESSION", "").strip()
    try:
        reuse = parse_bool(raw_reuse) if raw_reuse else False
    except ValueError as exc:
        raise _bad(f"REUSE_LAST_SESSION: {exc}") from None
    backend_ns = env.get("BACKEND_NAMESPACE", "").strip() or DEFAULT_BACKEND_NAMESPACE
    url = env.get("BACKEND_API_URL", "").strip()
    url = url or f"http://backend-service.{backend_ns}.svc.cluster.local:8080/api"
    if not url.startswith(("http://", "https://")):
        raise _bad(f"BACKEND_API_URL: expected an http(s) URL, got {url!r}")
    return Inputs(template, namespace, schedule, reuse, url.rstrip("/"))


def name_prefix(text: str) -> str:
    prefix = _NOT_ALNUM.sub("-", text.lower()).lstrip("-")[:NAME_PREFIX_LENGTH].rstrip("-")
    return prefix or "run"


def display_name(base: str, now: datetime) -> str:
    at = now.astimezone(UTC)
    return f"{base} ({at:%b} {at.day}, {at:%Y - %H:%M:%S})"


def new_session(inputs: Inputs, now: datetime) -> Obj:
    """The session a run creates (see the module docstring for the naming rule)."""
    spec = dict(inputs.template)
    shown = spec.get("displayName")
    prefix = name_prefix(inputs.schedule)
    if isinstance(shown, str) and shown:
        prefix = name_prefix(shown)
        spec["displayName"] = display_name(shown, now)
    return {
        "apiVersion": AGENTIC_SESSIONS.api_version,
        "kind": AGENTIC_SESSIONS.kind,
        "metadata": {
            "name": f"{prefix}-{int(now.timestamp())}",
            "namespace": inputs.namespace,
            "labels": {LABEL_SCHEDULED_SESSION_NAME: inputs.schedule, LABEL_SCHEDULED_RUN: "true"},
        },
        "spec": spec,
    }


def newest(sessions: list[Obj]) -> Obj | None:
    """The most recently created session (ties: the later name, so the choice is stable)."""

    def key(s: Obj) -> tuple[datetime, str]:
        meta = s.get("metadata") or {}
        raw = str(meta.get("creationTimestamp") or "1970-01-01T00:00:00Z")
        return datetime.fromisoformat(raw.replace("Z", "+00:00")), str(meta.get("name", ""))

    return max(sessions, key=key, default=None)


Action = Literal["create", "follow-up", "restart", "nothing"]


def decide(latest: Obj | None, prompt: str) -> Action:
    """What reusing ``latest`` means: see the module docstring."""
    if latest is None:
        return "create"
    phase = (latest.get("status") or {}).get("phase")
    if phase == model.Phase.RUNNING:
        return "follow-up" if prompt else "nothing"
    if phase in REUSABLE:
        return "restart"
    return "create"


def restarted(session: Obj, prompt: str, now: datetime) -> Obj:
    """``session`` with the restart request (and the prompt to execute, when there is one)."""
    meta = dict(session.get("metadata") or {})
    annotations = dict(meta.get("annotations") or {})
    annotations[model.ANN_DESIRED_PHASE] = model.DESIRED_RUNNING
    annotations[model.ANN_START_REQUESTED_AT] = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {**session, "metadata": {**meta, "annotations": annotations}}
    if prompt:
        body["spec"] = {**(session.get("spec") or {}), "initialPrompt": prompt}
        annotations[model.ANN_FORCE_EXECUTE_PROMPT] = "true"
    return body


def follow_up(session_name: str, prompt: str, now: datetime) -> Obj:
    """The AG-UI run input that sends ``prompt`` to a running session as a user message."""
    return {
        "threadId": session_name,
        "runId": f"scheduled-{int(now.timestamp())}",
        "messages": [
            {
                "id": f"scheduled-msg-{int(now.timestamp() * 1_000_000_000)}",
                "role": "user",
                "content": prompt,
            }
        ],
    }


Post = Callable[[str, Obj], Awaitable[int]]
"""POST a JSON body to a URL with the pod's credentials; returns the HTTP status."""


async def run(inputs: Inputs, api: ApiClient, post: Post, now: Callable[[], datetime]) -> str:
    """Do what the inputs ask; the one line to report. Raises :class:`TriggerError`."""
    if inputs.reuse:
        done = await _reuse(inputs, api, post, now)
        if done is not None:
            return done
    body = new_session(inputs, now())
    call = api.create(AGENTIC_SESSIONS, body, inputs.namespace)
    created = await _step("create the session", call)
    return f"created session {model.session_name(created)} in {inputs.namespace}"


async def _reuse(
    inputs: Inputs, api: ApiClient, post: Post, now: Callable[[], datetime]
) -> str | None:
    """Continue the schedule's newest session; None when a new one is to be created."""
    selector = f"{LABEL_SCHEDULED_SESSION_NAME}={inputs.schedule}"
    call = api.list(AGENTIC_SESSIONS, inputs.namespace, label_selector=selector)
    listed = await _step("list the schedule's sessions", call)
    latest = newest(list(listed.get("items") or []))
    action = decide(latest, inputs.prompt)
    if latest is None or action == "create":
        return None
    name = model.session_name(latest)
    if action == "nothing":
        return f"session {name} is running and the template has no prompt: nothing to do"
    if action == "restart":
        await _restart(inputs, api, name, now)
        return f"restarted session {name}"
    url = f"{inputs.backend_url}/projects/{inputs.namespace}/agentic-sessions/{name}/agui/run"
    sent = post(url, follow_up(name, inputs.prompt, now()))
    status = await _step(f"send the follow-up to {name}", sent)
    if status >= 400:
        raise TriggerError(f"the backend answered HTTP {status} to the follow-up for {name}")
    return f"sent the prompt to running session {name} (HTTP {status})"


async def _restart(inputs: Inputs, api: ApiClient, name: str, now: Callable[[], datetime]) -> None:
    for _ in range(RESTART_ATTEMPTS):
        current = await _step(
            f"read session {name}", api.get(AGENTIC_SESSIONS, name, inputs.namespace)
        )
        try:
            await api.replace(
                AGENTIC_SESSIONS, name, restarted(current, inputs.prompt, now()), inputs.namespace
            )
            return
        except Conflict:
            continue  # changed since the read: read again
        except Exception as exc:
            raise TriggerError(f"restart session {name}: {_one_line(exc)}") from None
    raise TriggerError(f"restart session {name}: still conflicting after {RESTART_ATTEMPTS} tries")


async def _step(what: str, call: Awaitable[Any]) -> Any:
    try:
        return await call
    except TriggerError:
        raise
    except Exception as exc:
        raise TriggerError(f"{what}: {_one_line(exc)}") from None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


USAGE: Final = """\
usage: agentic-operator session-trigger

Create, restart or continue a scheduled session, as the platform's scheduled-session CronJob
pods do (./operator session-trigger). No flags: everything comes from the environment.

environment:
  SESSION_TEMPLATE        JSON object, the spec of the session to create (required)
  PROJECT_NAMESPACE       the project namespace (required)
  SCHEDULED_SESSION_NAME  the schedule (CronJob) name, label of every run (required)
  REUSE_LAST_SESSION      true: continue the newest run (follow-up or restart) instead
  BACKEND_NAMESPACE       namespace of backend-service (default ambient-code)
  BACKEND_API_URL         the backend's /api URL, replacing the one above
  KUBECONFIG              out of a pod; in a pod the ServiceAccount is used

exit status: 0 done, 2 bad input, 1 failed (one line on stderr says why)
"""


async def session_trigger(env: Mapping[str, str], *, kubeconfig: str | None = None) -> str:
    """Read the inputs, connect with the pod's credentials, :func:`run`; the line to report."""
    import aiohttp

    from agentic_operator.kube.client import connect
    from agentic_operator.kube.config import ConfigError

    inputs = read_inputs(env)
    try:
        client = await connect(kubeconfig)
    except ConfigError as exc:
        raise TriggerError(f"cannot load Kubernetes configuration: {exc}") from None
    async with client, aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:

        async def post(url: str, body: Obj) -> int:
            headers = {"Content-Type": "application/json"}
            authorization = await client.config.authorization()
            if authorization:
                headers["Authorization"] = authorization  # the ServiceAccount token; never logged
            async with http.post(url, data=json.dumps(body), headers=headers) as response:
                return response.status

        return await run(inputs, client, post, lambda: datetime.now(UTC))
