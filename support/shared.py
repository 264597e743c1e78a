"""Where ../shared (test and benchmark data beside the project) is.

CI clones the project somewhere else than this checkout; the data stays where it is. Looked
up in order: ``$PARKING_SHARED_DIR``, ``shared/`` beside the repository, beside any parent
directory, then ``/work/shared``.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    candidates: list[Path] = []
    if os.environ.get("PARKING_SHARED_DIR"):
        candidates.append(Path(os.environ["PARKING_SHARED_DIR"]))
    candidates += [parent / "shared" for parent in REPO.parents]
    candidates.append(Path("/work/shared"))
    for candidate in candidates:
        if (candidate / "data" / "plates").is_dir():
            return candidate
    return REPO.parent / "shared"


def plates_root() -> Path:
    return shared_dir() / "data" / "plates"
