# Bad run folders and report folders given to the report (`cda_nb.report.write_report`), issue 23.
# Exec'd by reports/robustness.py in its namespace (`case`, `Ctx`, `ROOT`, `CDAError`, ...). Each case copies 2 rows x 3
# seeds of the committed MiniCity runs (metrics.json, config.json, finished.json, target_bn.json, the predictions
# figure; no logs or checkpoints) into the case's scratch folder, damages them and writes a report beside them.
from cda_nb.core import write_finished
from cda_nb.report import write_report

_REP_ROWS, _REP_FILES = ("source_only", "bcl"), ("metrics.json", "config.json", "finished.json", "target_bn.json", "figures/predictions.png")

def _rep_runs(c, seeds=(0, 1, 2)):
    "Copy the committed runs of `_REP_ROWS` into `c.tmp/runs/minicity`; returns that folder."
    base = c.tmp/"runs"/"minicity"
    for k in _REP_ROWS:
        for s in seeds:
            dst = base/k/f"seed{s}"; (dst/"figures").mkdir(parents=True)
            for f in _REP_FILES: shutil.copyfile(ROOT/"reports/runs/minicity"/k/f"seed{s}"/f, dst/f)
    return base

def _rep(c, base, **kw):
    "The report's README text (written to `c.tmp/rep`)."
    return write_report(base.parent, "minicity", c.tmp/"rep", **kw).read_text()

def _rep_json(p, **change): p.write_text(json.dumps({**json.loads(p.read_text()), **change}))

def _rep_seeds(txt, row):
    head = next(l for l in txt.splitlines() if l.startswith("| method |")).split(" | ")
    return int(next(l for l in txt.splitlines() if l.startswith(f"| {row} |")).split(" | ")[head.index("seeds")])

def _rep_left(txt, folder, why):
    "Check that `folder` (e.g. 'bcl/seed0') is listed as left out for `why`; the listed line, as the case's outcome."
    assert "## Run folders left out" in txt, "nothing listed as left out"
    line = next((l for l in txt.split("## Run folders left out")[1].splitlines() if folder in l), None)
    assert line and why in line, line
    return "report written, " + line.lstrip("- ")

def _rep_untest(d, finish=True):
    "Run folder `d` without test results (as the trainer leaves it after val), re-marked finished or not."
    m = json.loads((d/"metrics.json").read_text()); m.pop("miou_test"); m.pop("test", None)
    (d/"metrics.json").write_text(json.dumps(m))
    if finish: write_finished(d)
    else: (d/"finished.json").unlink()

@case("report", "truncated metrics.json (marker no longer matches)", ("ok", None))
def _(c):
    b = _rep_runs(c); p = b/"bcl/seed0/metrics.json"; p.write_bytes(p.read_bytes()[:300])
    txt = _rep(c, b); assert _rep_seeds(txt, "bcl") == 2
    return _rep_left(txt, "bcl/seed0", "does not match metrics.json")

@case("report", "empty (0-byte) metrics.json, marker rewritten to match", ("ok", None))
def _(c):
    b = _rep_runs(c); (b/"bcl/seed1/metrics.json").write_bytes(b""); write_finished(b/"bcl/seed1")
    return _rep_left(_rep(c, b), "bcl/seed1", "metrics.json is not valid JSON")

@case("report", "metrics.json is a JSON list, marker rewritten to match", ("ok", None))
def _(c):
    b = _rep_runs(c); (b/"bcl/seed1/metrics.json").write_text("[0.5]"); write_finished(b/"bcl/seed1")
    return _rep_left(_rep(c, b), "bcl/seed1", "holds a JSON list, not an object")

@case("report", "metrics.json without val results (no miou), marked", ("ok", None))
def _(c):
    b = _rep_runs(c); (b/"bcl/seed2/metrics.json").write_text('{"seed": 2}'); write_finished(b/"bcl/seed2")
    return _rep_left(_rep(c, b), "bcl/seed2", "has no val mIoU")

@case("report", "metrics.json is a fifo (would block a reader)", ("ok", None))
def _(c):
    b = _rep_runs(c); (b/"bcl/seed0/metrics.json").unlink(); os.mkfifo(b/"bcl/seed0/metrics.json")
    return _rep_left(_rep(c, b), "bcl/seed0", "not a regular file")

@case("report", "config.json missing in a finished run", ("ok", None))
def _(c):
    b = _rep_runs(c); (b/"source_only/seed2/config.json").unlink()
    return _rep_left(_rep(c, b), "source_only/seed2", "config.json cannot be read")

