#!/usr/bin/env bash
# GPU smoke run of every paper config (issue 19), at most 8 minutes on one GPU; nothing to install beyond the working tree
# (torch, numpy, pillow, pyyaml, tqdm and matplotlib must be importable). Writes reports/gpu/smoke.json and the table of
# reports/gpu.md; with $OUT set (the device tool) copies both there too. Extra arguments go to smoke.py (see --help).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 CDA_NB_PROGRESS=off MPLBACKEND=Agg
PY=${PYTHON:-python3}
$PY -c "import torch, numpy, PIL, yaml, tqdm, matplotlib; assert torch.cuda.is_available(), 'smoke.sh needs a CUDA GPU'; print(torch.__version__, torch.cuda.get_device_name())"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
status=0
timeout 470 $PY reports/gpu/smoke.py "$@" || status=$?
if [ -n "${OUT:-}" ]; then cp reports/gpu/smoke.json reports/gpu.md "$OUT"/ 2>/dev/null || true; fi
exit $status
