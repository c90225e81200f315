"""The README's `make run` path: its own control plane, the operator, the sample session Running,
then stopped by the demo as the platform's backend stops one, to Stopped."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
STOPPED = "==> session hello-world: Stopped"


def test_make_run_follows_the_sample_session_through_running_to_stopped() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "testenv.run", "--once", "--timeout", "120"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    phases = [
        line.removeprefix("==> session hello-world: ").split(" ")[0].rstrip(",")
        for line in r.stdout.splitlines()
        if line.startswith("==> session hello-world:")
    ]
    assert phases[0] == "Pending"
    assert "Running" in phases
    # The runner never exits: only the demo's stop ends the session, by way of Stopping.
    assert "Completed" not in phases
    assert phases[-2:] == ["Stopping", "Stopped"]
    [stopped] = [line for line in r.stdout.splitlines() if line.startswith(STOPPED)]
    assert stopped.endswith("stoppedReason user"), stopped
