#!/usr/bin/env python3
"""Bootstrap and run: ``python3 tasks.py demo`` (start a local node) or ``python3 tasks.py test``.

Needs only Python 3.11+. Creates ./.venv with the node and its dev tools on first use; the test
mint (Nutshell) gets a separate venv of its own under ~/.cache/routstr, made by the tests.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
STAMP = VENV / ".routstr-installed"


def _fingerprint() -> str:
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()


def ensure_env() -> None:
    """Create the venv and install the node (editable) with its dev extras, once per pyproject change."""
    if sys.version_info < (3, 11):  # noqa: UP036 - tasks.py may be run by an older python3
        sys.exit("routstr needs Python 3.11 or newer")
    if not PY.exists():
        print("creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    if STAMP.exists() and STAMP.read_text() == _fingerprint():
        return
    print("installing routstr and its dev tools into .venv (first run only) ...", flush=True)
    pip = [str(PY), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}[dev]"], check=True)
    STAMP.write_text(_fingerprint())


def main() -> int:
    cmd = sys.argv[1] if len(sys.argv) > 1 else "help"
    rest = sys.argv[2:]
    if cmd not in ("demo", "test", "serve", "lint", "bench"):
        print(__doc__)
        print("commands: demo | test [pytest args] | serve | lint | bench")
        return 2
    ensure_env()
    os.chdir(ROOT)
    if cmd == "demo":
        return subprocess.call([str(BIN / "routstr"), "demo", *rest])
    if cmd == "serve":
        return subprocess.call([str(BIN / "routstr"), "serve", *rest])
    if cmd == "lint":
        rc = subprocess.call([str(BIN / "ruff"), "check", "."])
        return rc or subprocess.call([str(BIN / "mypy"), "routstr"])
    if cmd == "bench":
        return subprocess.call([str(PY), "bench/run.py", *rest])
    return subprocess.call([str(PY), "-m", "pytest", *rest])


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C reached the child too; it stops on its own
        sys.exit(130)
