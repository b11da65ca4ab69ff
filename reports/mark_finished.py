"""Write the finished marker (`finished.json`) into committed run folders that predate it.

    python reports/mark_finished.py [RUNS_DIR ...]      # default: reports/runs

A run folder trained before the marker existed is finished when its `metrics.json` is complete: it reads, and has the
target val and test results (`miou`, `miou_test`). Such a folder gets `finished.json` (the sha256 of its metrics.json,
the run's identity computed from its `config.json`, and a note that it was marked afterwards); a folder that already
has a marker, or whose metrics are incomplete, is left as it is and listed.
"""
import json, sys
from pathlib import Path
from cda_nb.core import write_finished, run_finished

ROOT = Path(__file__).resolve().parents[1]

def identity_of(folder: Path):
    "The run's identity from its config.json, when the kit can compute one (`training.runfolder.stored_identity`)."
    try: from cda_nb.training.runfolder import stored_identity
    except ImportError: return None
    return stored_identity(folder)

def mark(runs_dir: Path, force: bool = False) -> dict:
    done, skipped = [], []
    for m in sorted(Path(runs_dir).glob("*/*/seed*/metrics.json")):
        d = m.parent
        if run_finished(d) and not force: skipped.append((d, "already marked")); continue
        try: met = json.loads(m.read_text())
        except ValueError: skipped.append((d, "metrics.json does not read")); continue
        if "miou" not in met or "miou_test" not in met: skipped.append((d, "no val and test results")); continue
        write_finished(d, identity=identity_of(d), marked_by="reports/mark_finished.py (the run predates the marker)")
        done.append(d)
    return {"marked": done, "skipped": skipped}

if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--force"]
    for r in (args or [ROOT/"reports"/"runs"]):
        res = mark(Path(r), force="--force" in sys.argv)
        print(f"{r}: {len(res['marked'])} marked, {len(res['skipped'])} left as they were")
        for d, why in res["skipped"]: print(f"  {d}: {why}")
