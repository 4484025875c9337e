#!/usr/bin/env bash
# GPU checks (UNMEASURED: written without a GPU). Issue 10: throughput of 1, 5 and 25 members
# against sequential runs on one CUDA GPU, in under 5 minutes. On CUDA the fast path is the torch
# path with members (one grouped convolution / batched matmul per layer over the S members).
# Usage: bash benchmarks/gpu_check.sh [data_dir]   (default ../shared/cifar10; synthetic data
# in the CIFAR format when it is missing). Prints tables of seed·steps/s and speed-ups.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR="${1:-../shared/cifar10}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's lightning_sig
python - <<'PY'
import torch
assert torch.cuda.is_available(), "gpu_check.sh needs a CUDA GPU (torch.cuda.is_available() is False)"
print("GPU:", torch.cuda.get_device_name(0), "| torch", torch.__version__)
PY
# 1. optimizer steps without Lightning (~1 min): S sequential single nets vs one S-member net.
timeout 100 python benchmarks/bench_members.py --device cuda --members 1 5 25 --reps 5
# 2. Trainer.fit level, training + validation, GradientQuantileCallback on (~2-3 min): seed-epochs
#    per hour and the projected study time, torch path x 1 (sequential) vs x 5, x 25.
timeout 180 python benchmarks/bench_throughput.py --device cuda --nets 3 --members 5 25 \
    --reps 2 --steps 60 --val-batches 20 --processes 1 --data-dir "$DATA_DIR"
# 3. issue 21 (UNMEASURED: written without a GPU): the GradientQuantileCallback on the 100 M
#    model (24 tanh layers of width 2048, batch 64) on the GPU, defaults and every step (~3 min):
#    the statistics run as torch ops on the device (radix selection, no host synchronisation
#    until the values are logged), the CUDA tests of the engine (values equal the CPU kernel's).
timeout 200 python benchmarks/bench_callback.py --device cuda --net mlp100m --reps 2 \
    --only "callback, defaults (async)" "callback, every step (async)"
timeout 100 python -m pytest -q tests/test_quantile_engine.py tests/test_grad_stats.py -k cuda
