# make test: everything CI runs, on a fresh Debian 12 machine as root.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
BUILD := build/ansible_collections/wgfleet/wireguard
# python3-cryptography and python3-psycopg2: the managed-host tests run the modules with Debian's own Python.
# prometheus: the metrics test scrapes wgrest-sync with a real Prometheus. zbar-tools: zbarimg, the independent
# decoder the tests read wg_client_config's QR codes with.
DEBS := wireguard-go wireguard-tools iproute2 iptables iputils-ping postgresql git rsync \
	python3-cryptography python3-psycopg2 prometheus zbar-tools
PG_BIN := /usr/lib/postgresql/15/bin
# Managed hosts run Python 3.9 to 3.13. The machine's pyenv has them (the pyenv shims do not run: use the real
# binaries); the python-specific sanity tests run on each one found, and .venv-py39 holds the oldest libraries
# the collection supports (requirements-floor.txt) for the managed-host integration tests.
PYENV_ROOT ?= $(shell pyenv root 2>/dev/null || echo /root/.pyenv)
host_python = $(lastword $(sort $(wildcard $(PYENV_ROOT)/versions/$(1).*/bin/python$(1))))
HOST_PYTHONS := $(foreach v,3.9 3.10 3.11 3.12 3.13,$(if $(call host_python,$(v)),$(v)))
PY39 := $(call host_python,3.9)
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.collections
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

LAB_DEBS := docker.io debootstrap xz-utils
DOCKERD_LOG := /var/log/wgfleet-dockerd.log
MOLECULE := $(VENV)/bin/molecule --base-config molecule/shared/base.yml
# The real wgrest, vendored in the project's shared folder (beside the repository, or the workplace's /work/shared):
# the tests and the lab run it, and `make test` fails rather than skip them when it is missing.
WGREST_VENDOR_DIRS := $(WGFLEET_WGREST_VENDOR) $(abspath $(CURDIR)/../shared/vendor/wgrest) /work/shared/vendor/wgrest
export WGFLEET_WGREST_VENDOR := $(patsubst %/SHA256SUMS,%,$(firstword $(wildcard $(addsuffix /SHA256SUMS,$(WGREST_VENDOR_DIRS)))))
export WGFLEET_WGREST_BINARY ?= $(WGFLEET_WGREST_VENDOR)/wgrest-v2.0.0-alpha.1-linux-amd64.xz
# Tests fail instead of skipping when a real part (the vendored wgrest, a managed-host Python) is missing.
export WGFLEET_NO_SKIP := 1

.PHONY: test deps venv lint sanity unit integration molecule engine lab-images lab lab-down lab-rebuild lab-report lab-playbook lab-destroy bench clean

test: deps venv lint sanity unit integration molecule

