"""Hypothesis strategies for AgenticSessions as a hostile or careless client writes them.

A :class:`Case` is everything but the name's counter: how the name is formed (:data:`NAME_KINDS`),
the ``spec`` (any JSON value), unknown top-level fields, annotations and whether the client asks
for strict field validation. :func:`body` turns it into the object to POST, with a name made
unique by the caller's counter, so shrinking and re-runs never collide with earlier examples.

A spec is drawn valid field by field (:func:`valid_spec`) and then, in most examples, one or more
fields are replaced by a hostile value (:data:`HOSTILE_FIELDS`): numbers at and past the CRD's
maxima, negative, floats and strings where integers belong, huge and unicode strings, URLs of
every shape, environment variable names the runner cannot have or the operator sets itself, wrong
types and nulls at every level. ``TESTENV_RUNNER_OUTCOME=complete`` and a 1 s duration are set in
every map-shaped ``environmentVariables`` (a valid session then ends Completed within seconds);
the fuzz never sets other ``TESTENV_*`` names, which are the test environment's, not the
operator's.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Any, Final

from hypothesis import strategies as st

from agentic_operator.sessions import bounds

MAX = bounds.MAX_INT32
RUNNER_ENV: Final = {"TESTENV_RUNNER_OUTCOME": "complete", "TESTENV_RUNNER_DURATION": "1s"}

NAME_KINDS: Final = (
    "plain",
    "max-55",
    "over-56",
    "dns-63",
    "subdomain-253",
    "over-254",
    "dots",
    "upper",
    "underscore",
    "trailing-dash",
    "unicode",
    "generate-name",
)
"""How a case's name is formed: ``plain`` (most cases) and the limits around the 55 characters a
session name may have, the DNS rules of Kubernetes names, and ``generateName``."""

OPERATOR_ENV_NAMES: Final = (
    "AGUI_TOKEN",
    "USE_VERTEX",
    "CLAUDE_CODE_USE_VERTEX",
    "AGENTIC_SESSION_NAME",
    "AGENTIC_SESSION_NAMESPACE",
    "SESSION_ID",
    "AGUI_PORT",
    "IS_RESUME",
    "REPOS_JSON",
    "INITIAL_PROMPT",
    "LLM_MODEL",
    "LLM_TEMPERATURE",
    "BACKEND_API_URL",
    "GOOGLE_OAUTH_CLIENT_SECRET",
    "LANGFUSE_SECRET_KEY",
    "PARENT_SESSION_ID",
    "RUNNER_STATE_DIR",
    "RUNNER_TYPE",
    "WORKSPACE_PATH",
    "PATH",
    "HOME",
)
BAD_ENV_NAMES: Final = ("", "1X", "A-B", "A.B", "A=B", "A B", "É", "x\x00y", "-u", "A\nB", "日本")

HOSTILE_URLS: Final = (
    "",
    " ",
    "file:///etc/passwd",
    "/tmp/x",
    "./repo",
    "../repo",
    "not a url ://",
    "https://",
    "https:///o/r",
    "https://ex ample.com/r",
    "https://example.com/r ",
    " https://example.com/r",
    "https://example.com/r\n",
    "https://example.com/r\t",
    "https://example.com/\x00r",
    "https://example.com/r\x7f",
    "https://example.com/r\x0bx",
    "https://example.com/r\u200b",
    "https://example.com/r\u00a0x",
    "ext::sh -c touch% /tmp/pwned",
    "-uhttps://x",
    "--upload-pack=touch /tmp/x",
    "git@host:-oProxyCommand=x",
    "ssh://-oProxyCommand=x/r",
    "https://-x.example.com/r",
    "https://u:pw@example.com/o/r",
    "https://user@example.com/o/r",
    "ssh://git:pw@example.com/o/r",
    "https://example.com:99999/o/r",
    "https://example.com:abc/o/r",
    "https://example.com:0/o/r",
    "ftp://example.com/r",
    "git://example.com/r",
    "HTTPS://example.com/r",
    "https://例え.jp/r",
    "https://[::1]/r",
    "https://[::1/r",
    "https://example.com./r",
    "https://example.com/",
    "https://example.com/?q=1",
    "https://example.com/#f",
    "git@:path",
    "@host:path",
    "user@host:",
    "user@-host:path",
    "C:\\repo",
    "\\\\server\\share",
    "https://example.com/" + "a" * 2100,
)
"""URLs that must be refused, by the CRD's pattern or by validation (or, for a few, that are
valid in a surprising way, such as a path after an IPv6 host)."""
PATTERN_PASSING_URLS: Final = (
    "https://u:pw@example.com/o/r",
    "https://user@example.com/o/r",
    "ssh://git:pw@example.com/o/r",
    "https://example.com:99999/o/r",
    "https://example.com:abc/o/r",
    "https://-x.example.com/r",
    "https://example.com./r",
    "https://[::1/r",
    "https://example.com/r\x0bx",
    "https://example.com/r\u200b",
    "https://example.com/r\u00a0x",
    "git@host:-oProxyCommand=x",
    "user@-host:path",
)
"""Bad URLs of the shapes the CRD's pattern lets through (a password, a port out of range, a host
that is not one, a character RE2's ``\\S`` does not count as space): only validation refuses them,
so the session is admitted and must end Failed/InvalidSpec."""


@dataclass(frozen=True)
class Case:
    """One generated session, before its name counter is known."""

    name_kind: str
    spec: Any
    tags: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    annotations: dict[str, Any] | None = None
    strict: bool = False


def body(case: Case, serial: int, namespace: str) -> dict[str, Any]:
    """The object to POST: ``apiVersion``/``kind``, metadata with the case's name, its spec."""
    meta: dict[str, Any] = {"namespace": namespace}
    if case.name_kind == "generate-name":
        meta["generateName"] = f"fz-{serial:04d}-"
    else:
        meta["name"] = name(case.name_kind, serial)
    if case.annotations is not None:
        meta["annotations"] = case.annotations
    obj: dict[str, Any] = {
        "apiVersion": "vteam.ambient-code/v1alpha1",
        "kind": "AgenticSession",
        "metadata": meta,
        **case.extra,
    }
    if case.spec is not _ABSENT:
        obj["spec"] = case.spec
    return obj


