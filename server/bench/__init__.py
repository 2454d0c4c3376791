"""Benchmarks run as ``moot bench ...``: each prints one JSON object; results are recorded in docs/benchmarks.md."""
