#!/usr/bin/env bash
# The GPU check (issue 18): on a machine with one CUDA GPU, in under 8 minutes,
#   bash benchmarks/gpu_check.sh
# installs hrkd-trainer with CUDA torch and DeepSpeed into .venv-gpu (or the interpreter in $PYTHON),
# then runs benchmarks/gpu_check.py: the paper-size speed benchmark in bf16 (teacher cache on and off)
# and, for each shipped Accelerate config a single GPU can start (DDP, ZeRO-2, ZeRO-3, FSDP), one
# short HRKD run that is killed after its first checkpoint, resumed, exported and loaded in a fresh
# process. Results: benchmarks/results/gpu_check_cuda.json and .md. Extra arguments go to gpu_check.py.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
  if [ ! -x .venv-gpu/bin/python ]; then
    python3 -m venv .venv-gpu
    .venv-gpu/bin/python -m pip install --quiet --upgrade pip
    .venv-gpu/bin/python -m pip install --quiet "torch==2.13.0"   # the CUDA wheel from PyPI
    .venv-gpu/bin/python -m pip install --quiet -e . deepspeed
  fi
  PYTHON=.venv-gpu/bin/python
fi
"$PYTHON" -c "import torch; assert torch.cuda.is_available(), 'no CUDA GPU visible: run benchmarks/gpu_check.py --device cpu for the CPU-safe parts'"
exec "$PYTHON" benchmarks/gpu_check.py --device cuda "$@"
