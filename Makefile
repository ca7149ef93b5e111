# hakit.cluster development entry points. `make test` is what CI runs (.ci/run).
# Every target installs what it needs on a fresh Debian 12 machine and is fast when it already is.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON   ?= /usr/bin/python3
VENV     := $(CURDIR)/.venv
BIN      := $(VENV)/bin
STAMPS   := $(CURDIR)/.cache/stamps
APT_PKGS := $(sort $(shell cat tools/apt-packages.txt lab/apt-packages.txt))

# Ansible and the lab read these; nothing lands in ~/.ansible or the machine's own config.
export PATH := $(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export ANSIBLE_HOME := $(CURDIR)/.cache/ansible
export ANSIBLE_LOCAL_TEMP := $(CURDIR)/.cache/ansible/tmp
export ANSIBLE_SSH_CONTROL_PATH_DIR := $(CURDIR)/.cache/ansible/cp
export ANSIBLE_NOCOLOR := 1
export ANSIBLE_FORCE_COLOR := 0
export PY_COLORS := 0
export PYTHONDONTWRITEBYTECODE := 1

# pytest exits 5 when a selection holds no test: say so and go on, any other failure stops make.
# Every test that takes 10 s or more is listed with its time at the end of each tier.
define pytest
	rc=0; $(BIN)/pytest --durations=0 --durations-min=10 $(1) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest: no test selected by: $(1)"; rc=0; fi; exit $$rc
endef

.PHONY: help setup lint unit integration uml vm kernels test demo bench bench-failover bench-uplink bench-lvs bench-drbd docs clean

help:
	@echo "make setup        controller packages (apt) and the virtualenv .venv"
	@echo "make lint         ansible-lint (production), yamllint, ruff, ansible-test sanity, spec drift"
	@echo "make unit         parsers, modules with mocked commands, templates, validation"
	@echo "make integration  the lab's namespace hosts and molecule scenarios on them"
	@echo "make uml          the lab's uml hosts (DRBD, IPVS) and the scenarios and failure cases on them"
	@echo "make vm           the lab's qemu VMs and the smoke scenario (slow without KVM)"
	@echo "make kernels      uml and vm together, in two lanes (make test's last tier)"
	@echo "make test         all of the above (what CI runs)"
	@echo "make demo         bring up the lab, provision it with the playbooks, show a failover"
	@echo "make bench        the benchmarks (figures printed side by side)"
	@echo "make clean        remove the lab, build outputs and caches of this checkout"

setup: $(STAMPS)/apt $(STAMPS)/venv

$(STAMPS)/apt: tools/apt-packages.txt lab/apt-packages.txt
	@mkdir -p $(STAMPS)
	missing=$$( { dpkg-query -W -f='$${db:Status-Abbrev} $${Package}\n' $(APT_PKGS) 2>/dev/null || true; } \
	           | awk '$$1 == "ii" {print $$2}' | sort | comm -13 - <(printf '%s\n' $(APT_PKGS))); \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -q; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi
	touch $@

$(STAMPS)/venv: pyproject.toml $(STAMPS)/apt
	@mkdir -p $(STAMPS)
	[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $@

lint: setup
	$(BIN)/yamllint --strict .
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	shellcheck .ci/run tools/*.sh roles/heartbeat/files/hakit-IPaddr2 lab/hakit_lab/uml_init.sh
	$(BIN)/ansible-lint --profile production
	$(BIN)/python tools/role_docs.py --check
	tools/sanity.sh

# The test tiers run two lanes, one per core: each worker takes whole modules (the modules of one
# lab together, tests/conftest.py's SHARED_LABS) and runs its own lab beside the other's (every
# worker has its own HAKIT_LAB_PREFIX, every lab inventory its own management subnet). A lane
# alone leaves a core idle: Ansible waits on the hosts, a uml guest keeps about half a core busy.
LANES := -n 2 --dist loadfile

unit: setup
	$(call pytest,$(LANES) tests/unit)

integration: setup
	$(call pytest,$(LANES) -m "not vm and not uml" tests/lab tests/integration)

# tests/integration first: its two long modules (lvs_dr; file_server with lvs_nat_tun) start on a
# lane each, and the uml hosts' short module follows on whichever frees first.
uml: setup
	$(call pytest,$(LANES) -m uml tests/integration tests/lab)

vm: setup
	$(call pytest,-m vm tests/lab tests/integration)

# make test's last tier: the uml and VM hosts in one run of the two lanes, so the VM tests take the
# lane that the uml scenarios leave idle at the end.
kernels: setup
	$(call pytest,$(LANES) -m "uml or vm" tests/integration tests/lab)

# The tiers in order, each timed (CI's 90 minutes and the project's 45 are read from these lines);
# the first that fails stops the run.
TIERS := lint unit integration kernels
test: setup
	@for tier in $(TIERS); do \
	  t0=$$(date +%s); rc=0; $(MAKE) --no-print-directory $$tier || rc=$$?; \
	  echo "tier $$tier: $$(( $$(date +%s) - t0 )) s, exit $$rc"; \
	  [ $$rc -eq 0 ] || exit $$rc; \
	done

demo: setup
	tools/demo.sh

bench: bench-failover bench-uplink bench-lvs

bench-failover: setup
	$(BIN)/python bench/failover.py

# Uplink failover figures on the dual-uplink lab (inventory/lab/uplink): switch, DNS moved, back.
bench-uplink: setup
	$(BIN)/python bench/uplink.py

# LVS figures on the lvs_dr lab (uml directors): removal, director outage and its breakdown, connection sync,
# and the ipvs module's 1000-real-server reconcile on the standby director.
bench-lvs: setup
	$(BIN)/python bench/lvs.py $(ARGS)

# DRBD figures on the file-server lab's VMs: not part of `make bench` until it has run once (issue 5).
bench-drbd: setup
	$(BIN)/python bench/drbd.py

docs: setup
	$(BIN)/python tools/role_docs.py

clean:
	-[ -x $(BIN)/hakit-lab ] && $(BIN)/hakit-lab down
	rm -rf build .cache/ansible .pytest_cache .ruff_cache *.tar.gz
