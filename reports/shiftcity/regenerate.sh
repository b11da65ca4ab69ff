#!/usr/bin/env bash
# Regenerate every committed ShiftCity result from scratch: the grid is experiments/shiftcity.yaml (every method at the
# kit's defaults for dataset=shiftcity, seeds 0-2), run by cda-sweep in dependency order (the source-only models first,
# then the runs that start from them), then the report. ShiftCity v1 (nbs/02b_shiftcity.ipynb); target test, val beside.
# Run from anywhere:  bash reports/shiftcity/regenerate.sh        (JOBS=2 runs two trainings at a time)
# Extra arguments go to cda-sweep, e.g. `--dry-run`. Finished runs are kept, interrupted ones resume from their
# checkpoint; `rm -rf reports/runs/shiftcity` first to start from nothing. The report's AdaBN-statistics column and
# feature figures need the runs' checkpoints (a clone has the cached results: target_bn.json in each run folder).
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v cda-sweep >/dev/null || { echo "cda-sweep not found: install the kit first (see README.md) and activate its venv"; exit 1; }
cda-sweep experiments/shiftcity.yaml --max-parallel "${JOBS:-1}" "$@"
for a in "$@"; do [ "$a" = "--dry-run" ] && exit 0; done
NB=reports/runs/_notebooks; mkdir -p "$NB"
papermill nbs/report.ipynb "$NB/report_shiftcity.ipynb" -p dataset shiftcity -p runs_dir reports/runs -p report_dir reports \
  -p experiments experiments/shiftcity.yaml -p command "bash reports/shiftcity/regenerate.sh" --cwd . \
  -y "notes: $(python -c 'import json,pathlib; p=pathlib.Path("reports/shiftcity/NOTES.md"); print(json.dumps(p.read_text() if p.exists() else ""))')"
python reports/benchmarks/regenerate.py
echo "report: reports/shiftcity/README.md, reports/benchmarks/README.md"
