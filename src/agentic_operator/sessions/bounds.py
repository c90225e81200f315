"""The numeric bounds of a session, and the limits of the Kubernetes API they are derived from.

One place for the numbers: the CRD schema (``deploy/crds/``) carries the same maxima, so the API
server refuses a new object at admission, and :mod:`.validation` checks them again for objects
stored before the schema had them (``tests/unit/test_crds.py`` keeps the two equal).

Facts of the Kubernetes API these rest on:

* ``authentication.k8s.io/v1`` TokenRequest: ``spec.expirationSeconds`` is an int64; the API
  server refuses a value below 600 s (ten minutes) or above 2^32 s, and when it runs with
  ``--service-account-max-token-expiration`` it grants at most that long (the token's
  ``status.expirationTimestamp`` says what was granted; the operator records that, not what it
  asked for).
* ``batch/v1`` Job ``spec.activeDeadlineSeconds``: an int64 that must be greater than 0; the Job
  controller works with it as a Go ``time.Duration`` (int64 nanoseconds, at most about 292
  years, 9223372036 s).
* Integer fields of the Kubernetes API are int32 unless they need more (the API conventions), and
  a JSON number above 2^53 is not exact in a JavaScript client such as the platform's frontend.
"""

from __future__ import annotations

from typing import Final

MAX_INT32: Final = 2**31 - 1

TOKEN_MIN_EXPIRATION: Final = 600
"""The shortest runner token the TokenRequest API grants (seconds)."""
TOKEN_MAX_EXPIRATION: Final = 2**32
"""The longest ``expirationSeconds`` the TokenRequest API accepts (seconds)."""
TOKEN_RUN_MARGIN: Final = 600
"""Seconds a runner token must outlive the longest run and its pending time."""

MAX_SECONDS: Final = MAX_INT32
"""``spec.timeout``, ``spec.inactivityTimeout`` and the project's ``inactivityTimeoutSeconds``:
at most an int32 of seconds (68 years). Such a duration plus a pending timeout and
:data:`TOKEN_RUN_MARGIN` is still a lifetime the TokenRequest API accepts, as it must be for a
token lifetime derived from it (earlier versions derived one from ``spec.timeout``: a value of
10^10 made a TokenRequest the API server refused, and the session stayed Pending)."""
MAX_TOKENS: Final = MAX_INT32
"""``spec.llmSettings.maxTokens``: an int32."""
MAX_TEMPERATURE: Final = 2.0
"""``spec.llmSettings.temperature``: 0..2, the range of the model API."""
MAX_REPOS: Final = 100
"""Entries of ``spec.repos`` (each becomes part of the runner's ``REPOS_JSON`` and a clone)."""
MAX_MAIN_REPO_INDEX: Final = MAX_REPOS - 1
MAX_URL_LENGTH: Final = 2048
"""Characters of a repository or workflow URL."""
MAX_ENV_BYTES: Final = 256 * 1024
"""Bytes of ``spec.environmentVariables`` as JSON (names and values, with their escapes): every
entry is copied into each of the runner pod's three containers (the runner, ``init-hydrate``,
``state-sync``), and the Job, like any object, must fit in the 1.5 MiB etcd stores. The fuzzed
specs found a 600 KB value that the API server admitted on the session and then refused on the
1.8 MB Job, so the session waited for its pending timeout; three copies of 256 KiB leave the
rest of the Job (the prompt, the repositories) more than half a MiB."""
MAX_USER_FIELD: Final = 1024
"""Characters of ``spec.userContext.userId`` and ``displayName``: the user id becomes the runner
ServiceAccount's ``created-by-user-id`` annotation (all annotations of an object together may
hold 256 KiB, so the fuzzed specs' 300 KB id made a ServiceAccount the API server refused and the
session waited for its pending timeout), and both reach the runner as ``USER_ID``/``USER_NAME``.
1,024 is far above any user name or id an identity provider issues."""
MAX_RUN: Final = MAX_INT32
"""``status.run`` (and ``status.sdkRestartCount``): int32 counters."""


def max_session_duration(pending_timeout: int) -> int:
    """The largest ``MAX_SESSION_DURATION`` whose runner token (the run, the pending time and
    :data:`TOKEN_RUN_MARGIN`) the TokenRequest API still accepts; also far below the Job deadline's
    limit."""
    return TOKEN_MAX_EXPIRATION - pending_timeout - TOKEN_RUN_MARGIN


def token_expiration(wanted: int) -> int:
    """``wanted`` seconds within what the TokenRequest API accepts (600 .. 2^32)."""
    return max(TOKEN_MIN_EXPIRATION, min(TOKEN_MAX_EXPIRATION, wanted))
