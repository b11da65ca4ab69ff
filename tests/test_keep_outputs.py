"""`.ci/keep_outputs.py` runs a notebook the way `nbdev_test` does: a cell marked `#| eval: false` (a long training
run) is not executed, so refreshing outputs never starts a run or writes a run folder beside the notebook."""
import importlib.util, json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def _load():
    spec = importlib.util.spec_from_file_location("keep_outputs", ROOT/".ci"/"keep_outputs.py")
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod); return mod

def _cell(i, src): return {"cell_type": "code", "id": f"c{i}", "metadata": {}, "execution_count": None, "outputs": [], "source": src}

def test_eval_false_cells_do_not_run(tmp_path):
    ko = _load()
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "cells": [_cell(0, "print(6*7)"),
                    _cell(1, "#| eval: false\nopen('ran.txt', 'w').write('long run')"),
                    _cell(2, "import os; print(os.path.exists('ran.txt'))")]}
    p = tmp_path/"nb.ipynb"; p.write_text(json.dumps(nb))
    kept, dropped = ko.merge(ko.execute(p), p)
    assert not (tmp_path/"ran.txt").exists()
    cells = json.loads(p.read_text())["cells"]
    assert "".join(cells[0]["outputs"][0]["text"]).strip() == "42"
    assert cells[1]["outputs"] == []
    assert "".join(cells[2]["outputs"][0]["text"]).strip() == "False"   # ran in the notebook's own folder
    assert kept == 2

def test_machine_paths_are_dropped():
    ko = _load()
    assert not ko.keep({"output_type": "stream", "name": "stdout", "text": "saved to /tmp/abc/run"})
    assert not ko.keep({"output_type": "stream", "name": "stderr", "text": "progress"})
    assert ko.keep({"output_type": "stream", "name": "stdout", "text": "mIoU 41.2"})
