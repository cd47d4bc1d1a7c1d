# `make demo` and `make test` each install what a fresh Debian 12 / Python 3.11 machine lacks, then run.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := gcc python3-dev tcpdump tshark iproute2 iptables nginx-light bird2 gobgpd curl chromium chromium-driver openvswitch-switch \
                openssh-server openssh-client conntrack procps ethtool sudo
STAMP_APT := $(VENV)/.apt-stamp
STAMP_PIP := $(VENV)/.pip-stamp

.PHONY: install demo lint test bench clean

# the sources' bytecode, written now: an editable install leaves it to each run, which compiles every changed module
# again where PYTHONDONTWRITEBYTECODE is set (0.1-0.25 s of CPU a cniscope process, measured under load)
install: $(STAMP_APT) $(STAMP_PIP)
	@$(BIN)/python -m compileall -q src

# openvswitch-switch: the lab runs its own Open vSwitch daemons per node (userspace datapath, private
# sockets); the host service the package enables is not used, so it is stopped when make installs it.
$(STAMP_APT): Makefile  # the package list lives here: re-check when it changes
	@mkdir -p $(VENV)
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "apt: installing$$missing"; \
	  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing || exit 1; \
	  case " $$missing " in *" openvswitch-switch "*) \
	    if [ -d /run/systemd/system ]; then systemctl disable --now -q openvswitch-switch || true; fi;; \
	  esac; \
	fi
	@touch $@

# the C extensions too: an editable install builds them in place, and a changed source must be built again (an
# extension lacking a function the Python needs is not used: the slower Python path runs instead)
$(STAMP_PIP): pyproject.toml $(wildcard src/cniscope/*.[ch] src/cniscope/*/*.[ch])
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,dask]'
	@touch $@

demo: install
	$(BIN)/cniscope demo

lint: install  # ruff on src and tests, mypy --strict on src (both configured in pyproject.toml)
	$(BIN)/ruff check src tests
	$(BIN)/mypy src

test: lint
	$(BIN)/python -m pytest -q -p no:cacheprovider; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "no tests collected: failing"; exit 1; fi; exit $$rc

bench: install  # read and analyze at 200k, 2M, 10M packets against tcpdump and tshark (benchmarks/bench.py)
	$(BIN)/python benchmarks/bench.py --one-core --markdown

clean:
	rm -rf $(VENV) build *.egg-info
