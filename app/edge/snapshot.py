"""JPEG snapshots for events, kept under the contract's size limit."""

from __future__ import annotations

import cv2

from app.contract import MAX_SNAPSHOT_BYTES
from app.edge.sources import Image


def encode_snapshot(
    image: Image, *, max_bytes: int = MAX_SNAPSHOT_BYTES, quality: int = 85, max_side: int = 1280
) -> bytes:
    """Encode ``image`` as JPEG, shrinking quality and then size until it fits ``max_bytes``."""
    height, width = image.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    while True:
        scaled = image
        if scale < 1.0:
            size = (max(1, int(width * scale)), max(1, int(height * scale)))
            scaled = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        ok, buffer = cv2.imencode(".jpg", scaled, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise ValueError("JPEG encoding failed")
        data = buffer.tobytes()
        if len(data) <= max_bytes:
            return data
        if quality > 50:
            quality -= 15
        else:
            scale *= 0.7
