"""Every module imports: a missing import fails here before it reaches a user."""

import importlib
import pkgutil
import subprocess
import sys

import pytest

import rlhfkit

MODULES = sorted(m.name for m in pkgutil.walk_packages(rlhfkit.__path__, prefix="rlhfkit."))


@pytest.mark.parametrize("name", MODULES)
def test_module_imports(name):
    importlib.import_module(name)


def test_package_and_cli_import_without_torch():
    # The CLI must start fast and the data tools must stay light: torch loads only inside commands.
    code = "import sys, rlhfkit.cli, rlhfkit.data, rlhfkit.schema; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
