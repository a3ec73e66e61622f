# camguard: `make run` sets up and starts the app; `make test` sets up and runs every check.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PKG_STAMP := $(VENV)/.installed-packaging

# Packaging (packaging/README.md): the artifacts and what they are built from.
CG_VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' camguard/__init__.py)
DEB_ARCH   := $(shell dpkg --print-architecture 2>/dev/null || echo amd64)
APP_FILES  := $(shell find camguard resources -type f ! -name '*.pyc' ! -path '*/__pycache__/*')
BUNDLE_EXE := dist/camguard/camguard
DEB        := dist/camguard_$(CG_VERSION)_$(DEB_ARCH).deb
MSI        := dist/camguard-$(CG_VERSION)-x64.msi

.PHONY: run test lint unit bench soak coverage system-deps-runtime system-deps-test clean \
        system-deps-packaging bundle deb msi manpage packaging-test

$(STAMP): pyproject.toml
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { scripts/system-deps.sh runtime && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[gui,selftest,test]'
	@touch $@

system-deps-runtime:
	@scripts/system-deps.sh runtime

system-deps-test:
	@scripts/system-deps.sh test

system-deps-packaging:
	@scripts/system-deps.sh packaging

$(PKG_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install -q -e '.[gui,selftest,packaging]'
	@touch $@

## Set up and start camguard (the tray).
run: system-deps-runtime $(STAMP)
	$(BIN)/camguard

## Lint, type-check, layer contracts, then the whole suite against real components that the
## test fixtures start (PulseAudio, PipeWire, Xvfb + tray host + D-Bus + dunst) and stop.
test: system-deps-test $(STAMP) lint
	$(BIN)/python -m pytest -q -rfEs -p no:cacheprovider $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check camguard tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

## The whole suite under coverage.py (subprocesses included), then docs/coverage.md.
## Processes of the test accounts run the system python (the venv is under /root): a .pth in
## its site folder starts the venv's coverage.py there too (inert without
## COVERAGE_PROCESS_CONFIG, like coverage.py's own .pth in the venv, or where the data folder
## is not writable), and they write into a folder every account can.
SYS_SITE = $(shell /usr/bin/python3 -c 'import site; print(site.getsitepackages()[0])')
VENV_SITE = $(shell $(BIN)/python -c 'import coverage, os; print(os.path.dirname(os.path.dirname(coverage.__file__)))')
coverage: system-deps-test $(STAMP)
	rm -rf .coverage-data && mkdir -p -m 1777 .coverage-data
	mkdir -p $(SYS_SITE) && sed 's|@VENV_SITE@|$(VENV_SITE)|' scripts/coverage_hook.pth \
	    > $(SYS_SITE)/zz_camguard_coverage.pth
	-CAMGUARD_REQUIRE_REAL=1 $(BIN)/python -m coverage run -m pytest -q -p no:cacheprovider \
	    $(PYTEST_ARGS)
	$(BIN)/python -m coverage combine -q
	$(BIN)/python scripts/coverage_doc.py > docs/coverage.md
	@cat docs/coverage.md

bench: system-deps-test $(STAMP)
	$(BIN)/python bench/run_all.py

## The tray and the root service for 30 minutes (as root) against ground truth: RSS, fds,
## CPU, missed and phantom sessions (bench/results-soak.json). SOAK_ARGS="--minutes 3".
soak: system-deps-test $(STAMP)
	$(BIN)/python bench/soak.py $(SOAK_ARGS)

## The PyInstaller onedir bundle dist/camguard/ (one spec for Linux, Windows and macOS).
bundle: system-deps-packaging $(BUNDLE_EXE)
$(BUNDLE_EXE): $(PKG_STAMP) packaging/pyinstaller/camguard.spec \
               packaging/pyinstaller/run_camguard.py $(APP_FILES)
	$(BIN)/pyinstaller --noconfirm --log-level WARN --distpath dist \
	    --workpath build/pyinstaller packaging/pyinstaller/camguard.spec

## dist/camguard_VERSION_ARCH.deb (dpkg-deb; installs to /opt/camguard).
deb: system-deps-packaging $(DEB)
$(DEB): $(BUNDLE_EXE) $(wildcard packaging/linux/* packaging/linux/debian/*)
	PYTHON=$(BIN)/python packaging/linux/build_deb.sh

## dist/camguard-VERSION-x64.msi with wixl, from the Linux bundle as a STAND-IN payload
## (the tables are checked; the shippable MSI is built on Windows: build_on_windows.ps1).
msi: system-deps-packaging $(MSI)
$(MSI): $(BUNDLE_EXE) $(wildcard packaging/windows/*)
	PYTHON=$(BIN)/python packaging/windows/build_msi.sh

## Refresh the committed man page (the .deb always generates its own at build time).
manpage: $(STAMP)
	$(BIN)/python packaging/linux/make_manpage.py -o packaging/linux/camguard.1

## Builds the bundle, .deb and .msi, installs the .deb on THIS machine (root), uses it, and
## purges it: slow and system-changing, so separate from `make test`.
packaging-test: system-deps-packaging $(PKG_STAMP)
	CAMGUARD_PACKAGING=1 $(BIN)/python -m pytest -q -p no:cacheprovider --timeout=900 \
	    tests/packaging \
	    $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build dist .mypy_cache .ruff_cache .pytest_cache
