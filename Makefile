# Two entry points on a fresh machine: `make run` (train + evaluate on Beauty) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATASET ?= beauty
OUT ?= runs/$(DATASET)-sasrec
ARGS ?=

.PHONY: run test lint setup clean

$(BIN)/rclrec: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU build of torch first (pyproject.toml accepts torch>=2.1), so that installing
	# rclrec finds torch satisfied and pulls no CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(BIN)/rclrec

setup: $(BIN)/rclrec

# The main job: SASRec with full-softmax CE on Beauty, printed as a results table.
# Its default settings are sized to finish within about 15 minutes on 2 CPU cores.
run: setup
	$(BIN)/rclrec train --dataset $(DATASET) --method sasrec --config configs/quick.toml \
		--out $(OUT) --resume $(ARGS)

test: setup
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check rclrec tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache
