"""The README's `make run` path: its own control plane, the operator, the sample to Completed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]


def test_make_run_follows_the_sample_session_to_completed() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "testenv.run", "--once", "--timeout", "90"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    phases = [line for line in r.stdout.splitlines() if line.startswith("==> session hello-world:")]
    assert phases[0].startswith("==> session hello-world: Pending")
    assert phases[-1].startswith("==> session hello-world: Completed")
