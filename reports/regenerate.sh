#!/usr/bin/env bash
# Regenerate every committed result of one embedded benchmark from scratch:  bash reports/regenerate.sh DATASET [cda-sweep args]
# (DATASET: minicity or shiftcity; reports/<dataset>/regenerate.sh calls this). The grid is experiments/<dataset>.yaml
# (every run folder of reports/runs/<dataset>: method, parameters, seeds, start, the report table and row it feeds), run
# by cda-sweep in dependency order (the source-only models first, then the runs that start from them), then the
# benchmark's report (nbs/report.ipynb, with reports/<dataset>/NOTES.md appended) and the cross-benchmark report.
# Numbers on target test with val beside. JOBS=2 runs two trainings at a time. Extra arguments go to cda-sweep, e.g.
# `--dry-run` (what would run) or `--launcher slurm --partition gpu`. Finished runs are kept and interrupted ones resume
# from their checkpoint, so an interrupted regeneration continues; `rm -rf reports/runs/<dataset>` to start from nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
DATASET="${1:?usage: bash reports/regenerate.sh DATASET [cda-sweep arguments], DATASET one of: $(ls experiments | sed -n 's/\.yaml$//p' | tr '\n' ' ')}"; shift
[ -f "experiments/$DATASET.yaml" ] || { echo "experiments/$DATASET.yaml not found: DATASET is one of $(ls experiments | sed -n 's/\.yaml$//p' | tr '\n' ' ')"; exit 2; }
command -v cda-sweep >/dev/null || { echo "cda-sweep not found: install the kit first (see README.md) and activate its venv"; exit 1; }
cda-sweep "experiments/$DATASET.yaml" --max-parallel "${JOBS:-1}" "$@"
for a in "$@"; do [ "$a" = "--dry-run" ] && exit 0; done
NB=reports/runs/_notebooks; mkdir -p "$NB"
papermill nbs/report.ipynb "$NB/report_$DATASET.ipynb" -p dataset "$DATASET" -p runs_dir reports/runs -p report_dir reports \
  -p experiments "experiments/$DATASET.yaml" -p command "bash reports/$DATASET/regenerate.sh" --cwd . \
  -y "notes: $(DATASET="$DATASET" python -c 'import json,os,pathlib; p=pathlib.Path("reports", os.environ["DATASET"], "NOTES.md"); print(json.dumps(p.read_text() if p.exists() else ""))')"
echo "report: reports/$DATASET/README.md"
if [ -d reports/runs/minicity ] && [ -d reports/runs/shiftcity ]; then python reports/benchmarks/regenerate.py; fi
