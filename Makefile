# Two commands on a fresh machine: `make demo` and `make test`.
# Both create (or reuse) the virtual environment in $(VENV) and install what is needed.

VENV ?= .venv
PYTHON ?= $(shell command -v python3.11 || command -v python3)
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# CPU build of torch from local disk; GPU servers install without this constraint.
CONSTRAINTS := constraints/cpu.txt
ALIBI_DETECT := 0.13.0

.PHONY: demo test test-release test-all test-stress lint typecheck bench clean prometheus bundle grpc-stubs os-packages test-host

# --no-compile: Python compiles a module to bytecode when it is first imported, so the
# thousands of files nothing here imports (most of torch's) are not compiled at install
# (a fresh venv in about half the time).
PIP_INSTALL := $(PY) -m pip install --quiet --no-compile
# ... and so Python writes each module's bytecode when it first imports it: not where the
# environment says PYTHONDONTWRITEBYTECODE (container images often do), or every hub, agent
# and command the demo and the tests start would compile all it imports again (the hub's
# imports: 3.3 s of CPU from source, 1.4 s from bytecode).
unexport PYTHONDONTWRITEBYTECODE

# uv (pip's interface, from PyPI) installs the packages: it unpacks and links wheels in
# parallel, so a fresh environment takes ~15 s where pip took ~50 s (most of it unpacking
# torch), which every clean clone's make test paid. Like pip with --no-compile it writes
# no bytecode. It reads no pip configuration, so it is given the find-links and constraint
# files pip is configured with (pip.conf, PIP_*: where a machine keeps its CPU build of
# torch, say), read from pip when the recipe runs.
UV_VERSION := 0.13.10
PIP_SOURCES = $$($(PY) -m pip config list 2>/dev/null \
  | sed -n "s/^[^=]*\.\(find-links\|constraint\)='\(.*\)'$$/--\1 \2/p" \
  | sed 's/^--constraint /--constraints /' | sort -u)
UV_INSTALL = $(VENV)/bin/uv pip install --quiet --python $(PY) $(PIP_SOURCES)

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) --upgrade pip "uv==$(UV_VERSION)"
	$(UV_INSTALL) -c $(CONSTRAINTS) "torch==2.13.0"
	$(UV_INSTALL) -c $(CONSTRAINTS) -e ".[all]"
	# alibi-detect without its metadata's numpy<2 pins; its imports are in the agent extra.
	$(UV_INSTALL) --no-deps "alibi-detect==$(ALIBI_DETECT)"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/appliance demo

lint: $(STAMP)
	$(VENV)/bin/ruff check appliance hub agent tui tests bench
	$(VENV)/bin/lint-imports

# mypy's cache is shared by every checkout on the machine (it checks each entry against
# the source's hash, whatever the folder): a fresh clone is checked in seconds, not a minute.
MYPY_CACHE_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/appliance/mypy
typecheck: $(STAMP)
	$(VENV)/bin/mypy --cache-dir "$(MYPY_CACHE_DIR)" appliance hub agent tui bench

# A real Prometheus for the metrics test (Debian package); without root or apt it is skipped.
prometheus:
	@command -v prometheus >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1; } \
	  || echo "prometheus is not installed: the test that scrapes with it will be skipped"

# The gate every commit passes: everything but the release stage, in $(PYTEST_WORKERS)
# processes (pytest-xdist). A module's tests stay in one process (they share its hub and
# agents), in the order tests/conftest.py gives (--no-loadscope-reorder: slow modules first).
# PYTEST_WORKERS=0 runs them in this process, one after another. Three on two cores: many
# tests spend part of their time waiting on their hub and agents (docs/decisions.md, "Tests").
PYTEST_WORKERS ?= 3
PYTEST := $(VENV)/bin/pytest -q --durations=30
test: lint typecheck prometheus
	$(PYTEST) -m "not release" -n $(PYTEST_WORKERS) --dist loadgroup --no-loadscope-reorder

# The release stage (docs/decisions.md, "Tests"): real archives of this tree built, verified,
# installed with the playbooks, upgraded, failed and rolled back (about 11 minutes on 2 cores,
# most of it pip unpacking torch into new virtual environments). Run before a release and by
# work on installs and upgrades; make test-all runs both stages.
test-release: $(STAMP)
	$(PYTEST) -m release -p no:randomly

test-all: test test-release

# The gate under load (issue 16, item 6): make test STRESS_RUNS times in a row, each beside
# `stress-ng --cpu 2` (Debian package; installed here when root), stopping at the first red.
STRESS_RUNS ?= 3
test-stress: $(STAMP)
	@command -v stress-ng >/dev/null || apt-get install -y -qq stress-ng >/dev/null
	@for i in $$(seq $(STRESS_RUNS)); do \
	  echo "== stressed run $$i of $(STRESS_RUNS) (stress-ng --cpu 2 beside it) =="; \
	  stress-ng --cpu 2 --quiet & load=$$!; trap "kill -INT $$load 2>/dev/null" EXIT; \
	  $(MAKE) --no-print-directory test; rc=$$?; \
	  kill -INT $$load; wait $$load; \
	  [ $$rc = 0 ] || { echo "stressed run $$i failed"; exit $$rc; }; \
	done; echo "$(STRESS_RUNS) stressed runs in a row passed"

# Offline installer archives (packaging/README.md): dist/appliance-{hub,agent}-<version>.tar.
# SIGNING_KEY=/path/release.key signs them with the release key; without it, a throw-away key.
SIGNING_KEY ?=
OS_PACKAGES := .cache/appliance-build/os-packages/debian-12

# Install on a Debian 12 virtual machine with systemd (tests/host; root, QEMU, debootstrap,
# a Debian mirror; slow: the CPU is emulated where KVM does not work).
test-host: $(STAMP)
	APPLIANCE_TEST_HOST=1 $(PY) -m pytest tests/host -x -v -s -p no:randomly --timeout 7200

# The Debian 12 packages archives carry for hosts without python3.11-venv (apt-get download).
os-packages: $(STAMP)
	$(VENV)/bin/appliance-build os-packages --out $(OS_PACKAGES)

bundle: $(STAMP)
	$(VENV)/bin/appliance-build build hub agent --out dist --constraint $(CONSTRAINTS) \
	  --wheel-cache .cache/appliance-build/wheels \
	  $(if $(wildcard $(OS_PACKAGES)/*.deb),--os-packages $(OS_PACKAGES)) \
	  $(if $(SIGNING_KEY),--signing-key $(SIGNING_KEY),--throwaway-key)

bench: $(STAMP)
	$(PY) bench/bench_inference.py

# The agent's gRPC stubs, from the Open Inference Protocol's .proto (committed; rerun after
# changing it). Their messages live in a private descriptor pool, so they never clash with
# another copy of the same protocol in one process (tritonclient's, in the tests).
GRPC_DIR := agent/grpc_v2
grpc-stubs: $(STAMP)
	cd $(GRPC_DIR) && ../../$(PY) -m grpc_tools.protoc -I. --python_out=. --pyi_out=. \
	  --grpc_python_out=. open_inference_grpc.proto
	sed -i 's/_descriptor_pool.Default().AddSerializedFile(/_descriptor_pool.DescriptorPool().AddSerializedFile(/' \
	  $(GRPC_DIR)/open_inference_grpc_pb2.py
	sed -i 's/^import open_inference_grpc_pb2 as/from agent.grpc_v2 import open_inference_grpc_pb2 as/' \
	  $(GRPC_DIR)/open_inference_grpc_pb2_grpc.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
