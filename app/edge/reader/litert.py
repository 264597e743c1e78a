"""The real plate reader: the committed TFLite models run by ``ai-edge-litert``.

``app/edge/models/`` holds ``plate_det.tflite`` (text detection), ``plate_rec.tflite`` (line
recognition) and ``plate_models.json`` (the recognizer's classes, sizes and checksums); see
``app/edge/models/MODELS.md``. Nothing is downloaded: a missing file is an error at start.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from app.edge.reader import Detector, PlateRead
from app.edge.reader.grammar import US_GENERIC, PlateGrammar
from app.edge.reader.ocr import FloatArray, TextDetector, TextRecognizer
from app.edge.reader.pipeline import PlatePipeline, PlateResult, plate_reads
from app.edge.sources import Frame, Image

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"


class ModelError(RuntimeError):
    """A model file is missing or unusable."""


class LiteRTModel:
    """One TFLite model with one NHWC float32 input and one float32 output."""

    def __init__(self, path: Path, *, threads: int = 1) -> None:
        if not path.is_file():
            raise ModelError(f"model file {path} is missing (see app/edge/models/MODELS.md)")
        from ai_edge_litert.interpreter import Interpreter

        self.path = path
        self._interpreter: Any = Interpreter(model_path=str(path), num_threads=threads)
        self._interpreter.allocate_tensors()
        inp = self._interpreter.get_input_details()[0]
        self._input = int(inp["index"])
        self._output = int(self._interpreter.get_output_details()[0]["index"])
        n, h, w, c = (int(v) for v in inp["shape"])
        self._shape = (n, h, w, c)

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return self._shape

    def __call__(self, x: FloatArray) -> FloatArray:
        self._interpreter.set_tensor(self._input, x)
        self._interpreter.invoke()
        return cast(FloatArray, np.array(self._interpreter.get_tensor(self._output)))


def load_classes(models_dir: Path) -> list[str]:
    manifest = models_dir / "plate_models.json"
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {manifest}: {exc}") from exc
    return [str(c) for c in data["classes"]]


class LiteRTPlateReader:
    """``PlateReader`` over the TFLite detector + recognizer and a plate grammar."""

    def __init__(
        self,
        *,
        models_dir: Path = MODELS_DIR,
        threads: int = 1,
        regions: Sequence[str] = ("vn", "generic"),
        generic_patterns: Sequence[str] = US_GENERIC,
        generic_templates: Sequence[str] = (),
        same_glyphs: str = "",
        max_plates: int = 1,
        max_lines: int = 8,  # signs and lettering may outnumber the plate's line (was 5)
        detector: Detector = "fast",
        zoom: bool = True,
        zoom_tiles: int = 0,
        det_thresh: float = 0.3,
        det_box_thresh: float = 0.5,
        narrow: bool = False,
    ) -> None:
        # The small detector (if shipped) looks first; the full-frame one when it saw no plate
        # large enough to trust. "fine": a 544x960 full-frame detector for small plates in large
        # scenes, ~1.5x the detection time of the 448x800 "fast" one. "cascade": the fast one,
        # then the fine one when the fast one's plate is not trusted either (both in memory).
        names = {
            "fast": ["plate_det_small.tflite", "plate_det.tflite"],
            "fine": ["plate_det_small.tflite", "plate_det_fine.tflite"],
            "cascade": ["plate_det_small.tflite", "plate_det.tflite", "plate_det_fine.tflite"],
        }[detector]
        detectors = [
            TextDetector(
                LiteRTModel(models_dir / name, threads=threads),
                thresh=det_thresh,
                box_thresh=det_box_thresh,
            )
            for name in names
            if name != "plate_det_small.tflite" or (models_dir / name).is_file()
        ]
        # Small print is read by the full-width recognizer (48x320, as PaddleOCR itself pads
        # every line to at least 320 px): the PP-OCRv6 recognizer reads short lines of small
        # print better so than in the narrow 48x160 copy (US scenes +6 of 222, docs/reader.md).
        # ``narrow=True`` loads the narrow copy too and reads small print with it: about half
        # the recognition time per such line, ~20 MB more memory (the plate-models reader
        # reads its plates' rows with it).
        narrow_file = models_dir / "plate_rec_narrow.tflite"
        recognizer = TextRecognizer(
            LiteRTModel(models_dir / "plate_rec.tflite", threads=threads),
            load_classes(models_dir),
            LiteRTModel(narrow_file, threads=threads) if narrow and narrow_file.is_file() else None,
        )
        grammar = PlateGrammar(
            regions,
            generic_patterns=generic_patterns,
            generic_templates=generic_templates,
            same_glyphs=same_glyphs,
        )
        self.pipeline = PlatePipeline(
            detectors,
            recognizer,
            grammar,
            max_plates=max_plates,
            max_lines=max_lines,
            # the small detector, when shipped, looks at the rows of characters of frames where
            # the full-frame one found nothing, magnified
            zoom=detectors[0] if zoom and len(detectors) > 1 else None,
            # still nothing: the full-frame detector over a grid of upscaled tiles (0 = off)
            zoom_tiles=zoom_tiles,
        )

    def read_image(self, image: Image) -> list[PlateResult]:
        return self.pipeline.read_image(image)

    def read(self, frame: Frame) -> list[PlateRead]:
        return plate_reads(self.read_image(frame.image))
