# The lab: Debian 12 hosts as systemd-nspawn machines on a private bridge (docs/lab.md).
#   make lab-up [LAB_HOSTS='etcd monitoring']   boot all hosts, or those of the patterns
#   make lab-converge [LAB_HOSTS=...]           ansible-playbook playbooks/site.yml on them
#   make lab-down                               remove hosts, mounts, bridge
#   make lab-lint                               ansible-lint (production profile) + yamllint
#   make lab-molecule                           the Molecule scenarios in tests/molecule/
#   make test-lab                               all of it, as `make test` runs it
#   make test-lab-arm64                         the emulated arm64 edge host (opt-in, not in
#                                               `make test`: ~16-24 min, docs/lab.md)
# Crash, power and cable helpers: lab/lab crash|poweroff|poweron|cut|restore NAME.
LAB_HOSTS ?=
_lab_space := $(subst ,, )
_lab_limit := $(if $(strip $(LAB_HOSTS)),--limit '$(subst $(_lab_space),:,$(strip $(LAB_HOSTS)))')

# What lab-lint lints: the Ansible side only, never the Python service's files.
LAB_ANSIBLE := requirements.yml inventory playbooks roles tests/molecule
LAB_YAML := $(LAB_ANSIBLE) .ansible-lint .yamllint

TEST_TARGETS += test-lab

.PHONY: lab-deps lab-image lab-up lab-converge lab-down lab-lint lab-molecule test-lab test-lab-arm64

lab-deps: venv
	lab/install-deps.sh

lab-image: lab-deps
	lab/build-image.sh

lab-up: lab-deps
	lab/lab up $(LAB_HOSTS)

lab-converge: lab-deps
	lab/converge.sh $(_lab_limit)

lab-down:
	lab/lab down

lab-lint: lab-deps
	$(VENV)/bin/yamllint --strict $(LAB_YAML)
	$(VENV)/bin/ansible-lint --profile production --strict $(LAB_ANSIBLE)
	shellcheck -x lab/lab lab/*.sh

lab-molecule: lab-deps
	lab/molecule.sh

test-lab: lab-deps lab-lint
	lab/test.sh

test-lab-arm64: lab-deps lab-lint
	lab/install-deps.sh --arm64
	lab/test-arm64.sh
