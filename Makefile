# Benchmarks (BENCHMARKS.md). Soketi and Django Channels are benchmark peers only, installed under bench/,
# never dependencies of Vask.
PYTHON ?= .venv/bin/python
CC ?= gcc

.PHONY: bench bench-quick bench-build bench-soketi bench-django bench-clean reliability fuzz soak soak-quick

bench: bench-build bench-soketi bench-django
	$(PYTHON) bench/run.py

bench-quick: bench-build bench-soketi
	$(PYTHON) bench/run.py --quick

bench-build: bench/loadgen bench/refserver

bench/loadgen: bench/loadgen.c
	$(CC) -O2 -Wall -Wextra -o $@ $< -lcrypto

bench-soketi: bench/soketi/node_modules/@soketi/soketi/bin/server.js

bench/soketi/node_modules/@soketi/soketi/bin/server.js: bench/soketi/package.json
	cd bench/soketi && npm install --no-audit --no-fund
	touch $@

bench-django: bench/.venv-django/bin/uvicorn

bench/.venv-django/bin/uvicorn: bench/django_anchor/requirements.txt
	python3 -m venv bench/.venv-django
	bench/.venv-django/bin/pip install -q -r bench/django_anchor/requirements.txt
	touch $@

bench-clean:
	rm -rf bench/loadgen bench/soketi/node_modules bench/.venv-django

bench/refserver: bench/refserver.c
	$(CC) -O2 -Wall -Wextra -o $@ $< -lcrypto

# Reliability and security (RELIABILITY.md). `reliability` runs the tests of its CI tier (they also run in the
# plain `pytest` run); `soak` is the nightly soak (100,000 cycles, then 1 hour of mixed traffic, ~75 min).
RELIABILITY_TESTS ?= tests/integration/test_security.py tests/integration/test_chaos.py \
	tests/integration/test_soak.py tests/integration/test_cluster_failures.py \
	tests/unit/test_cluster_stats.py tests/unit/test_app_cache.py \
	tests/integration/test_conformance.py tests/integration/test_timeouts.py \
	tests/unit/test_core_state_machine.py tests/unit/test_fuzz_parsers.py \
	tests/integration/test_fuzz_server.py tests/integration/test_slow_consumer.py
# The full sizes of 14A's checks (their CI tier is smaller): all conformance cases, 10,000 half-open sockets,
# 100,000 malformed inputs, 50 MB to the slow consumer; the conformance table goes to conformance-report.md.
RELIABILITY_FULL ?= VASK_CONFORMANCE_FULL=1 VASK_CONFORMANCE_REPORT=conformance-report.md VASK_TEST_HALF_OPEN=10000 \
	VASK_FUZZ_INPUTS=100000 VASK_SLOW_CONSUMER_MB=50

reliability:
	$(RELIABILITY_FULL) $(PYTHON) -m pytest -q -rs $(RELIABILITY_TESTS) $(RELIABILITY_EXTRA)

# Coverage-guided fuzzing of the parsers with atheris (pip install atheris), 200,000 inputs per target.
fuzz:
	$(PYTHON) scripts/fuzz.py --runs 200000

soak:
	$(PYTHON) scripts/soak.py --cycles 100000 --mixed-seconds 3600 --json soak-nightly.json

soak-quick:
	$(PYTHON) scripts/soak.py --cycles 10000 --mixed-seconds 15
