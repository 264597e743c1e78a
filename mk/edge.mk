# Edge agent: unit + integration tests (the latter start the real central on SQLite).
TEST_TARGETS += test-edge

.PHONY: test-edge bench-outbox wheel-edge

test-edge: venv
	.venv/bin/pytest -q --durations=10 tests/edge

bench-outbox: venv
	.venv/bin/python bench/outbox.py

wheel-edge: venv
	.venv/bin/python -m build --wheel --outdir dist packaging/edge
