# Two entry points on a fresh machine: `make run` (train + evaluate on Beauty) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATASET ?= beauty
OUT ?= runs/$(DATASET)-sasrec
RCL_OUT ?= runs/$(DATASET)-rcl
ARGS ?=

.PHONY: run test test-fast lint setup clean

$(BIN)/rclrec: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first (pyproject.toml accepts torch>=2.1), so that installing rclrec finds it
	# satisfied. On this project's machines this is a local CPU wheel; PyPI's Linux wheel is
	# the CUDA build (README, "Install and dependencies": the CPU index for a CPU build).
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(BIN)/rclrec

setup: $(BIN)/rclrec

# The main job: SASRec (full-softmax CE), then RCL, on Beauty; then both test rows beside the
# paper's. Each run resumes or reuses its folder (README: how long it takes).
run: setup
	$(BIN)/rclrec train --dataset $(DATASET) --method sasrec --config configs/quick.toml \
		--out $(OUT) --resume $(ARGS)
	$(BIN)/rclrec train --dataset $(DATASET) --method rcl --config configs/quick.toml \
		--out $(RCL_OUT) --resume $(ARGS)
	$(BIN)/rclrec compare $(OUT) $(RCL_OUT)

test: setup
	$(BIN)/pytest -q

# While developing: every test but those marked slow (training several epochs, processes).
test-fast: setup
	$(BIN)/pytest -q -m "not slow"

lint: setup
	$(BIN)/ruff check rclrec tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache
