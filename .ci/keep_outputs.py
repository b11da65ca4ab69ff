"""Keep a notebook's small outputs: execute it with nbconvert into a scratch folder, then copy back the outputs of every
code cell whose source is unchanged, leaving out stderr, errors, outputs over 150 kB and any output that names a path
of the machine (temporary folders, home directories). Run `nbdev_clean` afterwards.

    python .ci/keep_outputs.py nbs/04_losses.ipynb nbs/methods/base.ipynb ...
"""
import json, re, subprocess, sys, tempfile
from pathlib import Path

BAD = re.compile(r"/tmp/|/work/|/root|/home/|/private/|/Users/|tmp[a-z0-9_]{6,}")

def keep(o) -> bool:
    if o.get("output_type") == "error" or (o.get("output_type") == "stream" and o.get("name") == "stderr"): return False
    if len(json.dumps(o)) > 150_000: return False
    d = o.get("data", {})
    text = "".join(o.get("text", "")) + "".join("".join(d.get(k, "")) for k in ("text/plain", "text/html", "text/markdown"))
    return not BAD.search(text)

def merge(executed: Path, target: Path) -> tuple:
    ex = {c["id"]: c for c in json.loads(executed.read_text())["cells"]}
    nb = json.loads(target.read_text()); kept = dropped = 0
    for c in nb["cells"]:
        e = ex.get(c.get("id"))
        if c["cell_type"] != "code" or e is None or "".join(e["source"]) != "".join(c["source"]): continue
        good = [o for o in e.get("outputs", []) if keep(o)]
        for o in good:
            if "execution_count" in o: o["execution_count"] = None
            if isinstance(o.get("metadata"), dict): o["metadata"].clear()
        kept += len(good); dropped += len(e.get("outputs", [])) - len(good)
        c["outputs"] = good
    target.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return kept, dropped

if __name__ == "__main__":
    for p in map(Path, sys.argv[1:]):
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(["jupyter", "nbconvert", "--to", "notebook", "--execute", str(p), "--output-dir", tmp], check=True)
            print(p, "kept %d, dropped %d" % merge(Path(tmp)/p.name, p))
