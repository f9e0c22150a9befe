# tunelab: two commands on a fresh machine —  `make demo`  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU build of torch: it lies on disk on these machines (see DEVELOPERS notes); elsewhere the
# PyTorch CPU index serves it.  The project itself only requires torch>=2.3.
TORCH  ?= torch==2.13.0

.PHONY: setup demo test lint bench clean

$(BIN)/tunelab: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)" || $(BIN)/pip install -q "$(TORCH)" --index-url https://download.pytorch.org/whl/cpu
	$(BIN)/pip install -q -e ".[dev]"
	@touch $@

setup: $(BIN)/tunelab

demo: setup  ## a real study end to end on JapaneseVowels (CPU, a few minutes)
	$(BIN)/tunelab tune --config examples/quickstart.yaml --save-dir runs

test: setup lint  ## lint, type-check and the test suite (what CI runs)
	$(BIN)/python -m pytest -n 3 --dist worksteal

lint: setup
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/mypy

bench: setup
	$(BIN)/python benchmarks/throughput.py --quick
	$(BIN)/python benchmarks/search.py --quick

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
