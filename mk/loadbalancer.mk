# Load balancer tier without the lab (tests/loadbalancer, docs/central-tier.md): the site
# template nginx/parking.conf.j2, rendered as roles/nginx does, for two real centrals on one
# throwaway PostgreSQL, Debian's nginx started by hand over TLS from a test CA, the active
# central killed under ingest load.
#   make test-loadbalancer
TEST_TARGETS += test-loadbalancer

.PHONY: test-loadbalancer

test-loadbalancer: venv
	scripts/ensure-postgres.sh
	scripts/ensure-nginx.sh
	$(VENV)/bin/pytest -q --durations=5 tests/loadbalancer
