"nbs/report.ipynb through papermill on tiny runs: the dataset report with tables, calibration, pseudo labels and feature figures."
import json, subprocess, sys
from conftest import ROOT
from cda_nb.training.trainer import train
from cda_nb.core import write_finished, run_finished

def test_report_notebook(tiny_root, tmp_path):
    runs = tmp_path/"runs"
    kw = dict(data_root=str(tiny_root), out_dir=str(runs), iters=2, init_iters=2, batch_size=2, crop=(48, 48), progress=False)   # bcl starts from these source runs
    for seed in (0, 1):
        for m in ("source_only", "oracle", "bcl"): train(method=m, seed=seed, **kw)
    train(method="bcl", seed=0, tag="fcl", method_params={"lambda_bc": 0.0, "dynamic": False}, **kw)
    for d in runs.glob("minicity/*/seed*"):        # the report counts finished run folders only (issue 23: the trainer marks them)
        if not run_finished(d): write_finished(d)
    exp = tmp_path/"exp.yaml"              # the grid: the report reads its ablation rows from it
    exp.write_text("benchmark: minicity\nseeds: [0, 1]\nruns:\n  - run: source_only\n  - run: oracle\n"
                   "  - run: bcl\n    tables: [results, ablations]\n    caption: full bcl\n"
                   "  - run: bcl-fcl\n    seeds: [0]\n    params: {lambda_bc: 0.0, dynamic: false}\n    tables: [results, ablations]\n    caption: + FCL\n")
    r = subprocess.run([sys.executable, "-m", "papermill", str(ROOT/"nbs/report.ipynb"), str(tmp_path/"out.ipynb"), "--cwd", str(tmp_path),
                        "-p", "dataset", "minicity", "-p", "runs_dir", str(runs), "-p", "report_dir", str(tmp_path/"rep"),
                        "-p", "experiments", str(exp), "-p", "notes", "## Notes\n\nhello"], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    rep = tmp_path/"rep/minicity"
    txt = (rep/"README.md").read_text()
    for s in ["| source_only |", "| bcl |", "## Benchmark calibration", "## Ablations (bcl Table 3, cluda Table 3, ucda Table 3, controls)", "| `bcl-fcl` | + FCL |",
              "## Pseudo labels on target train (bcl Table 4)", "| `bcl` | hybrid |", "![t-SNE](figures/tsne.png)", "hello"]:
        assert s in txt, s
    for f in ["miou_by_method.png", "calibration.png", "tsne.png", "umap.png", "proto_distances.png", "pseudo_label_curve.png", "bias_norms.png"]:
        assert (rep/"figures"/f).stat().st_size > 1000, f
    assert len((rep/"results.csv").read_text().splitlines()) == 1 + 7

def test_papermill_sees_every_parameter():
    """Every name assigned in a papermill notebook's parameters cell is a parameter papermill recognises (`--help-notebook`):
    a comment it cannot parse (the report's `experiments`, until this test) drops the name with only a log warning."""
    import ast, papermill as pm
    for nb in ("nbs/report.ipynb", "nbs/train.ipynb"):
        cells = json.loads((ROOT/nb).read_text())["cells"]
        src = next("".join(c["source"]) for c in cells if "parameters" in c.get("metadata", {}).get("tags", []))
        names = [t.id for s in ast.parse(src).body if isinstance(s, (ast.Assign, ast.AnnAssign))
                 for t in (s.targets if isinstance(s, ast.Assign) else [s.target]) if isinstance(t, ast.Name)]
        assert names and set(pm.inspect_notebook(str(ROOT/nb))) == set(names), (nb, set(names) - set(pm.inspect_notebook(str(ROOT/nb))))
