"""Reading `kubectl get --watch -o json`: pretty-printed JSON documents, one per event."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from testenv.binaries import find_kubectl


def json_documents(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """Yield each JSON object of the stream as soon as its last line has arrived."""
    decoder = json.JSONDecoder()
    buf = ""
    for line in lines:
        buf += line
        while buf.strip():
            try:
                doc, end = decoder.raw_decode(buf.lstrip())
            except json.JSONDecodeError:
                break  # incomplete: wait for more lines
            buf = buf.lstrip()[end:]
            if isinstance(doc, dict):
                yield doc


class KubectlWatch:
    """``kubectl get <resource> --watch -o json`` beside a test, in a thread: every document (an
    object, or with ``events`` an event with ``type`` and ``object``) goes to ``on_document``.

    kubectl ends its watch when the server closes it and does not resume it; it is then started
    again (its initial list replays every object) until :meth:`stop`.
    """

    def __init__(
        self,
        kubeconfig: Path,
        resource: str,
        on_document: Callable[[dict[str, Any]], None],
        *,
        namespace: str | None = None,
        events: bool = False,
    ) -> None:
        scope = ["-n", namespace] if namespace else ["--all-namespaces"]
        self._argv = [
            str(find_kubectl()),
            *("--kubeconfig", str(kubeconfig), "get", resource, *scope, "--watch"),
            *(["--output-watch-events"] if events else []),
            *("-o", "json"),
        ]
        self._on_document = on_document
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None
        self._thread = threading.Thread(target=self._run, name=f"watch-{resource}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.is_set():
            with self._lock:
                if self._stopped.is_set():
                    return
                proc = self._proc = subprocess.Popen(
                    self._argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
                )
            assert proc.stdout is not None
            for doc in json_documents(proc.stdout):
                self._on_document(doc)
            proc.wait()
            self._stopped.wait(1.0)

    def stop(self) -> None:
        with self._lock:
            self._stopped.set()
            proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            proc.wait(10)
        self._thread.join(10)
