"""End-to-end only: the tokens the suite mints, gathered while it runs, for the log hygiene test.

From the first test that uses the cluster on, a ``kubectl get secrets --all-namespaces --watch``
runs beside the suite and keeps the value of every key of every runner token Secret
(``ambient-runner-token-*``: the ServiceAccount token, the AG-UI token, ...) as it is created and
each time it is minted again, so the tokens of namespaces that are deleted after their test are
known too. ``tests/e2e/test_log_hygiene.py`` runs last and searches every log for them.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from testenv.controlplane import Cluster
from testenv.kubectl_watch import KubectlWatch

TOKEN_SECRET_PREFIX = "ambient-runner-token-"
LAST = "test_log_hygiene.py"


class MintedTokens:
    """Values of the runner token Secrets seen so far, by Secret (``namespace/name``)."""

    def __init__(self, cluster: Cluster) -> None:
        self.values: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self._watch = KubectlWatch(cluster.kubeconfig, "secrets", self._take)

    def _take(self, secret: dict[str, Any]) -> None:
        meta = secret.get("metadata")
        data = secret.get("data")
        if not isinstance(meta, dict) or not isinstance(data, dict):
            return
        name = str(meta.get("name") or "")
        if not name.startswith(TOKEN_SECRET_PREFIX):
            return
        values = {
            base64.b64decode(v).decode("utf-8", "replace")
            for v in data.values()
            if isinstance(v, str) and v
        }
        with self._lock:
            self.values.setdefault(f"{meta.get('namespace')}/{name}", set()).update(values)

    def snapshot(self) -> dict[str, set[str]]:
        with self._lock:
            return {k: set(v) for k, v in self.values.items()}

    def stop(self) -> None:
        self._watch.stop()


@pytest.fixture(scope="session")
def minted_tokens(control_plane: Cluster) -> Iterator[MintedTokens]:
    tokens = MintedTokens(control_plane)
    yield tokens
    tokens.stop()


@pytest.fixture(autouse=True)
def _gather_minted_tokens(request: pytest.FixtureRequest) -> None:
    """Start the gathering with the first test that uses the cluster (tests that need none, such
    as a bad flag's exit code, do not start a control plane for it)."""
    if {"control_plane", "deployed", "kubectl"} & set(request.fixturenames):
        request.getfixturevalue("minted_tokens")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The log hygiene test goes last, so that it sees every log the suite wrote."""
    items.sort(key=lambda item: item.nodeid.split("::")[0].endswith(LAST))
