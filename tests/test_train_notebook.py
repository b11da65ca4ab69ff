"Tiny papermill runs of nbs/train.ipynb; parameter checking; the `parameters` tag survives nbdev_clean."
import json, subprocess, sys
from pathlib import Path
import nbformat, pytest
from conftest import ROOT

NBS = ROOT/"nbs"

@pytest.mark.parametrize("nb", ["train.ipynb", "report.ipynb"])
def test_parameters_tag_present(nb):
    "papermill silently ignores -p when the tag is gone (nbdev_clean strips it unless allowed)."
    cells = nbformat.read(NBS/nb, as_version=4).cells
    assert sum("parameters" in c.get("metadata", {}).get("tags", []) for c in cells) == 1

def test_nbdev_clean_keeps_tag(tmp_path):
    import shutil
    shutil.copy(NBS/"train.ipynb", tmp_path/"t.ipynb")
    r = subprocess.run(["nbdev_clean", "--fname", str(tmp_path/"t.ipynb")], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    cells = nbformat.read(tmp_path/"t.ipynb", as_version=4).cells
    assert any("parameters" in c.get("metadata", {}).get("tags", []) for c in cells)

def _papermill(out, *params, cwd=ROOT):
    args = [sys.executable, "-m", "papermill", str(NBS/"train.ipynb"), str(out), "--log-output", "--cwd", str(cwd)]
    for k, v in params: args += ["-p", k, str(v)]
    return subprocess.run(args, capture_output=True, text=True, timeout=900)

@pytest.mark.parametrize("method", ["source_only", "oracle"])
def test_tiny_papermill_run(method, tiny_root, tmp_path):
    r = _papermill(tmp_path/"out.ipynb", ("method", method), ("data_root", tiny_root), ("iters", 3),
                   ("batch_size", 2), ("out_dir", tmp_path/"runs"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    run = tmp_path/"runs/minicity"/method/"seed0"
    m = json.loads((run/"metrics.json").read_text())
    assert m["iters"] == 3 and m["method"] == method and 0 <= m["miou"] <= 1
    cfg = json.loads((run/"config.json").read_text())
    assert cfg["batch_size"] == 2                    # -p reached the parameters cell
    for f in ["predictions.png", "curves.png", "per_class_iou.png"]: assert (run/"figures"/f).stat().st_size > 1000
    out = nbformat.read(tmp_path/"out.ipynb", as_version=4)
    text = "".join(o.get("text", "") + json.dumps(o.get("data", {})) for c in out.cells for o in c.get("outputs", []))
    assert "mIoU" in text and "road" in text        # the per-class table was shown

def test_bad_method_fails_fast(tmp_path):
    r = _papermill(tmp_path/"out.ipynb", ("method", "bcll"), ("out_dir", tmp_path/"runs"), cwd=tmp_path)
    assert r.returncode != 0
    assert "choose one of" in r.stderr and "source_only" in r.stderr
    assert not (tmp_path/"runs").exists()

def test_help_notebook_documents_parameters():
    r = subprocess.run([sys.executable, "-m", "papermill", "--help-notebook", str(NBS/"train.ipynb")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for p in ["method", "dataset", "data_root", "seed", "iters", "batch_size", "out_dir", "device"]: assert p in r.stdout
    assert "training iterations" in r.stdout and "int" in r.stdout
