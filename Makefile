# Common commands. `make demo` and `make test` are the two README commands.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Test processes (pytest-xdist). The suite mostly waits (servers starting, rate-limited phases, sleeps):
# on a fresh clone, quiet 2-core machine, -n 3 ran pytest in 655 s (the whole .ci/run 686 s) against
# 1,062 s with -n 2 in the previous session. An older "3 was slower" was measured while xdist_group was
# silently ignored (the browser set-up then ran on every worker).
TEST_WORKERS ?= 3
UV := uv==0.13.9

.PHONY: venv demo test bench lint format sandbox-start sandbox-stop ui watermark quarantine clean lock robustness-report

$(STAMP): requirements.txt requirements-scaleout.txt requirements-dev.txt requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# uv installs the same pinned set as pip would, faster. --compile-bytecode as pip does: the tests run
	# with bytecode writing off, so without it every Airflow process compiles its imports (the suite took 2x).
	$(PY) -m pip install --quiet $(UV)
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 $(PY) -m uv pip install --quiet --compile-bytecode --python $(PY) -r requirements-dev.txt -c requirements.lock
	touch $(STAMP)

venv: $(STAMP)

## Set up and run the main job on the embedded default (local simulators, SQLite).
demo: venv
	./scripts/demo.sh

## Set up and run the whole test suite (.ci/run calls exactly this).
test: venv
	./scripts/services.sh
	./scripts/browser.sh
	$(PY) -m ruff check .
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup --durations=30

## Print the benchmark table (BENCHMARKS.md): calls per 1,000 contacts, rate-budget use, throughput,
## peak RSS and wall time. Quick run at 1k/10k (~5 min); BENCH_ARGS="--full" for 100k/1M. Never fails on a time.
bench: venv
	$(PY) scripts/bench.py $(BENCH_ARGS)

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: venv
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

sandbox-start: venv
	$(PY) -m sandbox start
sandbox-stop: venv
	$(PY) -m sandbox stop

## The Airflow UI on the demo's Airflow home (see README).
ui: venv
	./scripts/ui.sh

watermark: venv
	PYTHONPATH=plugins $(PY) -m ghl_shift4shop watermark show
quarantine: venv
	PYTHONPATH=plugins $(PY) -m ghl_shift4shop quarantine

clean:
	-$(PY) -m sandbox stop
	rm -rf .local

## Re-freeze requirements.lock after changing requirements*.txt.
lock:
	rm -rf /tmp/ghl-s4s-lock && $(PYTHON) -m venv /tmp/ghl-s4s-lock
	/tmp/ghl-s4s-lock/bin/pip install --quiet -r requirements-dev.txt
	{ echo "# Frozen set (pip freeze of a venv built from requirements-dev.txt). Used as constraints by"; \
	  echo "# \`make venv\`, so every machine installs exactly these versions. Regenerate: make lock"; \
	  /tmp/ghl-s4s-lock/bin/pip freeze; } > requirements.lock

## Regenerate docs/robustness.md from the fault and hostile-input tests.
robustness-report: venv
	GHL_S4S_ROBUSTNESS_REPORT=docs/robustness.md $(PY) -m pytest -q tests/robustness/test_faults_and_hostile_input.py \
	  --deselect tests/robustness/test_faults_and_hostile_input.py::test_report_lists_every_case
