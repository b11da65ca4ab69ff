"""Keep a notebook's small outputs: execute it as `nbdev_test` would (in its own folder, cells marked `#| eval: false`
left out, so no long run starts and nothing is written beside the notebook), then copy back the outputs of every
code cell that ran, leaving out stderr, errors, outputs over 150 kB and any output that names a path
of the machine (temporary folders, home directories). Run `nbdev_clean` afterwards.

    python .ci/keep_outputs.py nbs/04_losses.ipynb nbs/methods/base.ipynb ...
"""
import json, re, sys
import nbformat
from nbclient import NotebookClient
from pathlib import Path

BAD = re.compile(r"/tmp/|/work/|/root|/home/|/private/|/Users/|tmp[a-z0-9_]{6,}")

def keep(o) -> bool:
    if o.get("output_type") == "error" or (o.get("output_type") == "stream" and o.get("name") == "stderr"): return False
    if len(json.dumps(o)) > 150_000: return False
    d = o.get("data", {})
    text = "".join(o.get("text", "")) + "".join("".join(d.get(k, "")) for k in ("text/plain", "text/html", "text/markdown"))
    return not BAD.search(text)

SKIP = re.compile(r"^\s*#\s*\|\s*eval\s*:\s*false", re.M)

def skipped(cell) -> bool:
    "A code cell `nbdev_test` does not run (`#| eval: false`)."
    return cell["cell_type"] == "code" and bool(SKIP.search("".join(cell["source"])))

def execute(path: Path) -> dict:
    "Run the notebook at `path` in its own folder without its `eval: false` cells; return the executed cells by id."
    nb = nbformat.read(path, as_version=4)
    nb.cells = [c for c in nb.cells if not skipped(c)]
    NotebookClient(nb, timeout=1800, resources={"metadata": {"path": str(path.parent)}}).execute()
    return {c["id"]: c for c in nb.cells}

def merge(ex: dict, target: Path) -> tuple:
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
        print(p, "kept %d, dropped %d" % merge(execute(p), p))
