"""The optional plate-specific reader: third-party ONNX models run by ``onnxruntime``.

Installed apart from the project (``parking-edge models install``, catalogue in
``model_catalogue.toml``; never committed), selected by ``[reader] plate_models = "DIR"``:

* **HyperLPR3's plate detector** (``hyperlpr3-y5fu_{320,640}x_sim.onnx``, Apache-2.0): a
  YOLOv5-style head that gives each plate's box, score, its **four corners** and whether it
  has one or two rows. The corners rectify the plate (a perspective warp to an upright
  rectangle), whatever the camera's angle.
* **fast-plate-ocr's global recogniser** (``fast-plate-ocr-cct_xs_v1_global.onnx``, MIT): the
  rectified plate resized to 64x128 RGB, 9 character slots of 0-9/A-Z or padding.

Both recognisers read each rectified plate: fast-plate-ocr the whole plate, the committed
PaddleOCR line recogniser (``plate_rec*.tflite``) the plate as one line, or its two rows. The
lane's region profiles (``grammar``) turn every read into candidate plates and the same ranking
as the TFLite pipeline (``grammar.candidate_rank``) chooses, the plate most reads agree on
first. When the detector finds no plate,
the TFLite pipeline reads the frame as it would alone (close-up crops, text the detector was not
trained for). onnxruntime, not TFLite: the recogniser does not convert (onnx2tf stops at an
attention MatMul), and onnxruntime has wheels for the Pi's aarch64.
"""

from __future__ import annotations

import ctypes
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import cv2
import numpy as np

from app.edge.reader import Detector, PlateBox, PlateRead
from app.edge.reader.grammar import PlateGrammar, PlateMatch, candidate_rank
from app.edge.reader.litert import LiteRTPlateReader, ModelError
from app.edge.reader.ocr import ALNUM, CharRead, FloatArray, Image, TextBox, order_quad
from app.edge.reader.pipeline import MAX_CANDIDATES, PlateResult, _vehicle_type, plate_reads
from app.edge.sources import Frame

DETECTOR_FILES = ("hyperlpr3-y5fu_320x_sim.onnx", "hyperlpr3-y5fu_640x_sim.onnx")
RECOGNISER_FILE = "fast-plate-ocr-cct_xs_v1_global.onnx"
REQUIRED_FILES = (*DETECTOR_FILES, RECOGNISER_FILE)
PLATE_ALPHABET = ALNUM + "_"  # fast-plate-ocr's classes; "_" pads the 9 slots


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


def lean_process_memory(mmap_threshold: int = 128 * 1024) -> None:
    """Two process-wide settings that keep the reader's peak RSS down (docs/reader.md):

    * glibc: blocks of ``mmap_threshold`` bytes and more (frames, crops, the TFLite
      detectors' inputs) are mapped and given back when freed.
      glibc otherwise raises that threshold each time such a block is freed, serving later
      ones from a heap that fragments and is not returned (-22 MB on US scenes).
    * OpenCV: no Intel IPP (its first warp maps ~7 MB; the Pi has no IPP anyway).

    Elsewhere than glibc (musl, macOS) the first does nothing."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        pass
    else:
        mallopt(M_MMAP_THRESHOLD, mmap_threshold)
    cv2.ipp.setUseIPP(False)


MADV_DONTNEED = 4  # Linux


def release_model_pages(suffixes: tuple[str, ...] = (".tflite", ".onnx")) -> int:
    """Drop the resident pages of the model files the runtimes mapped (Linux; read-only
    mappings only): once loaded, the weights live unpacked in the runtimes' own buffers, and
    the file's pages (~17 MB for the four TFLite models) are not read again; a page that is
    read comes back from the page cache. Returns how many mappings were released."""
    try:
        maps = Path("/proc/self/maps").read_text(encoding="utf-8")
        madvise = ctypes.CDLL(None).madvise
    except (OSError, AttributeError):
        return 0  # not Linux
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    released = 0
    for line in maps.splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or "w" in fields[1] or not fields[5].endswith(suffixes):
            continue
        start, end = (int(x, 16) for x in fields[0].split("-"))
        released += madvise(start, end - start, MADV_DONTNEED) == 0
    return released


def missing_files(directory: Path) -> list[str]:
    """The files the reader needs that ``directory`` lacks (all of them when it is no folder)."""
    return [name for name in REQUIRED_FILES if not (directory / name).is_file()]


class OnnxModel:
    """One onnxruntime session (CPU, ``threads`` intra-op threads)."""

    def __init__(self, path: Path, *, threads: int = 1) -> None:
        if not path.is_file():
            raise ModelError(
                f"model file {path} is missing (parking-edge models install; docs/reader.md)"
            )
        try:
            import onnxruntime as ort
        except ImportError as exc:  # the optional extra is not installed
            raise ModelError(
                "plate_models needs onnxruntime: install the plate-models extra "
                "(pip install 'parking-edge[plate-models]')"
            ) from exc
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # An arena (its largest call's activations, reused), no memory pattern: without the
        # arena every call maps and unmaps its activations (lean_process_memory's threshold),
        # +10 ms per frame for ~2 MB less.
        options.enable_cpu_mem_arena = True
        options.enable_mem_pattern = False
        self.path = path
        self._session: Any = ort.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        self._input = str(self._session.get_inputs()[0].name)
        self.input_shape = tuple(self._session.get_inputs()[0].shape)

    def __call__(self, x: Any) -> FloatArray:
        return cast(FloatArray, self._session.run(None, {self._input: x})[0])


@dataclass(frozen=True, slots=True)
class PlateQuad:
    quad: FloatArray  # (4, 2) float32, frame pixels: tl, tr, br, bl
    score: float
    rows: int  # 1 or 2


class CornerDetector:
    """HyperLPR3's plate detector: letterboxed RGB 0..1 in, boxes + corners + rows out."""

    def __init__(self, model: OnnxModel, *, min_score: float = 0.3, iou: float = 0.5) -> None:
        self.model = model
        self.size = int(model.input_shape[2])
        self.min_score = min_score
        self.iou = iou

    def detect(self, image: Image) -> list[PlateQuad]:
        h, w = image.shape[:2]
        scale = min(self.size / h, self.size / w)
        new_w, new_h = max(1, int(w * scale)), max(1, int(h * scale))
        top, left = (self.size - new_h) // 2, (self.size - new_w) // 2
        canvas = np.zeros((self.size, self.size, 3), np.uint8)
        canvas[top : top + new_h, left : left + new_w] = cv2.resize(image, (new_w, new_h))
        x = canvas[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32) / 255
        out = self.model(x)[0]
        out = out[out[:, 4] > self.min_score]
        if not len(out):
            return []
        cls = out[:, 13:15] * out[:, 4:5]
        scores = cls.max(axis=1)
        keep = scores >= self.min_score
        out, scores, rows = out[keep], scores[keep], cls[keep].argmax(axis=1) + 1
        cx, cy, bw, bh = out[:, 0], out[:, 1], out[:, 2], out[:, 3]
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
        found = []
        for i in _nms(boxes, scores, self.iou):
            pts = out[i, 5:13].reshape(4, 2).copy()
            pts[:, 0] = (pts[:, 0] - left) / scale
            pts[:, 1] = (pts[:, 1] - top) / scale
            found.append(PlateQuad(order_quad(pts), float(scores[i]), int(rows[i])))
        return found


def _nms(boxes: FloatArray, scores: FloatArray, iou: float) -> list[int]:
    order = list(np.argsort(-scores))
    keep: list[int] = []
    while order:
        i = order.pop(0)
        keep.append(int(i))
        rest = np.array(order, dtype=np.int64)
        if not len(rest):
            break
        x0 = np.maximum(boxes[i, 0], boxes[rest, 0])
        y0 = np.maximum(boxes[i, 1], boxes[rest, 1])
        x1 = np.minimum(boxes[i, 2], boxes[rest, 2])
        y1 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.maximum(0, x1 - x0) * np.maximum(0, y1 - y0)
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        union = area[i] + area[rest] - inter
        order = [
            int(k) for k, o in zip(rest, inter / np.maximum(union, 1e-6), strict=True) if o <= iou
        ]
    return keep


class SlotRecognizer:
    """fast-plate-ocr: a plate crop (BGR) -> up to 9 characters, each with its probabilities."""

    def __init__(self, model: OnnxModel) -> None:
        self.model = model
        _, self.height, self.width, _ = (
            int(v) if isinstance(v, int) else 1 for v in model.input_shape
        )

    def read(self, crop: Image) -> list[CharRead]:
        rgb = cv2.cvtColor(
            cv2.resize(crop, (self.width, self.height), interpolation=cv2.INTER_LINEAR),
            cv2.COLOR_BGR2RGB,
        )
        probs = self.model(rgb[None].astype(np.uint8))[0]  # (9, 37)
        chars = []
        for slot in probs:
            k = int(slot.argmax())
            if PLATE_ALPHABET[k] == "_":
                continue
            chars.append(CharRead(ALNUM[k], float(slot[k]), slot[: len(ALNUM)].astype(np.float32)))
        return chars


def quad_height(quad: FloatArray) -> float:
    """The taller of the quad's two sides (tl-bl, tr-br), in pixels."""
    return float(max(np.linalg.norm(quad[3] - quad[0]), np.linalg.norm(quad[2] - quad[1])))


def grow_quad(quad: FloatArray, pad: float) -> FloatArray:
    """The quad grown by ``pad`` of its size on every side."""
    center = quad.mean(axis=0)
    grown: FloatArray = (center + (quad - center) * (1 + 2 * pad)).astype(np.float32)
    return grown


