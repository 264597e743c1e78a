"""Would fine-tuning the recognizer's last layer on the development plates help? Cross-validated.

An experiment, not part of the model build: it answers, with numbers, whether the shipped
recognizer's final linear layer (features -> blank + 0-9 + A-Z + a-z + ``-`` + ``.``) can be
adapted to plates with the labelled images we have, without a GPU.

1. The real edge pipeline runs on every image of ``openalpr-us`` (US scenes, plate box and text)
   and ``vn-gold`` (person-read Vietnamese crops); each text line it crops is kept with its
   label when it can be matched to one (US: the tallest line inside the labelled box;
   Vietnamese: the 1-2 tallest lines, top first, when their count equals the label's lines).
2. Each crop, plus ``--augment`` jittered copies (rotation, shear, scale, blur, contrast,
   resolution), goes through the source PaddleOCR recognizer in onnxruntime, preprocessed
   exactly as ``TextRecognizer.read``; the input of its last MatMul is kept (T x 120).
3. Two folds by a hash of the image name: a new last layer starting from the shipped one is
   trained with CTC on one fold (TensorFlow, L2 pull toward the shipped weights) and scored
   on the other fold's un-jittered crops: greedy decoding, letters and digits only (US: O as
   0), the whole line exact. The shipped layer is scored on the same crops.

Run it in the model build's venv (``tools/models/build_models.sh`` makes it):

    ../venv-models/bin/python tools/models/head_cv.py [--plates ../shared/data/plates]

The last line printed is one JSON object: per set, lines right on the held-out folds with
the shipped layer and with the tuned one.
"""

from __future__ import annotations

import argparse
import json
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
from onnx import helper, numpy_helper

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from build_models import KEEP, rapidocr_models  # noqa: E402
from plates import load_samples  # noqa: E402

from app.edge.reader.litert import LiteRTPlateReader  # noqa: E402


@dataclass
class Crop:
    image: str
    kind: str  # "us" or "vn"
    label: str
    narrow: bool
    pixels: Any


def collect(plates: Path) -> list[Crop]:
    """The line crops the real pipeline reads (every detector pass), with their labels."""
    crops: list[Crop] = []
    passes: list[list[tuple[Any, bool, Any]]] = []  # per detector pass: (box, narrow, crop)
    for kind, folder in (("us", plates / "openalpr-us"), ("vn", plates / "vn-gold")):
        samples, _ = load_samples(folder)
        reader = LiteRTPlateReader(regions=("us",)) if kind == "us" else LiteRTPlateReader()
        pipe = reader.pipeline
        original = pipe._read_boxes

        def spy(
            image: Any, detected: Any, scale: float, pipe: Any = pipe, orig: Any = original
        ) -> Any:
            items = pipe.line_crops(image, detected, scale)
            passes.append(items)
            return orig(image, detected, scale)

        pipe._read_boxes = spy  # type: ignore[method-assign]
        for sample in samples:
            passes.clear()
            pipe.read_image(cv2.imread(str(sample.image)))
            if kind == "us":
                fields = sample.image.with_suffix(".txt").read_text().split("\t")
                x, y, w, h = (float(v) for v in fields[1:5])
            for items in passes:
                if kind == "us":
                    inside = [
                        t
                        for t in items
                        if x <= t[0].center[0] <= x + w and y <= t[0].center[1] <= y + h
                    ]
                    if inside:
                        _, small, pixels = max(inside, key=lambda t: t[0].height)
                        crops.append(Crop(sample.image.name, kind, sample.label, small, pixels))
                    continue
                lines = [part.strip() for part in sample.label.split("/")]
                tall = sorted(items, key=lambda t: -t[0].height)[: len(lines)]
                if len(tall) != len(lines):
                    continue
                heights = [t[0].height for t in tall]
                if len(lines) == 2 and min(heights) < 0.6 * max(heights):
                    continue
                tall.sort(key=lambda t: t[0].center[1])
                for (_, small, pixels), text in zip(tall, lines, strict=True):
                    crops.append(Crop(sample.image.name, kind, text, small, pixels))
    return crops


def prepare(crop: Any, narrow: bool) -> Any:
    """As ``TextRecognizer.read``: 48 px high, -1..1, padded into 320 (or 160) columns."""
    in_h, in_w = 48, 320
    h, w = crop.shape[:2]
    new_w = min(in_w, max(1, int(np.ceil(in_h * w / h))))
    if narrow and new_w <= 160 * 1.35:
        in_w = 160
        new_w = min(new_w, in_w)
    resized = cv2.resize(crop, (new_w, in_h), interpolation=cv2.INTER_LINEAR)
    x = np.zeros((1, in_h, in_w, 3), np.float32)
    x[0, :, :new_w] = resized.astype(np.float32) * (2 / 255) - 1
    return x.transpose(0, 3, 1, 2)


def jitter(crop: Any, rng: np.random.Generator) -> Any:
    h, w = crop.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-4, 4), rng.uniform(0.92, 1.08))
    matrix[0, 1] += rng.uniform(-0.1, 0.1)
    matrix[:, 2] += [rng.uniform(-0.04, 0.04) * w, rng.uniform(-0.06, 0.06) * h]
    out = cv2.warpAffine(crop, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE)
    if rng.random() < 0.5:
        k = int(rng.choice([3, 5]))
        out = cv2.GaussianBlur(out, (k, k), 0)
    out = np.clip(out.astype(np.float32) * rng.uniform(0.7, 1.3) + rng.uniform(-30, 30), 0, 255)
    out = out.astype(np.uint8)
    if rng.random() < 0.3:
        f = rng.uniform(0.4, 0.8)
        out = cv2.resize(cv2.resize(out, (max(2, int(w * f)), max(2, int(h * f)))), (w, h))
    return out