@case("report", "config.json truncated in a finished run", ("ok", None))
def _(c):
    b = _rep_runs(c); p = b/"source_only/seed1/config.json"; p.write_bytes(p.read_bytes()[:50])
    return _rep_left(_rep(c, b), "source_only/seed1", "config.json is not valid JSON")

@case("report", "run killed between its val and test writes (no marker)", ("ok", None))
def _(c):
    b = _rep_runs(c); _rep_untest(b/"bcl/seed2", finish=False)
    txt = _rep(c, b); assert "mIoU test" in txt.splitlines()[4], "the report switched split"
    return "stays on test; " + _rep_left(txt, "bcl/seed2", "no finished.json")

@case("report", "stale marker: metrics.json edited after the run finished", ("ok", None))
def _(c):
    b = _rep_runs(c); _rep_json(b/"source_only/seed0/metrics.json", miou=0.99)
    return _rep_left(_rep(c, b), "source_only/seed0", "does not match metrics.json")

@case("report", "truncated finished.json", ("ok", None))
def _(c):
    b = _rep_runs(c); p = b/"bcl/seed0/finished.json"; p.write_bytes(p.read_bytes()[:20])
    return _rep_left(_rep(c, b), "bcl/seed0", "does not match metrics.json")

@case("report", "every run unfinished (no marker anywhere)", ("refused", "no finished runs", FileNotFoundError))
def _(c):
    b = _rep_runs(c)
    for m in b.glob("*/seed*/finished.json"): m.unlink()
    _rep(c, b)

@case("report", "metrics.json and config.json say seed 0 in folder seed3 (a copied folder)", ("ok", None))
def _(c):
    b = _rep_runs(c); shutil.copytree(b/"bcl/seed0", b/"bcl/seed3")
    txt = _rep(c, b); assert _rep_seeds(txt, "bcl") == 3
    return _rep_left(txt, "bcl/seed3", "copied or renamed")

@case("report", "log.jsonl with a torn line in the middle", ("ok", None))
def _(c):
    b = _rep_runs(c); (b/"bcl/seed1/log.jsonl").write_text('{"step": 0, "loss": 1.0}\n{"step": 1, "lo\n{"step": 2, "loss": 0.5}\n')
    return _rep_left(_rep(c, b), "bcl/seed1", "line 2: not a JSON object")

@case("report", "truncated target_bn.json cache (target_bn=True)", ("refused", "target_bn.json is not valid JSON"))
def _(c):
    b = _rep_runs(c); (b/"bcl/seed0/target_bn.json").write_text('{"metrics_sha256": "a'); _rep(c, b, target_bn=True)

@case("report", "run folder seed2 is a symlink to a folder elsewhere", ("ok", None))
def _(c):
    b = _rep_runs(c); shutil.move(b/"bcl/seed2", c.tmp/"elsewhere"); (b/"bcl/seed2").symlink_to(c.tmp/"elsewhere")
    return _rep_left(_rep(c, b), "bcl/seed2", "symbolic link")

@case("report", "row folder bcl is a symlink", ("ok", None))
def _(c):
    b = _rep_runs(c); shutil.move(b/"bcl", c.tmp/"bcl_elsewhere"); (b/"bcl").symlink_to(c.tmp/"bcl_elsewhere")
    txt = _rep(c, b); assert "| bcl |" not in txt
    return _rep_left(txt, "bcl/seed0", "symbolic link")

@case("report", "metrics.json is a symlink to another run's", ("ok", None))
def _(c):
    b = _rep_runs(c); p = b/"bcl/seed1/metrics.json"; p.unlink(); p.symlink_to(b/"bcl/seed0/metrics.json")
    return _rep_left(_rep(c, b), "bcl/seed1", "symbolic link")

@case("report", "figures/predictions.png is a symlink to a secret file", ("ok", None))
def _(c):
    b = _rep_runs(c); (c.tmp/"secret").write_text("root:x:0:0:SECRET\n")
    f = b/"bcl/seed0/figures/predictions.png"; f.unlink(); f.symlink_to(c.tmp/"secret")
    txt = _rep(c, b)
    assert not any(p.is_file() and b"SECRET" in p.read_bytes() for p in (c.tmp/"rep").rglob("*")), "the secret was copied"
    return "not copied; " + _rep_left(txt, "bcl/seed0", "symbolic link")

@case("report", "report figures/ folder is a symlink", ("refused", "figures is a symbolic link"))
def _(c):
    b = _rep_runs(c); (c.tmp/"target").mkdir(); (c.tmp/"rep/minicity").mkdir(parents=True)
    (c.tmp/"rep/minicity/figures").symlink_to(c.tmp/"target")
    try: _rep(c, b)
    finally: assert not list((c.tmp/"target").iterdir()), "written through the link"

