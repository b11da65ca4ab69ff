#!/usr/bin/env bash
# Regenerate every committed MiniCity result from scratch:
#   3 seeds x {source_only, oracle, self_training, bcl}, the bcl ablation and a threshold check (seed 0), then the report.
# Run from anywhere:  bash reports/minicity/regenerate.sh        (JOBS=2 runs two trainings at a time, one thread each)
# Finished runs (metrics.json present) are kept and interrupted ones resume from their checkpoint, so an
# interrupted regeneration continues; `rm -rf reports/runs/minicity` first to start from nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v papermill >/dev/null || { echo "papermill not found: install the kit first (see README.md) and activate its venv"; exit 1; }
export RUNS=reports/runs NB=reports/runs/_notebooks
mkdir -p "$NB"
JOBS=${JOBS:-1}
if [ "$JOBS" -gt 1 ]; then export OMP_NUM_THREADS=1; fi

run() {  # run <method> <seed> [tag] [method_params yaml]
  local method=$1 seed=$2 tag=${3:-} mp=${4:-}
  [ -n "$mp" ] || mp="{}"
  local name=$method${tag:+-$tag}
  if [ -f "$RUNS/minicity/$name/seed$seed/metrics.json" ]; then echo "finished already: $name seed $seed"; return 0; fi
  papermill nbs/train.ipynb "$NB/${name}_seed${seed}.ipynb" -p method "$method" -p seed "$seed" -p tag "$tag" \
    -y "method_params: $mp" -p out_dir "$RUNS" --cwd . >/dev/null 2>"$NB/${name}_seed${seed}.log" \
    || { echo "FAILED: $name seed $seed (see $NB/${name}_seed${seed}.log)"; return 1; }
  echo "done: $name seed $seed"
}
runline() { local m s t mp; read -r m s t mp <<< "$1"; run "$m" "$s" "$t" "$mp"; }
export -f run runline

# stage 1: the bounds; stage 2: everything that starts from a source-only model (self_training, bcl, the bcl
# ablation of Table 3 on seed 0: names match cda_nb.report.ABLATION)
printf '%s\n' "source_only 0" "source_only 1" "source_only 2" "oracle 0" "oracle 1" "oracle 2" |
  xargs -P "$JOBS" -I{} bash -c 'runline "$1"' _ {}
printf '%s\n' "bcl 0" "self_training 0" "bcl 1" "self_training 1" "bcl 2" "self_training 2" \
  "bcl 0 fcl {lambda_bc: 0.0, dynamic: false}" "bcl 0 fcl_bcl {dynamic: false}" "bcl 0 dyn_nocal {calibrate: false}" \
  "bcl 0 T09 {threshold: 0.9}" |
  xargs -P "$JOBS" -I{} bash -c 'runline "$1"' _ {}

papermill nbs/report.ipynb "$NB/report.ipynb" -p dataset minicity -p runs_dir "$RUNS" -p report_dir reports --cwd . \
  -y "notes: $(python -c 'import json,pathlib; p=pathlib.Path("reports/minicity/NOTES.md"); print(json.dumps(p.read_text() if p.exists() else ""))')"
echo "report: reports/minicity/README.md"