def recognizer_with_features() -> tuple[Any, Any, Any]:
    """onnxruntime session of the source recognizer that also outputs its last layer's input,
    and that layer's weights cut to the shipped classes (as ``build_models.prune_recognizer``)."""
    import onnxruntime as ort

    model = onnx.load(str(rapidocr_models() / "ch_PP-OCRv4_rec_infer.onnx"))
    meta = {p.key: p.value for p in model.metadata_props}
    classes = ["<blank>", *meta["character"].split("\n"), " "]
    keep = [0] + [classes.index(c) for c in KEEP]
    nodes = list(model.graph.node)
    matmul, add = nodes[-3], nodes[-2]
    tensors = {i.name: i for i in model.graph.initializer}
    for node in nodes:
        if node.op_type == "Constant" and node.attribute[0].name == "value":
            tensors[node.output[0]] = node.attribute[0].t
    weights = numpy_helper.to_array(tensors[matmul.input[1]])[:, keep]
    bias = numpy_helper.to_array(tensors[add.input[1]])[keep]
    model.graph.output.append(
        helper.make_tensor_value_info(matmul.input[0], onnx.TensorProto.FLOAT, None)
    )
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session, weights, bias


def normalized(text: str, kind: str) -> str:
    text = "".join(c for c in text.upper() if c.isalnum())
    return text.replace("O", "0") if kind == "us" else text


def greedy(features: Any, weights: Any, bias: Any) -> str:
    best = (features @ weights + bias).argmax(1)
    out, previous = [], 0
    for k in best.tolist():
        if k not in (previous, 0):
            out.append(KEEP[k - 1])
        previous = k
    return "".join(out)


def train_head(
    rows: list[tuple[Any, list[int]]], w0: Any, b0: Any, *, epochs: int, pull: float, lr: float
) -> tuple[Any, Any]:
    import tensorflow as tf

    tf.random.set_seed(0)
    weights, bias = tf.Variable(w0), tf.Variable(b0)
    optimizer = tf.keras.optimizers.Adam(lr)
    order = list(range(len(rows)))
    rng = np.random.default_rng(0)
    for _ in range(epochs):
        rng.shuffle(order)
        for start in range(0, len(order), 64):
            batch = [rows[k] for k in order[start : start + 64]]
            steps = max(f.shape[0] for f, _ in batch)
            x = np.zeros((len(batch), steps, w0.shape[0]), np.float32)
            for j, (f, _) in enumerate(batch):
                x[j, : f.shape[0]] = f
            labels = tf.cast(tf.ragged.constant([lab for _, lab in batch]).to_sparse(), tf.int32)
            with tf.GradientTape() as tape:
                logits = tf.einsum("btc,cn->btn", x, weights) + bias
                loss = tf.reduce_mean(
                    tf.nn.ctc_loss(
                        labels,
                        logits,
                        None,
                        [f.shape[0] for f, _ in batch],
                        logits_time_major=False,
                        blank_index=0,
                    )
                )
                drift = tf.reduce_sum((weights - w0) ** 2) + tf.reduce_sum((bias - b0) ** 2)
                loss += pull * drift
            grads = tape.gradient(loss, [weights, bias])
            optimizer.apply_gradients(zip(grads, [weights, bias], strict=True))
    return weights.numpy(), bias.numpy()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plates", type=Path, default=REPO.parent / "shared/data/plates")
    parser.add_argument("--augment", type=int, default=8, help="jittered copies per crop")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--pull", type=float, default=0.1, help="L2 toward the shipped layer")
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args()

    crops = collect(args.plates)
    session, w0, b0 = recognizer_with_features()
    rng = np.random.default_rng(0)
    feats: list[list[Any]] = []  # per crop: [plain, jittered...]
    for crop in crops:
        copies = [crop.pixels] + [jitter(crop.pixels, rng) for _ in range(args.augment)]
        feats.append([session.run(None, {"x": prepare(c, crop.narrow)})[1][0] for c in copies])
    fold = [zlib.crc32(c.image.encode()) % 2 for c in crops]

    def label(text: str) -> list[int]:
        return [1 + KEEP.index(c) for c in text.replace(" ", "").upper() if c in KEEP]

    def score(weights: Any, bias: Any, held: int) -> dict[str, list[int]]:
        right: dict[str, list[int]] = {"us": [0, 0], "vn": [0, 0]}
        for k, crop in enumerate(crops):
            if fold[k] != held:
                continue
            read = greedy(feats[k][0], weights, bias)
            right[crop.kind][0] += normalized(read, crop.kind) == normalized(crop.label, crop.kind)
            right[crop.kind][1] += 1
        return right

    result: dict[str, Any] = {"crops": len(crops), "augment": args.augment}
    totals = {kind: {"shipped": 0, "tuned": 0, "n": 0} for kind in ("us", "vn")}
    for held in (0, 1):
        rows = [
            (f, label(crops[k].label))
            for k in range(len(crops))
            if fold[k] != held
            for f in feats[k]
            if 0 < len(label(crops[k].label)) <= f.shape[0]
        ]
        weights, bias = train_head(rows, w0, b0, epochs=args.epochs, pull=args.pull, lr=args.lr)
        shipped, tuned = score(w0, b0, held), score(weights, bias, held)
        for kind in ("us", "vn"):
            totals[kind]["shipped"] += shipped[kind][0]
            totals[kind]["tuned"] += tuned[kind][0]
            totals[kind]["n"] += shipped[kind][1]
        print(f"fold {held} held out: shipped {shipped}, tuned {tuned}")
    for kind, t in totals.items():
        result[f"{kind}_lines"] = t["n"]
        result[f"{kind}_shipped_right"] = t["shipped"]
        result[f"{kind}_tuned_right"] = t["tuned"]
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
