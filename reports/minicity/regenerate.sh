#!/usr/bin/env bash
# Regenerate every committed MiniCity result from scratch: the grid is experiments/minicity.yaml (every run folder of
# reports/runs/minicity: method, parameters, seeds, start, the report table and row it feeds), run by cda-sweep in
# dependency order (the source-only models first, then the runs that start from them), then the report.
# MiniCity v2; numbers on target test with val beside.
# Run from anywhere:  bash reports/minicity/regenerate.sh        (JOBS=2 runs two trainings at a time)
# Extra arguments go to cda-sweep, e.g. `--dry-run` (what would run) or `--launcher slurm --partition gpu`.
# Finished runs are kept and interrupted ones resume from their checkpoint, so an interrupted regeneration continues;
# `rm -rf reports/runs/minicity` first to start from nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v cda-sweep >/dev/null || { echo "cda-sweep not found: install the kit first (see README.md) and activate its venv"; exit 1; }
cda-sweep experiments/minicity.yaml --max-parallel "${JOBS:-1}" "$@"
for a in "$@"; do [ "$a" = "--dry-run" ] && exit 0; done
NB=reports/runs/_notebooks; mkdir -p "$NB"
papermill nbs/report.ipynb "$NB/report.ipynb" -p dataset minicity -p runs_dir reports/runs -p report_dir reports \
  -p experiments experiments/minicity.yaml --cwd . \
  -y "notes: $(python -c 'import json,pathlib; p=pathlib.Path("reports/minicity/NOTES.md"); print(json.dumps(p.read_text() if p.exists() else ""))')"
echo "report: reports/minicity/README.md"
