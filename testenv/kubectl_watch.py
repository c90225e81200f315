"""Reading `kubectl get --watch -o json`: pretty-printed JSON documents, one per event."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any


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
