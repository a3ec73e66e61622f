# camguard: `make run` sets up and starts the app; `make test` sets up and runs every check.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint unit bench system-deps-runtime system-deps-test clean

$(STAMP): pyproject.toml
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { scripts/system-deps.sh runtime && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[gui,selftest,test]'
	@touch $@

system-deps-runtime:
	@scripts/system-deps.sh runtime

system-deps-test:
	@scripts/system-deps.sh test

## Set up and start camguard (the tray once it exists; `camguard watch` until then).
run: system-deps-runtime $(STAMP)
	$(BIN)/camguard

## Lint, type-check, layer contracts, then the whole suite against real components that the
## test fixtures start (PulseAudio, PipeWire, Xvfb + tray host + D-Bus + dunst) and stop.
test: system-deps-test $(STAMP) lint
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check camguard tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: system-deps-test $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) build dist .mypy_cache .ruff_cache .pytest_cache
