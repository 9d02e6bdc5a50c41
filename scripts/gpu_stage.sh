#!/usr/bin/env bash
# One lent GPU machine, one prepared run: the GPU checks, then a stage of the one recipe with the
# GPU override, sized to the time left. Run from the repository root:
#
#   scripts/gpu_stage.sh OUT SECONDS [WORKERS]
#
# OUT gets gpu_checks.txt, stream_rate.txt, train.log, command.txt, metrics.csv and last.ckpt
# (the end of the run, as configs/gpu.yaml writes it to runs/gpu/checkpoints/last.ckpt).
# EXTRA (a string of flags) is added to the fit's, e.g. to try the script on a CPU.
# SECONDS is the whole run's wall-clock budget; the fit gets what the checks and the stream
# probe leave, less a margin, and its size comes from the probe (scripts/stream_rate.py), so
# the one-cycle schedule ends when the time does. Wheels in .whl/ (packages the machine's
# image lacks) are installed first, into /tmp/site.
# CACHE_SHARE (default 0.5): the fit renders a fixed set for that share of its time
# (data.stream_cache) and trains the rest on it, many passes: the renderer feeds a GPU only a
# few hundred fresh pairs a second, so a fresh stream gives few optimiser steps (256 in the
# last lease). CACHE_SHARE=0 trains on the fresh stream as before. CHECKS=1 also runs
# scripts/gpu_checks.py first (measured already: models/eval/gpu_checks.txt).
set -uo pipefail
OUT=${1:?usage: scripts/gpu_stage.sh OUT SECONDS [WORKERS]}
BUDGET=${2:?usage: scripts/gpu_stage.sh OUT SECONDS [WORKERS]}
WORKERS=${3:-$(( $(nproc) - 1 ))}
START=$(date +%s)
left() { echo $(( BUDGET - ($(date +%s) - START) )); }
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH="/tmp/site:$PYTHONPATH"
fi
python3 - <<'EOF' || exit 1
import lightning, torch, albumentations, jsonargparse, onnxruntime
assert lightning.__version__ not in ("2.6.2", "2.6.3"), "compromised lightning release"
print("torch", torch.__version__, "cuda", torch.cuda.is_available(), "lightning",
      lightning.__version__, "albumentations", albumentations.__version__)
EOF
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
# DataLoader workers hand batches over in /dev/shm: 15 workers x 4 prefetched batches of 256
# pairs with part maps is ~15 GB, more than a VM's default shared memory.
mount -o remount,size=48G /dev/shm 2>/dev/null || true
df -h /dev/shm | tail -1

# The checks are capped so that a hang there cannot eat the fit's time; a failure is reported.
if [ "${CHECKS:-0}" = 1 ]; then
  timeout 150 python3 scripts/gpu_checks.py --n 2048 2>&1 | tee "$OUT/gpu_checks.txt" \
    || echo "gpu_checks failed or timed out (rc ${PIPESTATUS[0]})"
fi
SHARE=${CACHE_SHARE:-0.5}

# The stage: configs/train.yaml (seed, init, losses) with configs/gpu.yaml on this one GPU.
# One device: no DDP, so no process group and no synchronised batch norm to set up.
# shellcheck disable=SC2206
CFG=(--config configs/train.yaml --config configs/gpu.yaml --trainer.devices 1
     --trainer.strategy auto --trainer.sync_batchnorm false --data.num_workers "$WORKERS"
     ${EXTRA:-})
FIT_S=$(( $(left) - 90 ))  # the probe (~55 s), the copy-out and a margin
python3 scripts/stream_rate.py --seconds 25 --val-seconds 15 --budget "$FIT_S" \
  --cache-share "$SHARE" --train-seconds 15 -- "${CFG[@]}" 2>&1 \
  | tee "$OUT/stream_rate.txt" | tail -3
LAST=$(grep '^rate=' "$OUT/stream_rate.txt" | tail -1)
EPOCHS=$(echo "$LAST" | grep -o 'epochs=[0-9]*' | cut -d= -f2)
[ -n "$EPOCHS" ] || { echo "stream probe failed"; exit 1; }
CACHE=$(echo "$LAST" | grep -o 'cache=[0-9]*' | cut -d= -f2)
if [ -n "$CACHE" ]; then
  PER=$(echo "$LAST" | grep -o 'chips_per_epoch=[0-9]*' | cut -d= -f2)
  CFG+=(--data.stream_cache "$CACHE" --data.chips_per_epoch "$PER" --data.cache_dir /tmp/cache)
fi
FIT_S=$(( $(left) - 20 ))
MAXT=$(printf '00:%02d:%02d:%02d' $(( FIT_S / 3600 )) $(( FIT_S % 3600 / 60 )) $(( FIT_S % 60 )))
CMD=(python3 train.py fit "${CFG[@]}" --trainer.max_epochs "$EPOCHS" --trainer.max_time "$MAXT"
     --trainer.enable_progress_bar false)
echo "${CMD[*]}" | tee "$OUT/command.txt"
"${CMD[@]}" > "$OUT/train.log" 2>&1
echo "fit rc $? after $(( $(date +%s) - START )) s"
tail -5 "$OUT/train.log"
cp runs/gpu/checkpoints/last.ckpt "$OUT/last.ckpt" 2>/dev/null || echo "no last.ckpt"
cp "$(ls -t runs/gpu/logs/*/metrics.csv | head -1)" "$OUT/metrics.csv" 2>/dev/null || true
ls -la "$OUT"
