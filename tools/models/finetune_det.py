"""Fine-tune the text detector (PP-OCRv4 DB) on plate-line boxes, on a CPU.

The detector the edge ships was trained on text of every kind; a lane wants plates only, and
small ones. Given boxes of plate lines in a site's own photos (``plate_boxes.py``: the lines
whose reads matched the photos' labels), this trains the detector's probability map to mark
those lines and nothing else (shop signs, on-screen text, a van's lettering), at scales from
half to one and a half times the lane's own, so that smaller plates are found too:

    ../venv-train/bin/python tools/models/finetune_det.py /tmp/boxes-vn.json /tmp/boxes-us.json \\
        --out /tmp/plate_det_tuned.onnx --epochs 4

It starts from the ONNX detector the models are built from (``rapidocr-onnxruntime``'s
``ch_PP-OCRv4_det_infer.onnx``, Apache-2.0; ``--base``), runs it in PyTorch (``onnx2torch``),
and writes the tuned weights back into a copy of that same ONNX graph (same nodes, same
names), which ``build_models.py --det ONNX`` turns into the edge's TFLite detectors. Its own
venv (never the app's): ``tools/models/requirements-train.txt``.

Loss as DB's for its probability map: binary cross-entropy over the positives and the three
times as many hardest negatives, plus a dice loss. The target of a box is its rectangle before
the detector's "unclip" (what the map itself marked). Batch-norm statistics stay frozen.

A detector tuned on photos is derived from them: keep it with them (a site's own photos are
its own), never in this repository unless the photos' licence allows.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

# the reader's own input normalization and box growth: the training must match them
from app.edge.reader.ocr import DET_MEAN, DET_STD, UNCLIP_RATIO, FloatArray, Image  # noqa: E402

if TYPE_CHECKING:  # the training venv's; imported where used, so the geometry is testable
    import onnx
    import torch


def inline_constants(model: onnx.ModelProto) -> onnx.ModelProto:
    """The PaddleOCR export keeps its weights in Constant nodes; onnx2torch wants initializers."""
    graph = model.graph
    keep = []
    for node in graph.node:
        if (
            node.op_type == "Constant"
            and len(node.attribute) == 1
            and node.attribute[0].name == "value"
        ):
            tensor = node.attribute[0].t
            tensor.name = node.output[0]
            graph.initializer.append(tensor)
        else:
            keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)
    return model


def before_unclip(quad: FloatArray) -> tuple[tuple[float, float], tuple[float, float], float]:
    """The rotated rectangle the probability map marked for a detector box (the inverse of
    TextDetector's unclip: each side grew by area * ratio / perimeter)."""
    (cx, cy), (bw, bh), angle = cv2.minAreaRect(quad.astype(np.float32))
    lo, hi = 0.0, min(bw, bh)
    for _ in range(40):  # the smaller side t: t + 2 d(t) = min side, d grows with t
        t = (lo + hi) / 2
        rw, rh = (bw - bh) + t if bw >= bh else t, (bh - bw) + t if bh > bw else t
        d = rw * rh * UNCLIP_RATIO / (2 * (rw + rh))
        if t + 2 * d > min(bw, bh):
            hi = t
        else:
            lo = t
    t = lo
    rw, rh = ((bw - bh) + t, t) if bw >= bh else (t, (bh - bw) + t)
    return (cx, cy), (max(rw, 1.0), max(rh, 1.0)), angle


def load_boxes(paths: list[Path]) -> list[tuple[str, list[FloatArray]]]:
    items = []
    for path in paths:
        data = json.loads(path.read_text(encoding="utf-8"))
        for entry in data["images"]:
            if entry["complete"] and entry["lines"]:
                items.append((entry["image"], [np.array(q, np.float32) for q in entry["lines"]]))
    return items


def sample(
    image: Image,
    quads: list[FloatArray],
    size: tuple[int, int],
    in_hw: tuple[int, int],
    rng: random.Random,
    scales: tuple[float, float] = (0.5, 1.5),
    max_turn: float = 0.0,
) -> tuple[FloatArray, FloatArray]:
    """One training crop (CHW, normalized) and its target map, at the lane's scale times a
    factor drawn from ``scales``, turned by up to ``max_turn`` degrees either way."""
    h, w = image.shape[:2]
    scale = min(in_hw[0] / h, in_hw[1] / w) * rng.uniform(*scales)
    img = cv2.resize(
        image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
    )
    quads = [q * scale for q in quads]
    if max_turn > 0:
        ih, iw = img.shape[:2]
        turn = cv2.getRotationMatrix2D((iw / 2, ih / 2), rng.uniform(-max_turn, max_turn), 1.0)
        img = cv2.warpAffine(img, turn, (iw, ih), borderMode=cv2.BORDER_REPLICATE)
        quads = [(q @ turn[:, :2].T + turn[:, 2]).astype(np.float32) for q in quads]
    target = np.zeros(img.shape[:2], np.float32)
    for quad in quads:
        (cx, cy), (rw, rh), angle = before_unclip(quad)
        pts = cv2.boxPoints(((cx, cy), (rw, rh), angle)).round().astype(np.int32)
        cv2.fillPoly(target, [pts], 1.0)
    ch, cw = size
    ih, iw = img.shape[:2]
    if rng.random() < 0.85:  # around a plate line
        q = quads[rng.randrange(len(quads))]
        qx, qy = q.mean(axis=0)
        x0 = int(qx - rng.uniform(0.1, 0.9) * cw)
        y0 = int(qy - rng.uniform(0.1, 0.9) * ch)
    else:
        x0, y0 = (
            rng.randint(min(0, iw - cw), max(0, iw - cw)),
            rng.randint(min(0, ih - ch), max(0, ih - ch)),
        )
    out = np.zeros((ch, cw, 3), np.float32)
    out_t = np.zeros((ch, cw), np.float32)
    sx0, sy0 = max(0, x0), max(0, y0)
    sx1, sy1 = min(iw, x0 + cw), min(ih, y0 + ch)
    if sx1 > sx0 and sy1 > sy0:
        crop = img[sy0:sy1, sx0:sx1].astype(np.float32)
        crop = crop * rng.uniform(0.7, 1.3) + rng.uniform(-25, 25)  # contrast, brightness
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = (np.clip(crop, 0, 255) - DET_MEAN) / DET_STD
        out_t[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = target[sy0:sy1, sx0:sx1]
    return out.transpose(2, 0, 1), out_t


def db_loss(prob: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    import torch

    eps = 1e-6
    bce = torch.nn.functional.binary_cross_entropy(
        prob.clamp(eps, 1 - eps), target, reduction="none"
    )
    pos = target > 0.5
    n_pos = int(pos.sum())
    neg_loss = bce[~pos]
    n_neg = min(int(neg_loss.numel()), max(3 * n_pos, 1000))
    hard = torch.topk(neg_loss.flatten(), n_neg).values
    bce_term = (bce[pos].sum() + hard.sum()) / (n_pos + n_neg + eps)
    dice = 1 - 2 * (prob * target).sum() / (prob.sum() + target.sum() + eps)
    return bce_term + dice


def write_back(model: onnx.ModelProto, torch_model: Any, out: Path) -> None:
    """The tuned parameters into the ONNX graph's own weights (same graph, same names)."""
    import onnx
    from onnx import numpy_helper

    params = dict(torch_model.named_parameters())
    inits = {t.name: t for t in model.graph.initializer}
    written = 0
    for node in model.graph.node:
        if node.op_type not in ("Conv", "ConvTranspose", "BatchNormalization"):
            continue
        prefix = node.name.replace(".", "/")
        for suffix, index in (("weight", 1), ("bias", 2)):
            param = params.get(f"{prefix}.{suffix}")
            if param is None or len(node.input) <= index:
                continue
            name = node.input[index]
            array = param.detach().cpu().numpy().astype(np.float32)
            inits[name].CopyFrom(
                numpy_helper.from_array(
                    array.reshape(numpy_helper.to_array(inits[name]).shape), name
                )
            )
            written += 1
    if written != len(params):
        raise SystemExit(
            f"wrote {written} of {len(params)} parameters back: the graph is not the one expected"
        )
    onnx.save(model, str(out))


def shipped_input() -> tuple[int, int]:
    """HxW of the shipped full-frame (``fast``) detector, as its build recorded it."""
    manifest = json.loads((REPO / "app/edge/models/plate_models.json").read_text("utf-8"))
    _, _, h, w = manifest["plate_det"]["input_nchw"]
    return int(h), int(w)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("boxes", type=Path, nargs="+", help="plate_boxes.py outputs")
    parser.add_argument("--base", type=Path, help="ch_PP-OCRv4_det_infer.onnx")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--crop", type=int, nargs=2, default=(320, 320), metavar=("H", "W"))
    parser.add_argument(
        "--input",
        type=int,
        nargs=2,
        default=shipped_input(),
        metavar=("H", "W"),
        help="the detector input the lane's scale is taken from (default: the shipped `fast`"
        " detector's, from app/edge/models/plate_models.json)",
    )
    parser.add_argument(
        "--scales",
        type=float,
        nargs=2,
        default=(0.5, 1.5),
        metavar=("LO", "HI"),
        help="the lane's scale is multiplied by a factor drawn from LO..HI",
    )
    parser.add_argument(
        "--turn", type=float, default=0.0, help="turn crops up to this many degrees"
    )
    parser.add_argument(
        "--init", type=Path, help="start from this ONNX (an earlier round's) instead of --base"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if (args.base is None) == (args.init is None):
        parser.error("give the detector to start from: --base or --init")

    import onnx
    import onnx2torch
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)  # noqa: S311 (augmentation, not secrets)
    items = load_boxes(args.boxes)
    if not items:
        raise SystemExit("no complete photo in the boxes given")
    images: dict[str, Image] = {}
    for path, _ in items:
        if (image := cv2.imread(path)) is None:
            raise SystemExit(f"cannot read {path}")
        images[path] = image
    model = inline_constants(onnx.load(str(args.init or args.base)))
    net = onnx2torch.convert(model)
    net.train()
    for module in net.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.eval()  # few, small batches: keep the trained statistics
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    steps = args.epochs * (len(items) // args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=args.lr, total_steps=steps, pct_start=0.1
    )
    started = time.monotonic()
    step = 0
    for epoch in range(args.epochs):
        order = list(range(len(items)))
        rng.shuffle(order)
        total = 0.0
        for b in range(len(items) // args.batch):
            xs, ts = [], []
            for k in order[b * args.batch : (b + 1) * args.batch]:
                path, quads = items[k]
                x, t = sample(
                    images[path],
                    quads,
                    tuple(args.crop),
                    tuple(args.input),
                    rng,
                    tuple(args.scales),
                    args.turn,
                )
                xs.append(x)
                ts.append(t)
            prob = net(torch.from_numpy(np.stack(xs)))[:, 0]
            loss = db_loss(prob, torch.from_numpy(np.stack(ts)))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            total += float(loss.detach())
            if step % 20 == 0:
                print(
                    f"epoch {epoch} step {step}/{steps} loss {total / (b + 1):.4f} "
                    f"{time.monotonic() - started:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )
        write_back(model, net, args.out)  # every epoch: a run cut short keeps its last one
    print(
        json.dumps(
            {
                "photos": len(items),
                "epochs": args.epochs,
                "steps": steps,
                "train_s": round(time.monotonic() - started, 1),
                "out": str(args.out),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
