"""The layering contract: the core imports nothing else of Moot; media, speech and the facilitator import only the
core. ``lint-imports`` checks the contracts in ``pyproject.toml``; the second test proves it fails on a wrong import."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=tree, env=env, capture_output=True, text=True,
                          timeout=120)


def test_the_layering_contracts_hold() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(("module", "wrong_import", "contract"), [
    ("server/core/ids.py", "import server.storage", "The core imports nothing else of Moot"),
    ("facilitator/prompt.py", "import server.names", "The facilitator imports only the core"),
    ("server/rtc/relay.py", "import server.asr.vad", "Media (server.rtc) imports only the core"),
])
def test_a_wrong_import_breaks_the_contract(tmp_path: Path, module: str, wrong_import: str, contract: str) -> None:
    for package in ("server", "facilitator", "models"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with open(tmp_path / module, "a") as f:
        f.write(f"\n{wrong_import}  # noqa\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert f"{contract} BROKEN" in result.stdout
