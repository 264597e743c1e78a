"""``lab/lab``, the lab's own command (its hosts are network namespaces on this machine; see
docs/lab.md), as the tests and benches run it: one helper for every ``support.lab_*`` module."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LAB = REPO / "lab" / "lab"


def lab(*args: str, check: bool = True, timeout: float = 300, stdin: str | None = None) -> str:
    """``lab/lab ARGS``' standard output; a RuntimeError with the end of its standard error
    when it fails (unless ``check`` is false)."""
    done = subprocess.run(
        [str(LAB), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        input=stdin,
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"lab/lab {' '.join(args)}: {done.stderr[-2000:]}")
    return done.stdout
