# shipload: `make demo` runs the main job, `make test` the tests; each sets itself up first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo_out

.PHONY: setup test test-fast demo demo-port bench lint typecheck data train resume export clean

setup: $(STAMP)

# pip only: torch 2.14.1 and torchvision 0.29.1 install from this machine's local wheel store.
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -c requirements.lock -e ".[dev,cpu]"
	touch $(STAMP)

test: setup
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

demo: setup
	$(PY) -m shipload.demo --out $(DEMO_DIR)
	$(PY) -m shipload.demo --port --out $(DEMO_DIR)

bench: setup
	$(PY) benchmarks/bench_synth.py
	$(PY) benchmarks/bench_train.py
	$(PY) benchmarks/bench_predict.py
	$(PY) benchmarks/bench_axis.py
	$(PY) benchmarks/bench_view.py
	$(PY) benchmarks/bench_review.py

lint: setup
	$(BIN)/ruff check src tests benchmarks scripts train.py
	$(BIN)/mypy src

# The shipped model's one recipe (configs/train.yaml): chips rendered on the fly, nothing stored.
# `make resume` continues it after a kill, on the same stream.
TRAIN_CMD ?= python train.py fit --config configs/train.yaml
train: setup
	$(PY) train.py fit --config configs/train.yaml

resume: setup
	$(PY) train.py fit --config configs/train.yaml --ckpt_path last

# int8 calibration chips (in-family look, renderer seed 5) and the 1,000 held-out chips that
# judge int8 against fp32 (seed 2); neither is trained on.
data/calib/labels.csv: | $(STAMP)
	$(BIN)/shipload synth --out data/calib --n 256 --seed 5 --config configs/synth_train.yaml --workers 2 --overwrite --quiet
data/heldout/labels.csv: | $(STAMP)
	$(BIN)/shipload synth --out data/heldout --n 1000 --seed 2 --config configs/synth_train.yaml --workers 2 --overwrite --quiet

# Export what `make train` made, judge it on held-out appearance families, export again with
# the headline figures in the metadata (same weights, same bytes but the metadata), add the
# int8 file, measure predict speed, and write the card.
# A run on a GPU machine (configs/gpu.yaml, scripts/gpu_stage.sh) exports with
#   make export CKPT=runs/gpu/checkpoints/last.ckpt TRAIN_CMD="<its command.txt>" \
#        RECIPE="configs/train.yaml configs/gpu.yaml configs/synth_train.yaml"
# BASELINE is the release before: the card compares the two on the same chips.
CKPT ?= runs/train/checkpoints/last.ckpt
RECIPE ?= configs/train.yaml configs/synth_train.yaml
BASELINE ?= models/init/stage14.pt
EXPORT = $(BIN)/shipload export $(CKPT) --output models/shipload.onnx \
	    --weights models/shipload.pt --overwrite --recipe $(RECIPE) \
	    --command "$(TRAIN_CMD)"
# The int8 file ships only if it is within 0.5 points of fp32 (the leading '-': a refusal is an
# outcome, not a failure of the target; a stale int8 file is removed first).
export: setup data/calib/labels.csv data/heldout/labels.csv
	rm -f models/shipload.int8.onnx
	$(EXPORT)
	$(PY) scripts/evaluate_model.py --model models/shipload.pt --baseline $(BASELINE)
	$(EXPORT) --metrics models/eval/headline.json
	-$(EXPORT) --metrics models/eval/headline.json --int8 --calibration data/calib \
	    --int8-judge data/heldout
	$(PY) benchmarks/bench_predict.py --n 1000 | tee models/eval/bench_predict.txt
	$(PY) scripts/make_card.py --bench models/eval/bench_predict.txt

demo-port: setup
	$(PY) -m shipload.demo --port --out $(DEMO_DIR)

clean:
	rm -rf $(VENV) runs $(DEMO_DIR) .pytest_cache
