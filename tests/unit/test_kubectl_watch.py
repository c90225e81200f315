"""Parsing kubectl's --watch -o json stream (pretty-printed documents back to back)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from testenv.kubectl_watch import json_documents


def pretty(*docs: dict[str, object]) -> list[str]:
    text = "".join(json.dumps(d, indent=4) + "\n" for d in docs)
    return text.splitlines(keepends=True)


@pytest.mark.parametrize("count", [0, 1, 3])
def test_each_document_once_in_order(count: int) -> None:
    docs: list[dict[str, object]] = [
        {"type": "ADDED", "object": {"metadata": {"name": f"j{i}"}}} for i in range(count)
    ]
    assert list(json_documents(pretty(*docs))) == docs


def test_a_document_is_yielded_as_soon_as_it_is_complete() -> None:
    lines = pretty({"a": 1}, {"b": 2})
    seen = []
    fed: list[str] = []

    def feed() -> Iterator[str]:
        for line in lines:
            fed.append(line)
            yield line

    for doc in json_documents(feed()):
        seen.append((doc, len(fed)))
    first_len = len(pretty({"a": 1}))
    assert seen[0] == ({"a": 1}, first_len)
    assert seen[1][0] == {"b": 2}
