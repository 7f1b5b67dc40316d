"""Loading a script under benchmarks/ in a test, and checking that importing it stays light."""

import importlib.util
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str):
    """benchmarks/NAME.py as a module named bench_NAME."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def heavy_modules_after(name: str, call: str, heavy: tuple[str, ...]) -> list[str]:
    """Which of ``heavy`` a fresh interpreter holds after importing benchmarks/NAME.py and
    running ``m.CALL`` (its flag parsing): --help and --dry-run must not wait for torch."""
    code = (f"import importlib.util, sys; s = importlib.util.spec_from_file_location('b', {str(BENCHMARKS / (name + '.py'))!r}); "
            f"m = importlib.util.module_from_spec(s); sys.modules['b'] = m; s.loader.exec_module(m); m.{call}; "
            f"print(sorted(k for k in {heavy!r} if k in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return eval(out.stdout.strip())  # a printed list of module names
