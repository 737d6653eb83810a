# `make run`: set up .venv, run the study of config.yaml and write its report; `make test`: lint, then the tests.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
CORES ?= 2

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[workflow,test]'
	touch $@

.PHONY: setup run test
setup: $(BIN)/.installed

run: setup
	$(BIN)/snakemake --cores $(CORES)
	$(BIN)/snakemake --report results/report.html

test: setup
	$(BIN)/ruff check .
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/python -m pytest -q
