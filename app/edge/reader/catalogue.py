"""Optional third-party plate models: the catalogue (``model_catalogue.toml``) and the install.

``install(name, target, mirror=None)`` fetches every file of a catalogue entry (from its
upstream URL, or from ``mirror``, a local folder holding files of the same names), checks each
one's sha256 against the catalogue's pin, and only then moves them into ``target``: each file
is written to a temporary name in ``target`` first and renamed into place (atomic on one file
system). A file that fails its check stops the install before anything is renamed: no model is
ever half-installed, and a file already installed stays as it was.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import tomllib
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import BinaryIO

CATALOGUE = Path(__file__).with_name("model_catalogue.toml")
DEFAULT_PLATE_MODELS_DIR = Path("/opt/parking-edge/plate-models")
MAX_BYTES = 64 << 20  # no plate model is this large: a wrong URL is not read forever
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")


class InstallError(RuntimeError):
    """The model cannot be installed; nothing was changed in the target folder."""


@dataclass(frozen=True, slots=True)
class ModelFile:
    name: str
    url: str
    sha256: str


@dataclass(frozen=True, slots=True)
class CatalogueModel:
    name: str
    what: str
    licence: str
    licence_note: str
    upstream: str
    files: tuple[ModelFile, ...]


def load_catalogue(path: Path = CATALOGUE) -> dict[str, CatalogueModel]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    out: dict[str, CatalogueModel] = {}
    for entry in data.get("models", []):
        name = str(entry["name"])
        files = []
        for f in entry.get("files", []):
            file = ModelFile(str(f["name"]), str(f["url"]), str(f["sha256"]).lower())
            if not _NAME.fullmatch(file.name) or not _SHA256.fullmatch(file.sha256):
                raise ValueError(f"{path}: model {name}: bad file name or sha256 in {f!r}")
            if not file.url.startswith("https://"):
                raise ValueError(f"{path}: model {name}: {file.name} needs an https:// URL")
            files.append(file)
        if not files or not str(entry.get("licence", "")):
            raise ValueError(f"{path}: model {name} needs files and a licence")
        if name in out:
            raise ValueError(f"{path}: model {name} twice")
        out[name] = CatalogueModel(
            name=name,
            what=str(entry.get("what", "")),
            licence=str(entry["licence"]),
            licence_note=str(entry.get("licence_note", "")),
            upstream=str(entry.get("upstream", "")),
            files=tuple(files),
        )
    return out


@cache
def catalogue() -> dict[str, CatalogueModel]:
    return load_catalogue()


def _open_url(url: str) -> BinaryIO:
    request = urllib.request.Request(url, headers={"User-Agent": "parking-edge"})  # noqa: S310
    response: BinaryIO = urllib.request.urlopen(request, timeout=60)  # noqa: S310 - https only
    return response


Opener = Callable[[str], BinaryIO]


def _copy_checked(source: BinaryIO, dest: BinaryIO, want: str, what: str) -> None:
    digest = hashlib.sha256()
    size = 0
    while chunk := source.read(1 << 20):
        size += len(chunk)
        if size > MAX_BYTES:
            raise InstallError(f"{what}: larger than {MAX_BYTES >> 20} MiB, refused")
        digest.update(chunk)
        dest.write(chunk)
    got = digest.hexdigest()
    if got != want:
        raise InstallError(f"{what}: sha256 {got}, the catalogue pins {want}; not installed")


def installed(model: CatalogueModel, target: Path) -> bool:
    """Whether every file of ``model`` is in ``target`` with its pinned sha256."""
    for f in model.files:
        path = target / f.name
        if not path.is_file():
            return False
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        if digest.hexdigest() != f.sha256:
            return False
    return True


def install(
    name: str,
    target: Path,
    *,
    mirror: Path | None = None,
    models: dict[str, CatalogueModel] | None = None,
    opener: Opener = _open_url,
) -> list[Path]:
    """Install catalogue model ``name`` into ``target``; the paths installed."""
    models = catalogue() if models is None else models
    model = models.get(name)
    if model is None:
        raise InstallError(
            f"no model {name!r} in the catalogue: one of {', '.join(sorted(models))}"
        )
    target.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[Path, Path]] = []
    try:
        for f in model.files:
            fd, part = tempfile.mkstemp(prefix=f".{f.name}.", suffix=".part", dir=target)
            staged.append((Path(part), target / f.name))
            with os.fdopen(fd, "wb") as dest:
                if mirror is not None:
                    source_path = mirror / f.name
                    source: BinaryIO
                    try:
                        source = source_path.open("rb")
                    except OSError as exc:
                        raise InstallError(f"{f.name}: not in mirror {mirror}: {exc}") from exc
                    what = str(source_path)
                else:
                    what = f.url
                    try:
                        source = opener(f.url)
                    except OSError as exc:
                        raise InstallError(f"{f.name}: cannot download {f.url}: {exc}") from exc
                with source:
                    try:
                        _copy_checked(source, dest, f.sha256, what)
                    except OSError as exc:
                        raise InstallError(f"{f.name}: reading {what}: {exc}") from exc
                dest.flush()
                os.fsync(dest.fileno())
        for tmp, final in staged:
            os.chmod(tmp, 0o644)
            os.replace(tmp, final)
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
    return [final for _, final in staged]
