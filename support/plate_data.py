"""The labelled plate photos of ``../shared/data/plates`` (its README gives the formats), as
``bench/plates.py`` measures on them and ``tools/models/plate_boxes.py`` boxes them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Sample:
    image: Path
    label: str  # as written; lines joined by " / "
    category: str = ""  # labels.tsv's 4th column when it has one (vn-scenes-dev: car, ...)
    lines: int = 0  # labels.tsv's n_lines (0: not given)


def load_samples(folder: Path) -> tuple[list[Sample], str]:
    """The labelled images of ``folder`` and its format ("tsv" or "sidecar")."""
    labels = folder / "labels.tsv"
    if labels.is_file():
        samples = []
        for n, line in enumerate(labels.read_text(encoding="utf-8").splitlines()):
            fields = line.split("\t")
            if (n == 0 and fields[0] == "image") or not line.strip():
                continue
            image = folder / "images" / fields[0]
            if not image.is_file():
                image = folder / fields[0]
            category = fields[3].strip() if len(fields) > 3 else ""
            lines = int(fields[1]) if fields[1].strip().isdigit() else 0
            samples.append(Sample(image, fields[2].strip(), category, lines))
        return samples, "tsv"
    samples = []
    for sidecar in sorted(folder.glob("*.txt")):
        fields = sidecar.read_text(encoding="utf-8").strip().split("\t")
        if len(fields) == 6:
            samples.append(Sample(folder / fields[0], fields[5].strip()))
    return samples, "sidecar"


def image_half(name: str) -> int:
    """0 or 1: a stable split of a data set in two halves by a hash of the file name (tune on
    one, check on the other)."""
    return int(hashlib.sha256(name.encode("utf-8")).hexdigest(), 16) % 2
