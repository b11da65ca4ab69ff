"""Outputs kept in the notebooks (`.ci/keep_outputs.py`) hold no path of the machine that ran them and stay small."""
import json, re
from pathlib import Path

NBS = Path(__file__).resolve().parents[1]/"nbs"
BAD = re.compile(r"/tmp/|/work/|/root|/home/|/private/|/Users/")

def test_kept_outputs_name_no_machine_path_and_stay_small():
    bad, total = [], 0
    for p in sorted(NBS.rglob("*.ipynb")):
        for c in json.loads(p.read_text())["cells"]:
            for o in c.get("outputs", []):
                s = json.dumps(o); total += len(s)
                text = json.dumps({k: v for k, v in o.items() if k != "data"} | {"data": {k: v for k, v in o.get("data", {}).items() if not k.startswith("image/")}})
                if BAD.search(text): bad.append(f"{p.relative_to(NBS)} cell {c.get('id')}")
                if o.get("output_type") == "error": bad.append(f"{p.relative_to(NBS)} cell {c.get('id')}: an error output")
    assert bad == [], bad
    assert total < 8_000_000, f"{total} bytes of outputs in the notebooks: keep values, tables and a few figures"