deps:
	@missing=$$(for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@test -x $(PG_BIN)/pg_ctl || { echo "PostgreSQL 15 binaries missing in $(PG_BIN)"; exit 1; }
	@test -n "$(WGFLEET_WGREST_VENDOR)" || { echo "the vendored wgrest is missing (looked in: $(WGREST_VENDOR_DIRS)); set WGFLEET_WGREST_VENDOR"; exit 1; }

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

# A managed host of RHEL 9 / Debian 11 age: Python 3.9 with their cryptography and psycopg2 (skipped without 3.9).
.venv-py39/.installed: requirements-floor.txt
	@if [ -n "$(PY39)" ]; then \
	  test -x .venv-py39/bin/python || $(PY39) -m venv .venv-py39; \
	  .venv-py39/bin/python -m pip install -q --disable-pip-version-check -r requirements-floor.txt && touch $@; \
	else echo "no Python 3.9 under $(PYENV_ROOT)/versions: the Python 3.9 managed-host tests will be skipped"; fi

venv: $(VENV)/.installed .venv-py39/.installed
	@mkdir -p .collections/ansible_collections/wgfleet
	@ln -sfn ../../.. .collections/ansible_collections/wgfleet/wireguard

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ansible-lint --offline --profile production
	@# The execution environment: the definition (ansible-builder create) and the collection's requirements as
	@# ansible-builder reads them from meta/execution-environment.yml.
	rm -rf build/ee-src build/ee && $(VENV)/bin/ansible-galaxy collection build --output-path build/ee-src . >/dev/null
	cp build/ee-src/wgfleet-wireguard-*.tar.gz build/ee-src/wgfleet-wireguard.tar.gz
	$(VENV)/bin/ansible-builder create -f ee/execution-environment.yml --context build/ee
	$(PY) $$($(PY) -c 'import ansible_builder, os; print(os.path.dirname(ansible_builder.__file__))')/_target_scripts/introspect.py \
	  introspect --sanitize .collections | grep 'psycopg2-binary>=2.8' >/dev/null

# ansible-test wants the collection under ansible_collections/NS/NAME and in git.
sanity: venv
	rm -rf build && mkdir -p $(BUILD)
	git ls-files -co --exclude-standard -z -- . ':!bench' ':!scripts' ':!.ci' | rsync -a --from0 --files-from=- ./ $(BUILD)/
	cd $(BUILD) && git init -q && git add -A && git -c user.name=ci -c user.email=ci@localhost commit -qm sanity
	mkdir -p ~/.ansible/test/cache && cp scripts/get_pip_offline.py ~/.ansible/test/cache/get_pip_24_2.py
	cd $(BUILD) && $(CURDIR)/$(VENV)/bin/ansible-test sanity --requirements --python 3.11 --color no
	@# The tests that depend on the Python version, on every other managed-host Python the machine has.
	@for v in $(filter-out 3.11,$(HOST_PYTHONS)); do \
	  bin=$$(dirname $$(ls -d $(PYENV_ROOT)/versions/$$v.*/bin/python$$v | sort -V | tail -1)); \
	  echo "sanity on Python $$v ($$bin)"; \
	  (cd $(BUILD) && PATH="$$bin:$$PATH" $(CURDIR)/$(VENV)/bin/ansible-test sanity --requirements --python $$v \
	    --test compile --test import --color no) || exit 1; \
	done

unit: venv
	$(PY) -m pytest tests/unit

# Two workers (pytest-xdist): each test has its own namespaces, interface names and databases, and each worker its
# own PostgreSQL; most of the time is spent waiting on handshakes and restarts. INTEGRATION_WORKERS=0: one process.
INTEGRATION_WORKERS ?= 2
integration: venv
	$(PY) -m pytest tests/integration -n $(INTEGRATION_WORKERS) --durations=15

# The Molecule lab: a Docker engine on this machine (started here when none runs; its log goes to
# $(DOCKERD_LOG)), the lab's base images (cached: rebuilt only when their inputs change), then the
# default scenario end to end (create, prepare, converge = site.yml, idempotence, verify, destroy).
engine:
	@missing=$$(for p in $(LAB_DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@if ! docker info >/dev/null 2>&1; then \
	  echo "starting dockerd (log: $(DOCKERD_LOG))"; \
	  nohup dockerd >>$(DOCKERD_LOG) 2>&1 & \
	  for i in $$(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done; \
	  docker info >/dev/null 2>&1 || { echo "dockerd did not start; see $(DOCKERD_LOG)"; tail -n 20 $(DOCKERD_LOG); exit 1; }; \
	fi

lab-images: engine venv
	@echo "lab-images: the lab's Debian images (kept while their inputs are unchanged: seconds;" \
	  "else debootstrap and apt, about 6 minutes, silent between its steps)"
	scripts/lab/build-images.sh

# The default scenario: converge (site.yml), idempotence, verify, then the restore drill (restore-drill.yml:
# srv1 destroyed and rebuilt with restore_server.yml, an earlier snapshot by time, srv1 moved to a new host).
molecule: deps venv lab-images
	$(MOLECULE) test

# `make lab`: the fleet for a person to look at (two servers, a client, PostgreSQL) brought up with site.yml,
# then how to reach each server's API and ready client configs. Its Molecule state (inventory, secrets) is
# kept in .lab/ of the checkout. `make lab-down` removes every container and network it made.
LAB_STATE := $(CURDIR)/.lab
lab: deps venv lab-images
	@echo "make lab: molecule converge: the lab's hosts and network, then prepare and site.yml (about 5 minutes)"
	MOLECULE_EPHEMERAL_DIRECTORY=$(LAB_STATE) $(MOLECULE) converge
	@echo "make lab: a peer made through srv1's API as an application makes it, and the client configs"
	$(LAB_PLAYBOOK) molecule/shared/lab-info.yml
	@cat $(LAB_STATE)/lab-info.txt
	@echo "make lab: the fleet report from the database (make lab-report runs it again; it fails naming a stale server)"
	@$(LAB_PLAYBOOK) playbooks/fleet_report.yml || echo "make lab: the fleet report failed (above); the lab is up"

lab-down: venv
	MOLECULE_EPHEMERAL_DIRECTORY=$(LAB_STATE) $(MOLECULE) destroy
	rm -rf $(LAB_STATE)

# On the running lab: destroy one server entirely (its engine and everything in it), make a fresh empty host in
# its place, and rebuild it from the database with restore_server.yml, as docs/runbooks.md says.
LAB_PLAYBOOK := MOLECULE_EPHEMERAL_DIRECTORY=$(LAB_STATE) MOLECULE_FILE=$(LAB_STATE)/molecule.yml \
	MOLECULE_PROJECT_DIRECTORY=$(CURDIR) ANSIBLE_CONFIG=$(LAB_STATE)/ansible.cfg \
	$(VENV)/bin/ansible-playbook -i $(LAB_STATE)/inventory
HOST ?= wgfleet-lab-srv1
lab-rebuild: venv
	@test -f $(LAB_STATE)/molecule.yml || { echo "no lab: run make lab first"; exit 2; }
	@echo "lab-rebuild: destroying $(HOST) and everything in it, then a fresh empty host on its address"
	$(LAB_PLAYBOOK) molecule/shared/replace-host.yml -e lab_replace=$(HOST)
	@echo "lab-rebuild: restore_server.yml --limit $(HOST) (about 3 minutes)"
	$(LAB_PLAYBOOK) restore_server.yml --limit $(HOST)

# On the running lab: the fleet report from the database (playbooks/fleet_report.yml, the lab's monitor login),
# with each server's live state compared with its latest snapshot; fails naming a stale or failing server.
lab-report: venv
	@test -f $(LAB_STATE)/molecule.yml || { echo "no lab: run make lab first"; exit 2; }
	$(LAB_PLAYBOOK) playbooks/fleet_report.yml -e wgfleet_report_drift=true

# Any playbook or runbook against the running lab, with its inventory, secrets and settings (the checkout's own
# collection): make lab-playbook PLAYBOOK=playbooks/backup.yml ARGS='--limit wgfleet-lab-srv1'
PLAYBOOK ?=
ARGS ?=
lab-playbook: venv
	@test -f $(LAB_STATE)/molecule.yml || { echo "no lab: run make lab first"; exit 2; }
	@test -n "$(PLAYBOOK)" || { echo "usage: make lab-playbook PLAYBOOK=site.yml [ARGS='--limit wgfleet-lab-srv1 --check']"; exit 2; }
	$(LAB_PLAYBOOK) $(PLAYBOOK) $(ARGS)

# Remove the lab of a `molecule converge` run by hand (inner containers first, then the hosts and the network).
lab-destroy: venv
	$(MOLECULE) destroy

bench: deps venv
	$(PY) bench/bench_peers.py
	@for b in bench/bench_backup.py bench/bench_sync.py bench/bench_fleet.py; do [ ! -f $$b ] || $(PY) $$b; done

clean:
	rm -rf build .collections $(VENV) .venv-py39
