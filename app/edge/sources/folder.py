"""Image-folder replay: each picture is shown for a few frames, like a car standing at the gate."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

from app.edge.sources import Frame, Image, SourceError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


class ImageFolderSource:
    """Replays ``*.jpg``/``*.png`` of a folder in name order.

    With ``loop`` the folder is listed again before every pass, so pictures added (or removed)
    while it runs join the next pass. ``frames_per_image`` frames of each picture are followed
    by ``gap_frames`` empty frames (the vehicle has left), at ``fps`` frames per second (0: as
    fast as the consumer takes them).
    """

    def __init__(
        self,
        folder: Path,
        *,
        fps: float = 5.0,
        loop: bool = False,
        frames_per_image: int = 3,
        gap_frames: int = 1,
        limit: int | None = None,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not folder.is_dir():
            raise SourceError(f"image folder {folder} does not exist")
        self._folder = folder
        self._limit = limit
        self._paths = self._list()
        if not self._paths:
            raise SourceError(f"image folder {folder} holds no {'/'.join(IMAGE_SUFFIXES)} files")
        self._fps = fps
        self._loop = loop
        self._frames_per_image = max(1, frames_per_image)
        self._gap_frames = max(0, gap_frames)
        self._wall_clock = wall_clock
        self._monotonic = monotonic
        self._closed = threading.Event()
        self._blank: Image | None = None

    def _list(self) -> list[Path]:
        paths = sorted(p for p in self._folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        return paths[: self._limit] if self._limit is not None else paths

    @property
    def paths(self) -> list[Path]:
        return list(self._paths)

    def close(self) -> None:
        self._closed.set()

    def _pace(self, started: float, index: int) -> None:
        if self._fps <= 0:
            return
        delay = started + index / self._fps - self._monotonic()
        if delay > 0:
            self._closed.wait(delay)

    def frames(self) -> Iterator[Frame]:
        started = self._monotonic()
        index = 0
        first = True
        while not self._closed.is_set():
            if not first:
                # A folder that went away or emptied: keep replaying what was there.
                with contextlib.suppress(OSError):
                    self._paths = self._list() or self._paths
            first = False
            for path in self._paths:
                image = cv2.imread(str(path), cv2.IMREAD_COLOR)
                if image is None:
                    raise SourceError(f"cannot decode image {path}")
                shown: list[tuple[Image, Path | None]] = [(image, path)] * self._frames_per_image
                if self._gap_frames:
                    if self._blank is None or self._blank.shape != image.shape:
                        self._blank = np.zeros_like(image)
                    shown += [(self._blank, None)] * self._gap_frames
                for picture, origin in shown:
                    if self._closed.is_set():
                        return
                    self._pace(started, index)
                    yield Frame(
                        image=picture,
                        captured_at=self._wall_clock(),
                        monotonic_s=self._monotonic(),
                        index=index,
                        origin=origin,
                    )
                    index += 1
            if not self._loop:
                return
