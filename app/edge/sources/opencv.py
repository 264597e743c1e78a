"""OpenCV capture: a video file, an RTSP/HTTP URL or a USB camera index (``"0"``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import cv2

from app.edge.sources import Frame, SourceError


class OpenCVSource:
    def __init__(
        self,
        uri: str,
        *,
        reconnect: bool = True,
        reconnect_delay_s: float = 2.0,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._uri = uri
        # A bare number is a USB camera index; anything else a file or stream URL.
        self._target: int | str = int(uri) if uri.isdigit() else uri
        self._reconnect = reconnect and not self._is_file()
        self._reconnect_delay_s = reconnect_delay_s
        self._wall_clock = wall_clock
        self._monotonic = monotonic
        self._closed = threading.Event()

    def _is_file(self) -> bool:
        return isinstance(self._target, str) and "://" not in self._target

    def _open(self) -> cv2.VideoCapture:
        capture = cv2.VideoCapture(self._target)
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"OpenCV cannot open {self._uri!r}")
        return capture

    def close(self) -> None:
        self._closed.set()

    def frames(self) -> Iterator[Frame]:
        index = 0
        capture = self._open()
        try:
            while not self._closed.is_set():
                ok, image = capture.read()
                if not ok or image is None:
                    if not self._reconnect:
                        return
                    # Streams drop; reopen rather than die, so systemd sees a live process.
                    capture.release()
                    self._closed.wait(self._reconnect_delay_s)
                    try:
                        capture = self._open()
                    except SourceError:
                        continue
                    continue
                yield Frame(
                    image=image,
                    captured_at=self._wall_clock(),
                    monotonic_s=self._monotonic(),
                    index=index,
                )
                index += 1
        finally:
            capture.release()
