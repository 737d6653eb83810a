# `make run`: set up .venv and run the study of config.yaml; `make test`: the test suite.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
CORES ?= 2

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test]'
	touch $@

.PHONY: setup run test
setup: $(BIN)/.installed

run: setup
	$(BIN)/python benchmarks/mnist_accuracy.py --out results/accuracy

test: setup
	$(BIN)/python -m pytest -q
