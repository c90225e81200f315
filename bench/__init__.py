"""Benchmarks (not timed tests): each module has a ``run() -> dict[str, float]`` and a CLI."""
