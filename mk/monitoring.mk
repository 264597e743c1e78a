# Monitoring (issue 8, docs/monitoring.md): promtool unit tests of every alert rule, the roles'
# rendered config checked by promtool/amtool, dashboard queries parsed, and the alert pipeline
# end to end (real Prometheus + Alertmanager from Debian, real central on SQLite, a webhook).
TEST_TARGETS += test-monitoring

.PHONY: monitoring-deps test-monitoring

monitoring-deps: venv
	scripts/ensure-monitoring.sh
	@test -x $(VENV)/bin/ansible-playbook || $(VENV)/bin/pip install -q -r requirements/ansible.txt

test-monitoring: venv monitoring-deps
	PARKING_MONITORING_REQUIRED=1 $(VENV)/bin/pytest -q --durations=5 tests/monitoring
