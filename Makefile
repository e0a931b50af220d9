# energymon: the two commands of the README's quick start are `make demo` and `make test`.
# Both create the virtual environment (.venv) themselves on a fresh machine.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test soak lint typecheck venv clean

$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "energymon needs Python >= 3.11 (found " + sys.version.split()[0] + ")")'
	@echo "==> creating $(VENV) and installing energymon with its dev extras"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

venv: $(BIN)/.installed

demo: venv
	$(BIN)/energymon demo

test: venv
	@bash scripts/ensure-test-deps.sh
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest

# the fault suite's long profile (tests/faults): longer outages, ten broker kills, every
# broker configuration; figures in .data/faults/results.jsonl (see docs/reliability.md)
soak: venv
	@bash scripts/ensure-test-deps.sh
	ENERGYMON_FAULTS_PROFILE=long $(BIN)/pytest -s -p no:cacheprovider tests/faults

lint: venv
	$(BIN)/ruff check .

typecheck: venv
	$(BIN)/mypy

clean:
	-$(BIN)/energymon db stop 2>/dev/null
	rm -rf $(VENV) .data .pytest_cache .ruff_cache .hypothesis
