# make test: everything CI runs, on a fresh Debian 12 machine as root.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
BUILD := build/ansible_collections/wgfleet/wireguard
DEBS := wireguard-go wireguard-tools iproute2 iptables iputils-ping postgresql git rsync
PG_BIN := /usr/lib/postgresql/15/bin
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.collections
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: test deps venv lint sanity unit integration bench clean

test: deps venv lint sanity unit integration

deps:
	@missing=$$(for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@test -x $(PG_BIN)/pg_ctl || { echo "PostgreSQL 15 binaries missing in $(PG_BIN)"; exit 1; }

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed
	@mkdir -p .collections/ansible_collections/wgfleet
	@ln -sfn ../../.. .collections/ansible_collections/wgfleet/wireguard

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ansible-lint --offline --profile production

# ansible-test wants the collection under ansible_collections/NS/NAME and in git.
sanity: venv
	rm -rf build && mkdir -p $(BUILD)
	git ls-files -co --exclude-standard -z -- . ':!bench' ':!scripts' ':!.ci' | rsync -a --from0 --files-from=- ./ $(BUILD)/
	cd $(BUILD) && git init -q && git add -A && git -c user.name=ci -c user.email=ci@localhost commit -qm sanity
	mkdir -p ~/.ansible/test/cache && cp scripts/get_pip_offline.py ~/.ansible/test/cache/get_pip_24_2.py
	cd $(BUILD) && $(CURDIR)/$(VENV)/bin/ansible-test sanity --requirements --python 3.11 --color no

unit: venv
	$(PY) -m pytest tests/unit

integration: venv
	$(PY) -m pytest tests/integration

bench: deps venv
	$(PY) bench/bench_peers.py
	@for b in bench/bench_backup.py bench/bench_sync.py bench/bench_fleet.py; do [ ! -f $$b ] || $(PY) $$b; done

clean:
	rm -rf build .collections $(VENV)
