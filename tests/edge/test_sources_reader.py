"""The image-folder replay on the real openalpr-us pictures, read by the sidecar stand-in."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from app.contract import MAX_SNAPSHOT_BYTES, normalize_plate
from app.edge.aggregate import ReadAggregator
from app.edge.reader.sidecar import GroundTruthSidecarReader, SidecarFormatError, parse_sidecar
from app.edge.snapshot import encode_snapshot
from app.edge.sources import SourceError
from app.edge.sources.folder import ImageFolderSource
from app.edge.sources.opencv import OpenCVSource


def truth(path: Path) -> str:
    return path.with_suffix(".txt").read_text().strip().split("\t")[5]


def test_folder_replay_shows_each_picture_for_n_frames_then_a_gap(plates_dir: Path) -> None:
    source = ImageFolderSource(plates_dir, fps=0, frames_per_image=3, gap_frames=1, limit=2)
    frames = list(source.frames())
    assert len(frames) == 8
    first = source.paths[0]
    assert [f.origin for f in frames[:4]] == [first, first, first, None]
    assert frames[3].image.shape == frames[0].image.shape
    assert not frames[3].image.any()
    assert [f.index for f in frames] == list(range(8))


def test_folder_replay_loops_and_stops_on_close(plates_dir: Path) -> None:
    source = ImageFolderSource(
        plates_dir, fps=0, frames_per_image=1, gap_frames=0, limit=2, loop=True
    )
    seen = []
    for frame in source.frames():
        seen.append(frame.origin)
        if len(seen) == 5:
            source.close()
    assert seen[:4] == source.paths * 2


def test_sidecar_reader_returns_the_ground_truth_plate_and_box(plates_dir: Path) -> None:
    source = ImageFolderSource(plates_dir, fps=0, frames_per_image=1, gap_frames=1, limit=3)
    reader = GroundTruthSidecarReader(confidence=0.8)
    frames = list(source.frames())
    reads = [reader.read(f) for f in frames]
    assert (reads[1], reads[3]) == ([], []), "empty frames have no plates"
    for frame, plate_reads in zip(frames[0::2], reads[0::2], strict=True):
        assert frame.origin is not None
        [read] = plate_reads
        assert read.text == truth(frame.origin)
        box, _ = parse_sidecar(frame.origin.with_suffix(".txt").read_text())
        assert read.box == box
        assert read.confidence == 0.8
        assert box.x + box.w <= frame.image.shape[1]


def test_replay_through_aggregation_makes_one_sighting_per_vehicle(plates_dir: Path) -> None:
    source = ImageFolderSource(plates_dir, fps=0, frames_per_image=3, gap_frames=1, limit=10)
    reader = GroundTruthSidecarReader()
    aggregator = ReadAggregator(min_agreeing=3, cooldown_s=0)
    sightings = [s for f in source.frames() for s in aggregator.feed(f, reader.read(f))]
    assert [normalize_plate(s.plate) for s in sightings] == [truth(p) for p in source.paths]
    assert all(s.complete and s.support == 3 for s in sightings)


def test_a_malformed_sidecar_line_is_an_error() -> None:
    with pytest.raises(SidecarFormatError):
        parse_sidecar("a.jpg\t1\t2\tthree\t4\tABC")


def test_the_largest_picture_becomes_a_snapshot_within_the_contract_limit(
    plates_dir: Path,
) -> None:
    biggest = max(plates_dir.glob("*.jpg"), key=lambda p: p.stat().st_size)
    image = cv2.imread(str(biggest))
    assert image is not None
    data = encode_snapshot(image, max_bytes=MAX_SNAPSHOT_BYTES)
    assert data.startswith(b"\xff\xd8\xff")
    assert data.endswith(b"\xff\xd9")
    assert len(data) <= MAX_SNAPSHOT_BYTES
    assert len(encode_snapshot(image, max_bytes=40_000)) <= 40_000


def test_opencv_source_reads_a_video_file_to_its_end(tmp_path: Path, plates_dir: Path) -> None:
    image = cv2.imread(str(sorted(plates_dir.glob("*.jpg"))[0]))
    assert image is not None
    small = cv2.resize(image, (320, 240))
    video = tmp_path / "lane.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), 5, (320, 240))
    for _ in range(7):
        writer.write(small)
    writer.release()
    frames = list(OpenCVSource(str(video)).frames())
    assert len(frames) == 7
    assert frames[0].image.shape == (240, 320, 3)


def test_opencv_source_reports_what_it_cannot_open(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="cannot open"):
        list(OpenCVSource(str(tmp_path / "missing.mp4")).frames())