@case("report", "report folder <report_dir>/minicity is a symlink", ("refused", "minicity is a symbolic link"))
def _(c):
    b = _rep_runs(c); (c.tmp/"target").mkdir(); (c.tmp/"rep").mkdir(); (c.tmp/"rep/minicity").symlink_to(c.tmp/"target")
    try: _rep(c, b)
    finally: assert not list((c.tmp/"target").iterdir()), "written through the link"

@case("report", "report README.md is a symlink to another file", ("ok", None))
def _(c):
    b = _rep_runs(c); (c.tmp/"precious.md").write_text("keep me\n"); (c.tmp/"rep/minicity").mkdir(parents=True)
    (c.tmp/"rep/minicity/README.md").symlink_to(c.tmp/"precious.md"); _rep(c, b)
    assert (c.tmp/"precious.md").read_text() == "keep me\n", "written through the link"
    assert not (c.tmp/"rep/minicity/README.md").is_symlink()
    return "the link was replaced by the report (atomic write); its target is untouched"

@case("report", "seeds of one row on MiniCity v1 and v2", ("refused", "minicity_version"))
def _(c):
    b = _rep_runs(c); _rep_json(b/"bcl/seed1/config.json", minicity_version=1); _rep(c, b)

@case("report", "rows on different data roots", ("refused", "different data (data_root)"))
def _(c):
    b = _rep_runs(c)
    for s in (0, 1, 2): _rep_json(b/f"bcl/seed{s}/config.json", data_root="/data/other")
    _rep(c, b)

@case("report", "rows on different benchmark seeds", ("refused", "different data (benchmark_seed)"))
def _(c):
    b = _rep_runs(c)
    for s in (0, 1, 2): _rep_json(b/f"source_only/seed{s}/config.json", benchmark_seed=7)
    _rep(c, b)

@case("report", "seeds of one row with different iters", ("refused", "differ in more than their seed, so they are not averaged: iters"))
def _(c):
    b = _rep_runs(c); _rep_json(b/"source_only/seed2/config.json", iters=50); _rep(c, b)

@case("report", "seeds of one row with a different method hyper-parameter", ("refused", "method_hp.tau"))
def _(c):
    b = _rep_runs(c); cf = json.loads((b/"bcl/seed0/config.json").read_text())
    _rep_json(b/"bcl/seed0/config.json", method_hp={**cf["method_hp"], "tau": 0.5}); _rep(c, b)

@case("report", "seeds of one row differing only in plumbing (device, figures, out_dir)", ("ok", None))
def _(c):
    b = _rep_runs(c); _rep_json(b/"bcl/seed1/config.json", device="cpu", figures=False, out_dir="elsewhere")
    assert _rep_seeds(_rep(c, b), "bcl") == 3
    return "averaged: the plumbing does not change the weights"

@case("report", "a row with one seed only", ("ok", None))
def _(c):
    b = _rep_runs(c, seeds=(0,)); txt = _rep(c, b); assert _rep_seeds(txt, "bcl") == 1
    return "report written; its rows show one seed, without ± std"

@case("report", "a data set without test (no run has miou_test)", ("ok", None))
def _(c):
    b = _rep_runs(c)
    for d in b.glob("*/seed*"): _rep_untest(d)
    txt = _rep(c, b); assert "whole report is on val" in txt and "mIoU test" not in txt
    return "report on val for every run, and it says so"

@case("report", "one finished run without test among runs with test", ("refused", "no target-test results"))
def _(c):
    b = _rep_runs(c); _rep_untest(b/"bcl/seed1"); _rep(c, b)

@case("report", "run folder renamed: bcl/seed2 moved to dacs/seed2 (config says bcl)", ("ok", None))
def _(c):
    b = _rep_runs(c); (b/"dacs").mkdir(); shutil.move(b/"bcl/seed2", b/"dacs/seed2")
    txt = _rep(c, b); assert "| dacs |" not in txt
    return _rep_left(txt, "dacs/seed2", "config of a `bcl` run")

@case("report", "metrics.json with a per-class IoU that is a string, marked", ("ok", None))
def _(c):
    b = _rep_runs(c); p = b/"bcl/seed0/metrics.json"; m = json.loads(p.read_text()); m["per_class_iou"]["road"] = "0.9"
    p.write_text(json.dumps(m)); write_finished(b/"bcl/seed0")
    return _rep_left(_rep(c, b), "bcl/seed0", "not numbers")
