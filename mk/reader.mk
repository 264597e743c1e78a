# Plate reader (issue 5): accuracy/speed bench on the shared images, and the model rebuild.
# Its tests live in tests/edge/test_reader_*.py and run with `make test-edge`.
PLATES ?= ../shared/data/plates

.PHONY: bench-plates models-plates

bench-plates: venv
	.venv/bin/python bench/plates.py $(PLATES)/openalpr-us
	.venv/bin/python bench/plates.py $(PLATES)/vn-gold

# Rebuilds app/edge/models/*.tflite in its own venv outside the repo (~2 GB, a few minutes).
models-plates:
	tools/models/build_models.sh