def name(kind: str, serial: int) -> str:
    """A name of ``kind``, unique by ``serial``."""
    base = f"fz-{serial:04d}"

    def pad(n: int) -> str:
        return (base + "-" + "a" * n)[:n]

    return {
        "plain": base,
        "max-55": pad(55),
        "over-56": pad(56),
        "dns-63": pad(63),
        "subdomain-253": ".".join([pad(63)] + ["b" * 63] * 2 + ["c" * 61]),
        "over-254": pad(254),
        "dots": f"{base}.x",
        "upper": base.upper(),
        "underscore": f"{base}_x",
        "trailing-dash": f"{base}-",
        "unicode": f"{base}-é",
    }[kind]


class _Absent:
    """A spec left out of the object altogether."""

    def __repr__(self) -> str:
        return "ABSENT"


_ABSENT: Final[Any] = _Absent()


def huge(alphabet: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[str]:
    """Long strings made by repetition (Hypothesis' own text strategy would be slow to draw them):
    4 Ki to 300 K characters (300 K of a control character is 1.8 MB of JSON), ASCII or
    unicode."""
    unit = alphabet or st.text(min_size=1, max_size=8)
    sizes = st.sampled_from([4096, 4096, 65536, 65536, 300_000])
    return st.builds(lambda s, n: (s * n)[:n], unit, sizes)


def texts(*, large: bool = False) -> st.SearchStrategy[str]:
    """Short strings of any printable or unicode shape, empty included; with ``large``, a share
    of huge ones too (only where a field is drawn once, so that a body stays within the 1.5 MiB
    etcd stores)."""
    short = st.one_of(
        st.text(max_size=40),
        st.text(alphabet=string.printable, max_size=40),
        st.sampled_from(["", " ", "\n", "$(touch /tmp/x)", "'; DROP TABLE", "\u202eevil", "🙂"]),
    )
    return st.one_of(short, short, short, huge()) if large else short


def wrong_types() -> st.SearchStrategy[Any]:
    """Values of every JSON type, null included."""
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=10),
        st.lists(st.integers(), max_size=2),
        st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    )


