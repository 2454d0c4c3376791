"""Benchmarks run as ``moot bench ...``: each prints one JSON object; results are recorded in docs/benchmarks.md."""

import json
from typing import Any


def print_result(result: dict[str, Any], as_json: bool) -> None:
    """One JSON object (``--json``) or one aligned ``key: value`` line per result."""
    if as_json:
        print(json.dumps(result), flush=True)
        return
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:>{width}}: {value}", flush=True)
