"""The optional plate-specific models: catalogue, install (sha256 pinned, atomic), the reader
on real plates, and the lane config's ``[reader] plate_models``.

The third-party files are never in the project: ``../shared/models`` is the mirror the tests
install from (the lab has no internet). Tests that need it skip with the reason when it is
missing; the install's own checks run on made-up files and a made-up catalogue.
"""

from __future__ import annotations

import ctypes
import hashlib
import io
import re
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.contract import normalize_plate
from app.edge.cli import main as edge_main
from app.edge.config import ConfigError, parse_config
from app.edge.reader.catalogue import (
    CatalogueModel,
    InstallError,
    ModelFile,
    catalogue,
    install,
    installed,
)
from app.edge.reader.grammar import PlateGrammar, candidate_rank
from app.edge.reader.ocr import ALNUM, CharRead, LineRead
from app.edge.reader.plate_models import REQUIRED_FILES, missing_files
from support.shared import shared_dir

MIRROR = shared_dir() / "models"
needs_mirror = pytest.mark.skipif(
    not all((MIRROR / name).is_file() for name in REQUIRED_FILES),
    reason=f"the plate models' mirror {MIRROR} (../shared/models) is missing",
)
PLATES = shared_dir() / "data" / "plates"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _model(files: dict[str, bytes], *, wrong: str = "") -> CatalogueModel:
    """A catalogue entry for ``files``; ``wrong``: that file's pin is another content's."""
    return CatalogueModel(
        name="test-model",
        what="made up",
        licence="MIT",
        licence_note="",
        upstream="https://example.invalid",
        files=tuple(
            ModelFile(
                name,
                f"https://example.invalid/{name}",
                _sha(data + b"x") if name == wrong else _sha(data),
            )
            for name, data in files.items()
        ),
    )


