# LearningChain: two commands on a fresh Debian 12 machine.
#   make test   installs what is missing and runs lint, types and the whole suite
#   make demo   runs a local graph doing real work
# Test runs: LC_TIMEOUT_FACTOR=3 stretches every wait on a slow machine; a failing case
# prints LC_SEED=N, which re-runs its random choices. Tests never stop the machine's
# dockerd: those that stop an engine start a private one (tests/framework/dockerd.py).
SHELL := /bin/bash
ROOT := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
export LC_TEST_POSTGRES_URL ?= postgresql+psycopg2://lc:lc@127.0.0.1:5432/lc_test

.PHONY: docs test test-parallel test-serial test-repeat lock test-slow demo demo-federated demo-federated-private docs-federated setup system venv base-image lint typecheck unit gpu-test soak soak-graph fuzz faults bench bench-quick clean

# make test runs the suite in LC_TEST_PROCESSES processes (default 3 on 2 cores: the engine
# tests wait on windows and timers, and with 2 processes 45 % of the CPU sat idle; pytest-xdist,
# --dist loadfile): a module's tests
# run in one process one after another; the graph stories (tests/conftest.py GRAPH_STORIES)
# are one unit, run one by one in one process (tests/framework/scheduling.py), the other Docker, PostgreSQL and
# multi-process modules go longest first, and the pure tests fill the end (scripts/test_phases.sh reports
# the time of each phase, setup, lint and types included, each lane's and the longest modules).
ALL_TESTS := not slow and not gpu
PARALLEL_TESTS := not docker and not postgres and not serial and not slow and not gpu
SERIAL_TESTS := (docker or postgres or serial) and not slow and not gpu
test:
	@s=$$SECONDS; $(MAKE) --no-print-directory setup && echo $$((SECONDS - s)) > $(VENV)/.setup-s
	@s=$$SECONDS; $(MAKE) --no-print-directory lint typecheck && echo $$((SECONDS - s)) > $(VENV)/.checks-s
	@bash scripts/test_phases.sh $(VENV)/bin/pytest "$(ALL_TESTS)" "setup=$$(cat $(VENV)/.setup-s)" \
	  "lint+typecheck=$$(cat $(VENV)/.checks-s)"

test-parallel: venv
	$(VENV)/bin/pytest -q -n 2 -m "$(PARALLEL_TESTS)"

test-serial: setup
	$(VENV)/bin/pytest -q -n $${LC_TEST_PROCESSES:-3} --dist loadfile -m "$(SERIAL_TESTS)"

# The Docker and multi-process tests LC_REPEAT times in a row (default 5), each run with
# fresh seeds; the report lists every failure with the LC_SEED that re-runs it and the time
# of each run. A flaky test is a bug to fix, not to retry.
test-repeat: setup
	$(PY) scripts/repeat_tests.py --runs $${LC_REPEAT:-5} -m "$(SERIAL_TESTS)" -- -n $${LC_TEST_PROCESSES:-3} --dist loadfile

# Refresh requirements.lock (every dependency, direct and transitive, exact version and
# hashes) from pyproject.toml's ranges, then run the whole suite on it.
lock:
	bash scripts/lock.sh
	$(MAKE) test

setup: system venv base-image

system:
	bash scripts/setup_system.sh

# Installs exactly requirements.lock (hashes required), then the project itself without
# touching dependencies: the same bytes on every machine.
$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(PY) || python3 -m venv $(VENV)
	set -o pipefail; $(PIP) install -q --require-hashes -r requirements.lock 2>&1 \
	  | { grep -v "is ignored: it is neither a file nor a directory" || true; }
	$(PIP) install -q --no-deps --no-build-isolation -e .
	$(PIP) check
	touch $@

venv: $(VENV)/.installed

base-image: venv
	@if [ -f sandbox/base_image.py ]; then $(VENV)/bin/learningchain sandbox base-image; fi

lint: venv
	$(VENV)/bin/ruff check .

typecheck: venv
	$(VENV)/bin/mypy

unit: venv
	$(VENV)/bin/pytest -q -m "not docker and not postgres and not slow"

# The long proofs kept out of the default run (to keep CI short; docs/testing.md has its time): a node
# SIGKILLed mid-training resumes, the Docker engine stopped mid-training, the
# overfitter losing on the hidden set in a graph of its own (the demo test shows it too),
# two workers on private engines fetching a job image by layer (test_image_layers_docker
# proves the fetch in the default run), ONNX jobs trained, deployed and answered on a graph
# (its parts run by default: tests/predict/test_onnx_graph.py says where).
test-slow: setup
	$(VENV)/bin/pytest -q -m slow

# On a machine with an NVIDIA GPU and the NVIDIA container toolkit: GPU passthrough.
gpu-test: venv
	$(VENV)/bin/pytest -q -m gpu tests/sandbox/test_gpu_passthrough.py

soak: setup
	LC_SOAK_N4=3000 LC_SOAK_N7=700 $(VENV)/bin/pytest -q tests/consensus/test_sim_scenarios.py

# An hour of a real graph on emulated hosts (issue 48 §6; root: namespaces): 4 validators and
# 3 workers across a WAN under transfers and template jobs, a validator restarted every 10
# minutes, a host cut and healed; RSS, descriptors, disk and commit latency sampled
# (test-artifacts/soak.csv and .svg; docs/reliability.md, "Soak"). make soak above is the
# consensus simulator's long run.
soak-graph: setup
	$(PY) bench/soak.py --minutes 60

fuzz: setup
	LC_FUZZ_EXAMPLES=20000 LC_FUZZ_API_EXAMPLES=500 LC_ATHERIS_RUNS=2000000 $(VENV)/bin/pytest -q tests/fuzz

faults: setup
	LC_FAULT_SEEDS=1,2,3,4,5,6,7,8,9,10 LC_FAULT_SECONDS=90 LC_CRASH_KILLS=60 $(VENV)/bin/pytest -q tests/reliability

bench: venv
	for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# Every benchmark in its quick mode (small sizes, same JSON keys); make test runs each one
# too (tests/test_bench_quick.py), so none rots.
bench-quick: venv
	for b in bench/*.py; do echo "== $$b"; $(PY) $$b --quick || exit 1; done

demo: setup
	$(PY) -m client.devnet.demo

# A federated job on a local graph: 4 validators (one a dishonest aggregator) and 6 data
# owners' nodes, each with its own non-IID shard of digits that never leaves it.
demo-federated: setup
	$(PY) -m client.devnet.federated.demo

# Demos write only under their own folders; this copies the last federated demo's report
# (plot and table) into docs/, the one explicit step that changes tracked files.
docs-federated: demo-federated
	$(PY) -m client.devnet.federated.demo --publish-docs docs

# The documentation site (mkdocs.yml) into site/, offline and strict: a broken link, a
# missing page or any warning fails it (tests/test_docs_site.py builds it in make test).
docs: venv
	cd "$(ROOT)" && NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site
	@echo "open $(ROOT)/site/index.html"

demo-federated-private: setup
	$(PY) -m client.devnet.federated.demo_private

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