def bad_ints(low: int, high: int) -> st.SearchStrategy[Any]:
    """Values an integer field bounded by ``low..high`` must not take (or that are only just
    inside: the bounds themselves)."""
    return st.one_of(
        st.sampled_from(
            [low - 1, low, high, high + 1, -1, 2**32, 2**53 + 1, 2**63 - 1, 2**63, 2**64, 10**30]
        ),
        st.sampled_from([1.5, float(low), float(high), 1e10, -0.0, 1e308]),
        st.sampled_from([str(low), "300", "1e3", "", "0x10", "NaN"]),
        wrong_types(),
    )


def valid_urls() -> st.SearchStrategy[str]:
    host = st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?(\.[a-z]{2,5}){0,2}\Z")
    path = st.from_regex(r"\A[A-Za-z0-9._-]{1,20}(/[A-Za-z0-9._-]{1,20}){0,2}\Z")
    return st.one_of(
        st.builds("https://{}/{}".format, host, path),
        st.builds("http://{}:8080/{}".format, host, path),
        st.builds("ssh://git@{}:22/{}".format, host, path),
        st.builds("git@{}:{}.git".format, host, path),
    )


def hostile_urls() -> st.SearchStrategy[str]:
    """Fixed hostile shapes, valid URLs spoiled (whitespace, a control character, an option
    prefix, a foreign scheme) and random text with a scheme."""
    spoil = st.sampled_from([" ", "\t", "\n", "\x00", "\x1b", "\u2028", "\u200b"])
    scheme = st.sampled_from(["file", "ext", "git", "ftp", "javascript", "HTTP", "ssh", "https"])
    return st.one_of(
        st.sampled_from(HOSTILE_URLS),
        st.builds(lambda u, c, i: u[:i] + c + u[i:], valid_urls(), spoil, st.integers(0, 30)),
        st.builds("-u{}".format, valid_urls()),
        st.builds(lambda s, rest: f"{s}://{rest}", scheme, st.text(max_size=30)),
        st.text(max_size=30),
    )


def env_names() -> st.SearchStrategy[str]:
    return st.one_of(
        st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_]{0,30}\Z").filter(
            lambda n: not n.startswith("TESTENV_")
        ),
        st.sampled_from(OPERATOR_ENV_NAMES),
    )


def env_maps() -> st.SearchStrategy[dict[str, Any]]:
    """Valid names (the operator's own among them) with any string values, one huge at most."""
    return st.one_of(
        st.dictionaries(env_names(), texts(), max_size=6),
        st.dictionaries(env_names(), texts(large=True), max_size=1),
    )


def repos(urls: st.SearchStrategy[str]) -> st.SearchStrategy[list[dict[str, Any]]]:
    repo = st.fixed_dictionaries(
        {"url": urls},
        optional={
            "branch": st.sampled_from(["main", "feature/x", "", "-b"]),
            "autoPush": st.booleans(),
        },
    )
    return st.lists(repo, max_size=3)


