# shipload: `make demo` runs the main job, `make test` the tests; each sets itself up first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo_out

.PHONY: setup test test-fast demo bench lint typecheck data train export clean

setup: $(STAMP)

# pip only: torch 2.14.1 and torchvision 0.29.1 install from this machine's local wheel store.
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -c requirements.lock -e ".[dev]"
	touch $(STAMP)

test: setup
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

demo: setup
	$(PY) -m shipload.demo --out $(DEMO_DIR)

bench: setup
	$(PY) benchmarks/bench_synth.py
	$(PY) benchmarks/bench_train.py
	$(PY) benchmarks/bench_predict.py

lint: setup
	$(BIN)/ruff check src tests benchmarks scripts train.py
	$(BIN)/mypy src

# The shipped model's recipe (see models/README.md): seven stages, then export and measure.
RECIPE := configs/default.yaml configs/default_stage2.yaml configs/default_stage3.yaml \
	configs/default_stage4.yaml configs/default_stage5.yaml configs/default_stage6.yaml \
	configs/default_stage7.yaml
train: setup
	set -e; for c in $(RECIPE); do $(PY) train.py fit --config $$c; done

# The 5,000-chip held-out set (renderer seed 2, never trained on): the card's figures, and the
# 1,000 chips that judge the int8 file against fp32.
data/heldout/labels.csv: | $(STAMP)
	$(BIN)/shipload synth --out data/heldout --n 5000 --seed 2 --workers 2 --overwrite

export: setup data/heldout/labels.csv
	$(BIN)/shipload export runs/default7/checkpoints/last.ckpt --output models/shipload.onnx \
	    --weights models/shipload.pt --int8 --calibration data/train7 --int8-judge data/heldout \
	    --recipe $(RECIPE)
	$(PY) scripts/make_card.py --train data/train7/labels.csv --peer models/eval/peer.json

clean:
	rm -rf $(VENV) runs $(DEMO_DIR) .pytest_cache
