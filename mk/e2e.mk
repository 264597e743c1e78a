# Browser tests of the operators' dashboard (tests/e2e, docs/dashboard.md): the real central
# process on SQLite, Debian's Chromium driven by Playwright. No browser is ever downloaded.
#   make test-e2e        install what is missing, run the suite; screenshots in test-output/e2e/
TEST_TARGETS += test-e2e

E2E_CHROMIUM ?= /usr/bin/chromium
_e2e_sudo := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: e2e-deps test-e2e

e2e-deps: venv
	@test -x $(E2E_CHROMIUM) || { $(_e2e_sudo) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(_e2e_sudo) apt-get install -y -q chromium chromium-driver fonts-dejavu-core; }
	@$(VENV)/bin/python -c 'import playwright' 2>/dev/null || $(VENV)/bin/pip install -q -e '.[dev]'

test-e2e: venv e2e-deps
	PARKING_E2E_REQUIRED=1 PARKING_E2E_CHROMIUM=$(E2E_CHROMIUM) $(VENV)/bin/pytest -q --durations=5 tests/e2e