def valid_fields() -> dict[str, st.SearchStrategy[Any]]:
    """Each spec field with values the CRD and validation both accept."""
    return {
        "initialPrompt": texts(large=True),
        "displayName": texts(large=True),
        "interactive": st.booleans(),
        "autoPushOnComplete": st.booleans(),
        "stopOnRunFinished": st.booleans(),
        "timeout": st.one_of(st.integers(1, MAX), st.just(MAX)),
        "inactivityTimeout": st.one_of(st.integers(0, MAX), st.just(MAX)),
        "llmSettings": st.fixed_dictionaries(
            {},
            optional={
                "model": st.sampled_from(["claude-sonnet-4-6", "x", "模型"]),
                "temperature": st.one_of(st.floats(0, 2), st.sampled_from([0, 2, 2.0])),
                "maxTokens": st.one_of(st.integers(1, MAX), st.just(MAX)),
            },
        ),
        "repos": repos(valid_urls()),
        "activeWorkflow": st.fixed_dictionaries(
            {"gitUrl": st.one_of(valid_urls(), st.just(""))},
            optional={"branch": st.sampled_from(["main", "x"]), "path": texts(large=True)},
        ),
        "environmentVariables": env_maps(),
        "userContext": st.fixed_dictionaries(
            {},
            optional={
                "userId": texts(large=True),
                "displayName": texts(),
                "groups": st.lists(st.text(max_size=10), max_size=3),
            },
        ),
        "mcpServers": st.fixed_dictionaries(
            {},
            optional={
                "custom": st.dictionaries(
                    st.text(min_size=1, max_size=10), st.dictionaries(st.text(max_size=5), texts())
                ),
                "disabled": st.lists(st.text(max_size=10), max_size=3),
            },
        ),
        "mainRepoName": texts(large=True),
    }


def hostile_fields() -> dict[str, st.SearchStrategy[Any]]:
    """Each spec field with values just outside its bounds, of the wrong type, or hostile."""
    bad_names = st.dictionaries(st.sampled_from(BAD_ENV_NAMES), texts(), min_size=1, max_size=3)
    bad_values = st.dictionaries(env_names(), wrong_types(), min_size=1, max_size=3)
    return {
        "initialPrompt": wrong_types(),
        "displayName": wrong_types(),
        "interactive": wrong_types(),
        "stopOnRunFinished": wrong_types(),
        "timeout": bad_ints(1, MAX),
        "inactivityTimeout": bad_ints(0, MAX),
        "llmSettings": st.one_of(
            wrong_types(),
            st.fixed_dictionaries({"maxTokens": bad_ints(1, MAX)}),
            st.fixed_dictionaries(
                {"temperature": st.sampled_from([-0.1, 2.0000001, 3, 1e308, "0.7", None, True])}
            ),
            st.fixed_dictionaries({"model": st.one_of(wrong_types(), st.sampled_from(["", " "]))}),
        ),
        "repos": st.one_of(
            repos(hostile_urls()).filter(bool),
            st.lists(
                st.fixed_dictionaries({"url": st.sampled_from(PATTERN_PASSING_URLS)}),
                min_size=1,
                max_size=2,
            ),
            st.just([{"url": f"https://example.com/o/r{i}"} for i in range(101)]),
            st.lists(st.one_of(wrong_types(), st.just({}), st.just({"url": None})), min_size=1),
            st.lists(
                st.fixed_dictionaries({"url": valid_urls(), "branch": wrong_types()}), min_size=1
            ),
            wrong_types(),
        ),
        "mainRepoIndex": st.one_of(
            bad_ints(0, bounds.MAX_MAIN_REPO_INDEX),
            st.sampled_from(["01", "٣", " 1", "1 ", "-0", "99", 5]),
        ),
        "activeWorkflow": st.one_of(
            st.fixed_dictionaries({"gitUrl": hostile_urls()}),
            st.fixed_dictionaries({"gitUrl": wrong_types(), "path": wrong_types()}),
            wrong_types(),
        ),
        "environmentVariables": st.one_of(bad_names, bad_names, bad_values, wrong_types()),
        "userContext": st.one_of(
            wrong_types(), st.fixed_dictionaries({"userId": st.one_of(huge(), wrong_types())})
        ),
        "mcpServers": wrong_types(),
        "mainRepoName": wrong_types(),
        "unknownField": wrong_types(),
    }


