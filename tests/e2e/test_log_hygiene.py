"""Logs that tell, and tell no secrets: an API server restart is retried in WARNING lines without
tracebacks, and no token, Secret value or Authorization header reaches a log line.

Runs last (tests/e2e/conftest.py orders it so): by then every operator of the suite has written
its log. The tokens are the ones the suite minted: the value of every key of every runner token
Secret (gathered by a Secret watch from the first cluster test on, so those of deleted
namespaces count too) and the bearer token each operator process authenticated with (the
Authorization header it sent). Every log file is searched for each of them, as it is and
base64-encoded (a Secret's ``data`` as the API returns it). The search is shown to find a planted
token first, so an empty result means something.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from testenv.controlplane import Cluster
from testenv.operator_process import REGISTRY, OperatorProcess

from tests.e2e.conftest import MintedTokens
from tests.e2e.helpers import (
    annotate,
    create,
    runner_secret,
    session,
    wait_for,
    wait_phase,
    wait_run,
)

pytestmark = pytest.mark.cluster

StartOperator = Callable[..., OperatorProcess]
MIN_TOKEN = 16
"""Shorter values (a Secret's empty or one-word keys) would match by chance, and are no tokens."""
JWT_BEARER = re.compile(r"Bearer\s+eyJ")


def log_files(cluster: Cluster) -> list[Path]:
    """Every log of the suite: the operators' (wherever their work directory is) and, on the
    local control plane, every ``*.log`` under its work directory (the components' logs and the
    operators' started there)."""
    files = {p.log_path for p in REGISTRY}
    workdir = getattr(cluster, "workdir", None)
    if workdir is not None:
        files.update(Path(workdir).rglob("*.log"))
    return sorted(f for f in files if f.is_file())


def needles(tokens: Iterable[str]) -> dict[str, str]:
    """What to look for, each naming the token it stands for (never the token itself)."""
    out: dict[str, str] = {}
    for i, token in enumerate(sorted(t for t in tokens if len(t) >= MIN_TOKEN)):
        out[token] = f"token #{i}"
        out[base64.b64encode(token.encode()).decode()] = f"token #{i} (base64)"
    return out


def findings(files: Iterable[Path], wanted: dict[str, str]) -> list[str]:
    """``<file>:<line>: <which token>`` for each line holding one of ``wanted``, or a JWT bearer
    header; the line itself is never reported (it holds the secret)."""
    found: list[str] = []
    for path in files:
        with path.open(errors="replace") as f:
            for number, line in enumerate(f, 1):
                for needle, label in wanted.items():
                    if needle in line:
                        found.append(f"{path}:{number}: {label}")
                if JWT_BEARER.search(line):
                    found.append(f"{path}:{number}: an Authorization bearer header")
    return found


def operator_tokens() -> set[str]:
    """The bearer tokens the operator processes authenticated with (from their kubeconfigs)."""
    out: set[str] = set()
    for proc in REGISTRY:
        try:
            config = json.loads(proc.kubeconfig.read_text())
        except (FileNotFoundError, ValueError):
            continue
        for user in config.get("users") or ():
            token = (user.get("user") or {}).get("token")
            if token:
                out.add(str(token))
    return out


def test_the_search_finds_a_planted_token(tmp_path: Path) -> None:
    """The search must be able to fail: a token planted in a scratch log, raw and as base64."""
    token = "planted-0123456789abcdef-token"
    raw, encoded = tmp_path / "raw.log", tmp_path / "b64.log"
    raw.write_text('{"msg": "nothing"}\n{"msg": "x ' + token + ' y"}\n')
    encoded.write_text(base64.b64encode(token.encode()).decode() + "\n")
    header = tmp_path / "header.log"
    header.write_text("Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.e30.sig\n")
    found = findings([raw, encoded, header], needles([token]))
    assert found == [
        f"{raw}:2: token #0",
        f"{encoded}:1: token #0 (base64)",
        f"{header}:1: an Authorization bearer header",
    ]
    assert token not in "".join(found), "a finding names the token, never shows it"
    assert findings([raw], needles(["short"])) == [], "too short to be a token"


def test_no_minted_token_reaches_a_log(
    deployed: Cluster,
    namespace: str,
    start_operator: StartOperator,
    minted_tokens: MintedTokens,
) -> None:
    # A scenario of its own, so that the test has tokens to look for when it runs alone: a run
    # that completes (its token minted), in development log format, which prints every field.
    runner_secret(deployed, namespace)
    operator = start_operator(env={"DEV_MODE": "true"})
    create(deployed, session("clean-logs", namespace))
    wait_phase(deployed, namespace, "clean-logs", "Completed", timeout=60)
    ours = f"{namespace}/ambient-runner-token-clean-logs"
    wait_for("the session's token Secret seen", lambda: ours in minted_tokens.snapshot())
    operator.stop()

    seen = minted_tokens.snapshot()
    tokens = {v for values in seen.values() for v in values} | operator_tokens()
    wanted = needles(tokens)
    assert len(wanted) >= 6, "the session's token and agui-token, and the operator's bearer token"
    files = log_files(deployed)
    assert operator.log_path in files
    assert operator.log_text(), "the operator wrote its log"
    assert findings(files, wanted) == []


def test_an_api_server_restart_is_retried_in_warnings_without_tracebacks(
    deployed: Cluster, namespace: str, start_operator: StartOperator
) -> None:
    """The API server goes away under a running operator and comes back: what fails meanwhile
    (refused connections, cut watches, a 403 while its authorizer warms up) is retried and told
    in WARNING lines with the retry's delay; nothing is logged with a traceback, and the operator
    carries on (a session created after the restart completes)."""
    restart = getattr(deployed, "restart_apiserver", None)
    if restart is None:
        pytest.skip("needs the local control plane")
    runner_secret(deployed, namespace)
    operator = start_operator()
    create(deployed, session("before", namespace, outcome="run-forever"))
    wait_phase(deployed, namespace, "before", "Running", timeout=60)
    offset = len(operator.log_text())
    restart()
    annotate(deployed, namespace, "before", "ambient-code.io/desired-phase=Stopped")
    wait_phase(deployed, namespace, "before", "Stopped", timeout=90)
    create(deployed, session("after", namespace))
    wait_run(deployed, namespace, "after", 1, "Completed", timeout=90)
    assert operator.alive
    log = operator.log_text()[offset:]
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert "Traceback" not in log, "an expected failure was logged with a traceback"
    assert not [line for line in lines if line.get("level") in ("error", "critical")], log
    warnings = [line for line in lines if line.get("level") == "warning"]
    assert warnings, "the restart went unnoticed: nothing failed, nothing was retried"
    assert all("retrying in" in str(w.get("msg")) for w in warnings), warnings
