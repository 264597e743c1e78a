"""Raspberry Pi camera through picamera2, imported only here and only when used.

On the Pi, picamera2 comes from Raspberry Pi OS (``python3-picamera2``); the agent's venv is
created with ``--system-site-packages`` so it can import it.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import cv2
import numpy as np

from app.edge.sources import Frame, SourceError


class Picamera2Source:
    def __init__(
        self,
        *,
        width: int = 1920,
        height: int = 1080,
        fps: float = 10.0,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        try:
            module: Any = importlib.import_module("picamera2")
        except ImportError as exc:
            raise SourceError(
                "picamera2 is not importable: install python3-picamera2 and create the venv "
                "with --system-site-packages"
            ) from exc
        self._camera: Any = module.Picamera2()
        config = self._camera.create_video_configuration(
            main={"size": (width, height), "format": "RGB888"},
            controls={"FrameRate": fps},
        )
        self._camera.configure(config)
        self._wall_clock = wall_clock
        self._monotonic = monotonic
        self._closed = threading.Event()

    def close(self) -> None:
        self._closed.set()

    def frames(self) -> Iterator[Frame]:
        self._camera.start()
        index = 0
        try:
            while not self._closed.is_set():
                array = np.asarray(self._camera.capture_array("main"), dtype=np.uint8)
                # picamera2's "RGB888" is BGR in memory; keep OpenCV's order either way.
                image = array if array.ndim == 3 else cv2.cvtColor(array, cv2.COLOR_GRAY2BGR)
                yield Frame(
                    image=image,
                    captured_at=self._wall_clock(),
                    monotonic_s=self._monotonic(),
                    index=index,
                )
                index += 1
        finally:
            self._camera.stop()
            self._camera.close()