def admitted_invalid_fields() -> dict[str, st.SearchStrategy[Any]]:
    """Hostile values of the shapes the CRD admits: only validation can refuse them."""
    url = st.sampled_from(PATTERN_PASSING_URLS)
    return {
        "repos": st.lists(st.fixed_dictionaries({"url": url}), min_size=1, max_size=2),
        "activeWorkflow": st.fixed_dictionaries({"gitUrl": url}),
        "environmentVariables": st.one_of(
            st.dictionaries(st.sampled_from(BAD_ENV_NAMES), texts(), min_size=1, max_size=3),
            # Admitted on the session, too big for its Job (three copies): bounds.MAX_ENV_BYTES.
            st.builds(lambda n: {"BIG": "a" * n}, st.sampled_from([300_000, 600_000])),
        ),
        "llmSettings": st.fixed_dictionaries({"model": st.sampled_from(["", " ", "\t"])}),
        "mainRepoIndex": st.sampled_from([3, "7", 99]),
    }


@st.composite
def specs(draw: st.DrawFn) -> tuple[Any, tuple[str, ...]]:
    """A spec and the tags saying what in it is hostile (``valid`` when nothing is)."""
    shape = draw(st.sampled_from(["object"] * 12 + ["absent", "null", "string", "list", "empty"]))
    if shape != "object":
        value = {"absent": _ABSENT, "null": None, "string": "x", "list": [], "empty": {}}[shape]
        return value, (f"spec:{shape}",)
    valid = valid_fields()
    keys = draw(st.lists(st.sampled_from(sorted(valid)), unique=True, max_size=8))
    spec: dict[str, Any] = {k: draw(valid[k]) for k in keys}
    # Spoiled from the whole catalogue (the CRD refuses most of it), or only with what the CRD
    # admits and validation refuses, so that both layers get their share.
    hostile = draw(st.sampled_from([hostile_fields(), hostile_fields(), admitted_invalid_fields()]))
    spoiled = draw(st.lists(st.sampled_from(sorted(hostile)), unique=True, max_size=3))
    for key in spoiled:
        spec[key] = draw(hostile[key])
    repo_list = spec.get("repos")
    if "mainRepoIndex" not in spoiled and isinstance(repo_list, list) and repo_list:
        index = draw(st.integers(0, len(repo_list) - 1))
        spec["mainRepoIndex"] = draw(st.sampled_from([index, str(index), None]))
        if spec["mainRepoIndex"] is None:
            del spec["mainRepoIndex"]
    env = spec.get("environmentVariables", {})
    if isinstance(env, dict):
        spec["environmentVariables"] = {**env, **RUNNER_ENV}
    return spec, tuple(f"{k}:hostile" for k in spoiled) or ("valid",)


def annotation_maps() -> st.SearchStrategy[dict[str, Any] | None]:
    """None mostly; else annotations the operator reads, with odd values, or a huge one."""
    return st.one_of(
        st.none(),
        st.none(),
        st.none(),
        st.fixed_dictionaries(
            {},
            optional={
                "vteam.ambient-code/parent-session-id": texts(large=True),
                "ambient-code.io/runner-token-secret": st.sampled_from(
                    ["UPPER", "../x", "a" * 300, "", "x.y"]
                ),
                "example.com/note": st.one_of(texts(), wrong_types()),
            },
        ),
    )


@st.composite
def cases(draw: st.DrawFn) -> Case:
    """A whole session: mostly plain names, a share of every other name kind."""
    name_kind = draw(st.sampled_from(("plain",) * 24 + NAME_KINDS))
    spec, tags = draw(specs())
    extra = draw(
        st.one_of(
            st.just({}),
            st.just({}),
            st.fixed_dictionaries({"unknownTop": wrong_types()}),
            st.fixed_dictionaries({"status": st.just({"phase": "Completed"})}),
        )
    )
    return Case(
        name_kind=name_kind,
        spec=spec,
        tags=(*tags, f"name:{name_kind}"),
        extra=extra,
        annotations=draw(annotation_maps()),
        strict=draw(st.sampled_from([False, False, False, True])),
    )