def warp_plate(image: Image, quad: FloatArray, pad: float) -> Image:
    """The plate's quad grown by ``pad`` of its size on every side, warped upright."""
    grown = grow_quad(quad, pad)
    width = max(
        8,
        round(float(max(np.linalg.norm(grown[1] - grown[0]), np.linalg.norm(grown[2] - grown[3])))),
    )
    height = max(4, round(quad_height(grown)))
    dst = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    matrix = cv2.getPerspectiveTransform(grown, dst)
    out: Image = cv2.warpPerspective(
        image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return out


class PlateModelsReader:
    """``PlateReader`` over the plate-specific models, with the TFLite reader beside it."""

    def __init__(
        self,
        *,
        plate_models: Path,
        beside: LiteRTPlateReader | None = None,
        threads: int = 1,
        detector: Detector = "fast",
        max_quads: int = 2,
        pads: Sequence[float] = (0.04, 0.12),
        trust_confidence: float = 0.9,
    ) -> None:
        lean_process_memory()
        missing = missing_files(plate_models)
        if missing:
            raise ModelError(
                f"plate_models {plate_models}: missing {', '.join(missing)} "
                "(parking-edge models install hyperlpr3 fast-plate-ocr-global)"
            )
        # The TFLite reader beside the models: its region profiles, its recogniser (the second
        # read of each plate), its plates per frame, and the whole frame when no plate is found.
        self.fallback = beside or LiteRTPlateReader(threads=threads, detector=detector, narrow=True)
        self.grammar: PlateGrammar = self.fallback.pipeline.grammar
        self.line_reader = self.fallback.pipeline.recognizer
        # "fast": the plate detector at 320 px only; "fine" and "cascade": at 640 px too when
        # the 320 px look found no plate it can trust (small plates in wide scenes; +~50 MB)
        self.detectors = [
            CornerDetector(OnnxModel(plate_models / name, threads=threads))
            for name in (DETECTOR_FILES[:1] if detector == "fast" else DETECTOR_FILES)
        ]
        self.recognizer = SlotRecognizer(OnnxModel(plate_models / RECOGNISER_FILE, threads=threads))
        self.max_plates = self.fallback.pipeline.max_plates
        self.max_quads = max_quads
        self.pads = tuple(pads)
        self.trust_confidence = trust_confidence
        release_model_pages()  # both runtimes' models are loaded: their files' pages go

    def read(self, frame: Frame) -> list[PlateRead]:
        return plate_reads(self.read_image(frame.image))

    def read_image(self, image: Image) -> list[PlateResult]:
        if image.size == 0 or image.ndim != 3 or image.shape[0] < 4 or image.shape[1] < 4:
            return self.fallback.read_image(image)
        if image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        results: list[PlateResult] = []
        for n, detector in enumerate(self.detectors):
            # the small input first; the large one when it found no plate it can trust
            results = self._read_quads(image, detector.detect(image)) or results
            if results and (n == len(self.detectors) - 1 or self._trusted(results[0])):
                break
        if not results:
            return self.fallback.read_image(image)
        return results[: self.max_plates]

    def _trusted(self, result: PlateResult) -> bool:
        return (
            result.grammar == self.grammar.regions[0]
            and bool(result.plate)
            and result.confidence >= self.trust_confidence
            and result.rank[:3] == (0.0, 0.0, 0.0)
        )

    def _read_quads(self, image: Image, quads: Sequence[PlateQuad]) -> list[PlateResult]:
        results: list[PlateResult] = []
        for quad in quads[: self.max_quads]:
            best = self._read_plate(image, quad)
            if best is not None:
                results.append(best)
        results.sort(key=lambda r: r.rank)
        return results

    def _read_plate(self, image: Image, quad: PlateQuad) -> PlateResult | None:
        """Every recogniser's read of the plate at every padding; the plate most reads agree
        on wins (then the best-ranked one)."""
        tries: list[tuple[list[list[CharRead]], bool]] = []  # lines, separators read
        band = ""  # the EU band's code, once seen (fast-plate-ocr reads only the number)
        for pad in self.pads:
            crop = warp_plate(image, quad.quad, pad)
            chars = self.recognizer.read(crop)
            if chars:
                tries.append(([chars], False))  # slots: never a dash or a gap
            if quad.rows == 2:
                split = crop.shape[0] * 2 // 5  # the top row is the smaller one
                top = self.line_reader.read(crop[: split + crop.shape[0] // 10], narrow=True)
                bottom = self.line_reader.read(crop[split:], narrow=False)
                tries.append(([list(top.chars), list(bottom.chars)], True))
            else:
                line = self.line_reader.read(crop, narrow=crop.shape[1] < 3 * crop.shape[0])
                if self.grammar.bands:  # EU: the blue band's code and emblems out of the line
                    box = TextBox(grow_quad(quad.quad, pad), quad.score)
                    line, found = self.fallback.pipeline._strip_marks(image, box, crop, line)
                    band = band or found
                tries.append(([list(line.chars)], True))
        # every read at the plate's own height: a padding's larger crop is not larger print
        line_height = quad_height(quad.quad) / quad.rows
        reads: list[tuple[PlateMatch, list[PlateMatch], str]] = []
        for lines, separators in tries:
            if not any(c.char in ALNUM for line in lines for c in line):
                continue
            # the band seen by any read steers every read's formats (and is the country)
            matches = self.grammar.match_all(lines, band, separators=separators)
            if matches:
                raw = " / ".join("".join(c.char for c in line) for line in lines)
                reads.append((matches[0], matches, raw))
        if not reads:
            return None
        votes = Counter(best.plate for best, _, _ in reads)
        ranked = sorted(
            reads,
            key=lambda r: candidate_rank(self.grammar, r[0], line_height, votes[r[0].plate]),
        )
        best, matches, raw = ranked[0]
        seen: dict[str, tuple[str, float]] = {}
        for _, others, _ in ranked:
            for m in others:
                seen.setdefault(m.plate, (m.display, round(m.confidence, 4)))
        x0, y0 = quad.quad.min(axis=0)
        x1, y1 = quad.quad.max(axis=0)
        return PlateResult(
            plate=best.plate,
            display=best.display,
            confidence=round(best.confidence, 4),
            box=PlateBox(int(x0), int(y0), int(x1 - x0), int(y1 - y0)),
            vehicle_type=_vehicle_type(best),
            candidates=tuple(list(seen.values())[:MAX_CANDIDATES]),
            raw=raw,
            line_height=line_height,
            rank=candidate_rank(self.grammar, best, line_height, votes[best.plate]),
            grammar=best.grammar,
            country=best.country,
        )
