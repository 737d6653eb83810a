# `make run`: set up .venv, run the study of config.yaml and write its report; `make test`: lint, then the tests;
# `make mutation`: mutation testing of the modules that decide results (an hour or more; not part of `make test`).
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
CORES ?= 2

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q --no-compile -c constraints.txt -e '.[workflow,test]'
	@# byte-code on every core (pip compiles one file at a time); files written for a newer Python, as torch ships
	@# a few, do not compile and are skipped, as pip skips them
	$(BIN)/python -m compileall -qq -j 0 $(VENV)/lib || true
	touch $@

.PHONY: setup run test mutation
setup: $(BIN)/.installed

run: setup
	$(BIN)/snakemake --cores $(CORES)
	$(BIN)/snakemake --report results/report.html

test: setup
	$(BIN)/ruff check .
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/python -m pytest -q -n $(CORES) --dist loadgroup  # a worker per core (pytest-xdist)

# MUTANTS: mutmut's name patterns, to measure some modules only (make mutation MUTANTS='sparsenet.prune.*')
mutation: setup
	rm -rf mutants  # from scratch: mutmut keeps a survivor's verdict even after a new test would kill it
	$(BIN)/mutmut run --max-children $(CORES) $(MUTANTS)
	$(BIN)/python benchmarks/mutation.py --out docs/tables/mutation.csv
