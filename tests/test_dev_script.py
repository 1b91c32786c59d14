"""./dev --help is dev's own help: printed at once, setting nothing up (a first set-up takes
minutes), and it says so; every other use of ./dev sets up .venv first (docs/development.md "Development")."""

from __future__ import annotations

import shutil
import subprocess

from conftest import ROOT


def test_dev_help_sets_nothing_up_and_says_so(tmp_path):
    checkout = tmp_path / "checkout"  # without .venv or pyproject.toml
    checkout.mkdir()
    shutil.copy(ROOT / "dev", checkout / "dev")
    for args in ([], ["--help"], ["-h"]):
        result = subprocess.run(["bash", str(checkout / "dev"), *args], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0 and result.stderr == "", result.stderr
        assert "./dev --help                                     # this text; sets nothing up" in result.stdout
        assert "./dev --help-tiercli" in result.stdout  # tiercli's own help, after the set-up
    assert sorted(p.name for p in checkout.iterdir()) == ["dev"]  # no .venv made