def _write(folder: Path, files: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


# -- catalogue -------------------------------------------------------------------------------


def test_catalogue_pins_licences_and_the_reader_files() -> None:
    models = catalogue()
    assert set(models) == {"hyperlpr3", "fast-plate-ocr-global"}
    assert models["hyperlpr3"].licence == "Apache-2.0"
    assert models["fast-plate-ocr-global"].licence == "MIT"
    names = {f.name for m in models.values() for f in m.files}
    assert names == set(REQUIRED_FILES)  # the catalogue installs what the reader opens
    for model in models.values():
        for f in model.files:
            assert f.url.startswith("https://")
            assert re.fullmatch(r"[0-9a-f]{64}", f.sha256)


def test_catalogue_pins_agree_with_the_mirror_readme() -> None:
    readme = MIRROR / "README.md"
    if not readme.is_file():
        pytest.skip(f"{readme} is missing")
    text = readme.read_text(encoding="utf-8")
    for model in catalogue().values():
        for f in model.files:
            row = next(line for line in text.splitlines() if line.startswith(f"| {f.name} "))
            assert f.sha256 in row, f.name


# -- install ---------------------------------------------------------------------------------


@needs_mirror
def test_install_from_the_mirror_with_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "plate-models"
    assert missing_files(target) == list(REQUIRED_FILES)
    rc = edge_main(
        ["models", "install", "hyperlpr3", "fast-plate-ocr-global", "--mirror", str(MIRROR),
         "--dir", str(target)]
    )  # fmt: skip
    assert rc == 0
    assert missing_files(target) == []
    for model in catalogue().values():
        assert installed(model, target)
    assert sorted(p.name for p in target.iterdir()) == sorted(REQUIRED_FILES)  # no leftovers
    assert edge_main(["models", "list", "--dir", str(target)]) == 0
    out = capsys.readouterr().out
    assert out.count(" installed ") >= 2 and "not installed" not in out


def test_unknown_model_is_refused_by_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = edge_main(["models", "install", "no-such-model", "--dir", str(tmp_path / "m")])
    assert rc == 2
    assert "no-such-model" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_cli_reports_a_mirror_without_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = edge_main(
        ["models", "install", "hyperlpr3", "--mirror", str(tmp_path / "empty"),
         "--dir", str(tmp_path / "m")]
    )  # fmt: skip
    assert rc == 1
    assert "not in mirror" in capsys.readouterr().err
    assert list((tmp_path / "m").iterdir()) == []


contents = st.dictionaries(
    st.sampled_from(["a.onnx", "b.onnx", "c.onnx"]), st.binary(max_size=256), min_size=1
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(files=contents, data=st.data())
def test_a_file_off_its_pin_installs_nothing(
    tmp_path_factory: pytest.TempPathFactory, files: dict[str, bytes], data: st.DataObject
) -> None:
    """Any file whose sha256 is not the pinned one stops the whole model: the target keeps
    exactly what it held before (an older copy stays), and no partial file is left."""
    root = tmp_path_factory.mktemp("install")
    wrong = data.draw(st.sampled_from(sorted(files)))
    mirror = _write(root / "mirror", files)
    before = {name: b"old " + name.encode() for name in files if data.draw(st.booleans())}
    target = _write(root / "target", before)
    model = _model(files, wrong=wrong)
    with pytest.raises(InstallError, match=wrong):
        install("test-model", target, mirror=mirror, models={"test-model": model})
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(files=contents)
def test_files_on_their_pins_install_byte_for_byte(
    tmp_path_factory: pytest.TempPathFactory, files: dict[str, bytes]
) -> None:
    root = tmp_path_factory.mktemp("install")
    mirror = _write(root / "mirror", files)
    target = _write(root / "target", dict.fromkeys(files, b"stale"))  # replaced
    model = _model(files)
    paths = install("test-model", target, mirror=mirror, models={"test-model": model})
    assert {p.name: p.read_bytes() for p in paths} == files
    assert {p.name for p in target.iterdir()} == set(files)
    assert installed(model, target)


def test_download_is_checked_like_the_mirror(tmp_path: Path) -> None:
    """Without a mirror the files come from their URLs, through the same sha256 check."""
    files = {"a.onnx": b"weights", "b.onnx": b"more weights"}
    served = {f"https://example.invalid/{k}": v for k, v in files.items()}

    def opener(url: str) -> BinaryIO:
        return io.BytesIO(served[url])

    model = _model(files)
    install("test-model", tmp_path, models={"test-model": model}, opener=opener)
    assert installed(model, tmp_path)
    served["https://example.invalid/b.onnx"] = b"tampered"
    other = tmp_path / "other"
    with pytest.raises(InstallError, match=r"b\.onnx.*sha256"):
        install("test-model", other, models={"test-model": model}, opener=opener)
    assert list(other.iterdir()) == []


# -- the reader ------------------------------------------------------------------------------


US_READ = ["car12.jpg", "us1.jpg", "car13.jpg", "wts-lg-000027.jpg", "us4.jpg"]


@pytest.fixture(scope="module")
def us_reader() -> object:
    if not all((MIRROR / name).is_file() for name in REQUIRED_FILES):
        pytest.skip(f"the plate models' mirror {MIRROR} (../shared/models) is missing")
    pytest.importorskip("onnxruntime", reason="the plate-models extra (onnxruntime) is missing")
    from app.edge.reader.litert import LiteRTPlateReader
    from app.edge.reader.plate_models import PlateModelsReader

    # as the agent builds it (open_reader): the rows are read by the narrow recognizer
    return PlateModelsReader(
        plate_models=MIRROR, beside=LiteRTPlateReader(regions=["us"], narrow=True)
    )


@needs_mirror
@pytest.mark.parametrize("name", US_READ)
def test_reader_reads_real_us_plates(us_reader: object, name: str) -> None:
    from app.edge.reader.plate_models import PlateModelsReader

    assert isinstance(us_reader, PlateModelsReader)
    folder = PLATES / "openalpr-us"
    if not (folder / name).is_file():
        pytest.skip(f"{folder / name} is missing")
    label = (folder / name).with_suffix(".txt").read_text().split("\t")[5].strip()
    image = cv2.imread(str(folder / name))
    assert image is not None
    results = us_reader.read_image(image)
    assert results, name
    assert results[0].plate == normalize_plate(label)
    assert results[0].grammar == "us"
    h, w = image.shape[:2]
    box = results[0].box
    assert 0 <= box.x < w and 0 <= box.y < h and box.w > 0 and box.h > 0


@needs_mirror
def test_reader_reads_rendered_eu_plates_and_falls_back_on_blank_frames() -> None:
    pytest.importorskip("onnxruntime", reason="the plate-models extra (onnxruntime) is missing")
    import random

    from app.edge.reader.litert import LiteRTPlateReader
    from app.edge.reader.plate_models import PlateModelsReader
    from support.render_plates import draw_plate, sample_plates, scene

    reader = PlateModelsReader(plate_models=MIRROR, beside=LiteRTPlateReader(regions=["eu"]))
    rng = random.Random(5)
    plates = sample_plates("eu", 12, seed=5)
    right = 0
    for plate in plates:
        results = reader.read_image(scene(draw_plate(plate), rng))
        right += bool(results) and results[0].plate == normalize_plate(plate.text)
    assert right >= 9, f"{right} of {len(plates)}"
    # a frame with no plate: neither reader invents one
    assert reader.read_image(np.full((480, 640, 3), 128, np.uint8)) == []


def test_the_reader_keeps_large_blocks_off_the_heap_and_ipp_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """glibc's mmap threshold is fixed (large blocks are given back when freed) and OpenCV's
    IPP is off: the two settings that bring the peak RSS under 300 MB (docs/reader.md)."""
    import app.edge.reader.plate_models as plate_models

    calls: list[tuple[int, int]] = []

    class _Libc:
        def mallopt(self, param: int, value: int) -> int:
            calls.append((param, value))
            return 1

    monkeypatch.setattr(ctypes, "CDLL", lambda name: _Libc())
    was = cv2.ipp.useIPP()
    try:
        plate_models.lean_process_memory()
        assert calls == [(-3, 128 * 1024)]  # M_MMAP_THRESHOLD, 128 KiB
        assert cv2.ipp.useIPP() is False
    finally:
        cv2.ipp.setUseIPP(was)

    def _no_libc(name: object) -> object:
        raise OSError("no C library")

    monkeypatch.setattr(ctypes, "CDLL", _no_libc)
    plate_models.lean_process_memory()  # not glibc: nothing to set, no error
    cv2.ipp.setUseIPP(was)


@pytest.mark.skipif(not Path("/proc/self/maps").is_file(), reason="Linux only")
def test_model_pages_are_released_and_read_back(tmp_path: Path) -> None:
    """A model file's read-only mapping loses its resident pages, and reads the same after."""
    import mmap

    from app.edge.reader.plate_models import release_model_pages

    data = np.random.default_rng(1).integers(0, 255, 1 << 20, dtype=np.uint8).tobytes()
    path = tmp_path / "weights.tflite"
    path.write_bytes(data)

    def resident_kb() -> int:
        rss, here = 0, False
        for line in Path("/proc/self/smaps").read_text().splitlines():
            fields = line.split()
            if "-" in fields[0] and len(fields) >= 5 and not line.endswith(" kB"):
                here = line.endswith(str(path))
            elif here and fields[0] == "Rss:":
                rss += int(fields[1])
        return rss

    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        assert mapped[:] == data
        assert resident_kb() >= 1000  # all 1 MiB resident
        assert release_model_pages((".tflite",)) >= 1
        assert resident_kb() == 0
        assert mapped[:] == data  # read back from the file
    assert release_model_pages((".no-such-model",)) == 0


def test_missing_model_files_are_named(tmp_path: Path) -> None:
    from app.edge.reader.litert import ModelError
    from app.edge.reader.plate_models import PlateModelsReader

    with pytest.raises(ModelError, match=REQUIRED_FILES[0]):
        PlateModelsReader(plate_models=tmp_path)


# -- shared ranking --------------------------------------------------------------------------


@given(
    first=st.sampled_from(["9LLL999", "LLL9999"]),
    height=st.floats(1, 500),
    other_height=st.floats(1, 500),
)
def test_ranking_prefers_the_first_region_whatever_the_print_size(
    first: str, height: float, other_height: float
) -> None:
    """One ranking for both readers (grammar.candidate_rank): a plate of the lane's first
    region beats one of a later region, however much larger the later one's print."""
    grammar = PlateGrammar(["us", "generic"])
    us = grammar.parse("1ABC234" if first == "9LLL999" else "ABC1234")
    generic = PlateGrammar(["generic"]).parse("XY12")
    assert us is not None and generic is not None and us.grammar == "us"
    assert candidate_rank(grammar, us, height) < candidate_rank(grammar, generic, other_height)


def _chars(text: str, prob: float) -> list[CharRead]:
    out = []
    for ch in text:
        alts = np.zeros(len(ALNUM), np.float32)
        alts[ALNUM.index(ch)] = prob
        out.append(CharRead(ch, prob, alts))
    return out


class _Reads:
    """A recogniser stub: the given reads in turn, whatever the crop."""

    def __init__(self, *texts: tuple[str, float]) -> None:
        self.texts = list(texts)
        self.crops: list[tuple[int, ...]] = []

    def read(self, crop: np.ndarray, narrow: bool = False) -> LineRead:
        self.crops.append(crop.shape)
        text, prob = self.texts.pop(0)
        return LineRead(tuple(_chars(text, prob)))


def test_plate_models_reader_takes_the_plate_most_reads_agree_on() -> None:
    """Four reads of one plate (two recognisers at two paddings): the plate three of them
    agree on wins over a surer single read, and a padding's larger crop (the 12 % one) is not
    larger print. (Before: the tallest crop's surest read, here the one misread.)"""
    from app.edge.reader.plate_models import PlateModelsReader, PlateQuad

    reader = object.__new__(PlateModelsReader)
    reader.grammar = PlateGrammar(["us"])
    reader.pads = (0.04, 0.12)
    fpo = _Reads(("ABC1234", 0.97), ("ABC1234", 0.96))
    paddle = _Reads(("ABC1234", 0.95), ("ABC1284", 0.999))  # the larger crop, misread
    reader.line_reader = paddle  # type: ignore[assignment]
    reader.recognizer = _SlotStub(fpo)  # type: ignore[assignment]
    image = np.full((200, 400, 3), 255, np.uint8)
    quad = np.array([[100, 80], [300, 80], [300, 130], [100, 130]], np.float32)
    result = reader._read_plate(image, PlateQuad(quad, 0.9, 1))
    assert result is not None
    assert result.plate == "ABC1234"
    assert result.line_height == pytest.approx(50, abs=1)  # the plate's, not a crop's
    assert [c[0] for c in paddle.crops] == sorted(c[0] for c in paddle.crops)  # 2 paddings
    assert result.rank[3] == -3.0  # three votes


class _SlotStub:
    """fast-plate-ocr's interface (``read(crop) -> list[CharRead]``) over ``_Reads``."""

    def __init__(self, reads: _Reads) -> None:
        self.reads = reads

    def read(self, crop: np.ndarray) -> list[CharRead]:
        return list(self.reads.read(crop).chars)


@given(
    votes=st.integers(2, 4),
    height=st.floats(1, 500),
    other_height=st.floats(1, 500),
    confidence=st.floats(0.0, 1.0),
)
def test_ranking_prefers_more_votes_over_size_and_confidence(
    votes: int, height: float, other_height: float, confidence: float
) -> None:
    """Within a layout and a region, a plate more reads agree on ranks first, however much
    larger or surer another plate's single read."""
    grammar = PlateGrammar(["us"])
    agreed = grammar.parse("ABC1234")
    single = grammar.parse("ABC1284")
    assert agreed is not None and single is not None
    sure = replace(single, confidence=1.0)
    unsure = replace(agreed, confidence=confidence)
    assert candidate_rank(grammar, unsure, height, votes) < candidate_rank(
        grammar, sure, other_height, 1
    )
    # one read each: the TFLite pipeline's ranking, unchanged (height x confidence x length)
    assert candidate_rank(grammar, agreed, 2 * height) < candidate_rank(grammar, agreed, height)


def test_pipeline_and_plate_models_share_the_ranking() -> None:
    import app.edge.reader.pipeline as pipeline
    import app.edge.reader.plate_models as plate_models

    assert vars(pipeline)["candidate_rank"] is candidate_rank
    assert vars(plate_models)["candidate_rank"] is candidate_rank


# -- config ----------------------------------------------------------------------------------


def _config(reader: dict[str, object]) -> dict[str, object]:
    return {
        "camera": {"id": "gate-1-in", "direction": "entry", "api_key": "k"},
        "central": {"url": "http://127.0.0.1:8000"},
        "source": {"kind": "folder", "path": "/tmp"},
        "reader": reader,
    }


def test_config_takes_an_installed_models_folder(tmp_path: Path) -> None:
    _write(tmp_path, dict.fromkeys(REQUIRED_FILES, b"x"))
    config = parse_config(_config({"kind": "litert", "plate_models": str(tmp_path)}))
    assert config.reader.plate_models == tmp_path
    assert parse_config(_config({"kind": "litert"})).reader.plate_models is None  # the default


@needs_mirror
def test_the_agents_plate_models_reader_reads_rows_with_the_narrow_recognizer() -> None:
    pytest.importorskip("onnxruntime", reason="the plate-models extra (onnxruntime) is missing")
    from app.edge.agent import open_reader
    from app.edge.reader.plate_models import PlateModelsReader

    reader = open_reader(parse_config(_config({"kind": "litert", "plate_models": str(MIRROR)})))
    assert isinstance(reader, PlateModelsReader)
    # as measured with it (docs/reader.md); the TFLite reader alone no longer loads it
    assert reader.fallback.pipeline.recognizer.narrow is not None


@pytest.mark.parametrize(
    ("reader", "files", "message"),
    [
        ({"kind": "litert"}, None, "is not a folder"),
        ({"kind": "litert"}, (), "lacks"),
        ({"kind": "litert"}, REQUIRED_FILES[:2], REQUIRED_FILES[2]),
        ({"kind": "sidecar"}, REQUIRED_FILES, 'needs kind = "litert"'),
    ],
)
def test_config_errors_name_the_field(
    tmp_path: Path, reader: dict[str, object], files: tuple[str, ...] | None, message: str
) -> None:
    folder = tmp_path / "plate-models"
    if files is not None:
        _write(folder, dict.fromkeys(files, b"x"))
    with pytest.raises(ConfigError, match=r"reader\.plate_models|reader: .*plate_models") as err:
        parse_config(_config({**reader, "plate_models": str(folder)}))
    assert message in str(err.value)
