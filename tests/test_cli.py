"The console scripts: `cda-train` (same run folder as `train()`), `cda-eval` (parity with cityscapesscripts)."
import importlib, json, math, os, shutil, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
import yaml
from conftest import ROOT, run_py

BIN = Path(sys.executable).parent

def _script(name, *args, cwd=None):
    exe = shutil.which(name, path=str(BIN)) or shutil.which(name)
    assert exe, f"console script {name} is not installed (pip install -e . after nbdev_export)"
    return subprocess.run([exe, *map(str, args)], cwd=cwd or ROOT, capture_output=True, text=True, timeout=900)

def test_help_lists_methods_and_parameters():
    from cda_nb.training.trainer import METHODS, TrainConfig
    import dataclasses
    r = _script("cda-train", "--help")
    assert r.returncode == 0, r.stderr
    for k in METHODS:
        if not k.startswith("_"): assert f"  {k} " in r.stdout, k
    for f in dataclasses.fields(TrainConfig):
        assert f"  {f.name} " in r.stdout, f.name
    assert "default None   # None: the dataset's default" in r.stdout   # iters: its default and its comment
    assert "method_params.NAME=VALUE" in r.stdout

def test_unknown_key_exits_2_without_traceback(tmp_path):
    r = _script("cda-train", "itres=3", f"out_dir={tmp_path}")
    assert r.returncode == 2
    assert "unknown parameter(s) ['itres']" in r.stderr and "valid parameters" in r.stderr and "iters" in r.stderr
    assert "Traceback" not in r.stderr
    r = _script("cda-train", "method=bcll", f"out_dir={tmp_path}")
    assert r.returncode == 2 and "choose one of" in r.stderr and "source_only" in r.stderr
    r = _script("cda-train", "method_params.nope=1", f"out_dir={tmp_path}")
    assert r.returncode == 2 and "has no parameter" in r.stderr
    assert not any(tmp_path.iterdir())                      # nothing was written

SHIPPED = sorted(p for p in (ROOT/"configs").rglob("*.yaml") if "_base" not in p.parts)   # _base/: fragments, not runs

@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT/"configs")))
def test_shipped_configs_are_valid(path):
    from cda_nb.cli import load_run_config
    cfg = load_run_config(path)
    folder = path.parent.parent if path.parent.name == "fair" else path.parent        # <dataset>/[fair/]<method>[_<variant>].yaml
    assert (path.stem == cfg.method or path.stem.startswith(cfg.method + "_")) and cfg.dataset == folder.name

@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT/"configs")))
def test_shipped_configs_say_only_what_differs(path):
    """A config sets only what differs from what it builds on: its `base:` files, else the dataset's and the method's
    defaults (`TrainConfig`, `DATASET_DEFAULTS`, `Method`)."""
    import dataclasses
    from cda_nb.cli import read_yaml_config, _merge
    from cda_nb.training.trainer import make_config, METHODS
    own = yaml.safe_load(path.read_text()); bases = own.pop("base", None)
    bases = [] if bases is None else [bases] if isinstance(bases, str) else bases
    inherited = {}
    for b in bases: inherited = _merge(inherited, read_yaml_config(path.parent/b))
    full = read_yaml_config(path); m = METHODS[full["method"]]
    dft = dataclasses.asdict(make_config(method=full["method"], dataset=full["dataset"]))
    dft.update(init=m.default_init, source_sampling=m.source_sampling)
    parent = {**{k: v for k, v in dft.items() if k not in ("method", "dataset")}, **inherited,   # method, dataset: only if inherited
              "method_params": {**m.defaults, **inherited.get("method_params", {})}}
    norm = lambda v: [norm(x) for x in v] if isinstance(v, (list, tuple)) else float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v
    same = [k for k, v in own.items() if k != "method_params" and not isinstance(v, dict) and norm(v) == norm(parent.get(k))]
    same += [f"method_params.{k}" for k, v in own.get("method_params", {}).items() if norm(v) == norm(parent["method_params"].get(k))]
    assert not same, f"{path.name} repeats what it builds on: {same}"

def test_configs_resolve_to_the_recorded_values():
    "Every shipped config, resolved through its `base:` files, gives the values the flat files of before gave (tests/data/resolved_configs.json)."
    import dataclasses
    from cda_nb.cli import load_run_config
    want = json.loads((ROOT/"tests/data/resolved_configs.json").read_text())
    got = {str(p.relative_to(ROOT/"configs")): json.loads(json.dumps(dataclasses.asdict(load_run_config(p)), default=str)) for p in SHIPPED}
    assert got.keys() == want.keys()
    diff = {k: {a: (want[k][a], got[k].get(a)) for a in want[k] if want[k][a] != got[k].get(a)} for k in want if got[k] != want[k]}
    assert not diff, diff

def test_synthia_configs_inherit_their_gta5_twins():
    "Each synthia_cityscapes config builds on its gta5_cityscapes twin and says little more than the dataset."
    for p in sorted((ROOT/"configs/synthia_cityscapes").glob("*.yaml")):
        own = yaml.safe_load(p.read_text())
        assert own["base"] == f"../gta5_cityscapes/{p.name}" and own["dataset"] == "synthia_cityscapes"
        assert set(own) <= {"base", "dataset", "src_resize", "method_params"}, (p.name, set(own))
        assert set(own.get("method_params", {})) <= {"rcs_min_share"}, p.name   # the RCS pool in pixels of SYNTHIA's labels

VOLATILE = {"train_seconds", "sec_per_iter", "peak_rss_mb", "peak_gpu_mb", "data_seconds", "hook_seconds", "data_wait_share", "eval_seconds"}

@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    "The same tiny run through `cda-train` (YAML + overrides) and through `train()`."
    from conftest import write_tiny
    tmp = tmp_path_factory.mktemp("cli")
    data = write_tiny(tmp/"data")
    over = dict(data_root=str(data), iters=3, batch_size=2, crop=[48, 48], progress=False)
    r = _script("cda-train", "configs/minicity/source_only.yaml", *[f"{k}={json.dumps(v) if isinstance(v, list) else v}" for k, v in over.items()],
                f"out_dir={tmp/'cli'}")
    assert r.returncode == 0, r.stderr[-3000:]
    d = yaml.safe_load((ROOT/"configs/minicity/source_only.yaml").read_text())
    p = run_py(f"from cda_nb.training.trainer import train; train(**{ {**d, **over, 'out_dir': str(tmp/'api')}!r})")
    assert p.returncode == 0, p.stderr[-3000:]
    return dict(tmp=tmp, data=data, stdout=r.stdout, cli=tmp/"cli/minicity/source_only/seed0", api=tmp/"api/minicity/source_only/seed0")

def test_cli_run_matches_train(cli_run):
    cli, api = cli_run["cli"], cli_run["api"]
    assert f"run folder: {cli}" in cli_run["stdout"]
    assert sorted(p.name for p in cli.iterdir()) == sorted(p.name for p in api.iterdir())
    c1, c2 = (json.loads((d/"config.json").read_text()) for d in (cli, api))
    assert c1.pop("out_dir") != c2.pop("out_dir")
    assert c1 == c2 and c1["iters"] == 3 and c1["crop"] == [48, 48]
    m1, m2 = (json.loads((d/"metrics.json").read_text()) for d in (cli, api))
    assert {k: v for k, v in m1.items() if k not in VOLATILE} == {k: v for k, v in m2.items() if k not in VOLATILE}
    assert [r["step"] for r in map(json.loads, (cli/"log.jsonl").read_text().splitlines())] == [3]


def test_eval_pred_dir_parity_with_cityscapesscripts(cli_run, cs_eval):
    run, tmp = cli_run["cli"], cli_run["tmp"]
    r = _script("cda-eval", run, "--pred_dir", tmp/"pred", "--out", tmp/"eval.json", "--no-progress")
    assert r.returncode == 0, r.stderr[-3000:]
    printed = json.loads(r.stdout)
    assert printed == {k: v for k, v in json.loads((tmp/"eval.json").read_text()).items() if k != "confusion"}
    # no eval_size on this dataset: the trainer's final evaluation is the same protocol
    assert abs(printed["miou"] - json.loads((run/"metrics.json").read_text())["miou"]) < 1e-9
    args = cs_eval.args
    args.predictionPath, args.predictionWalk = str(tmp/"pred"), None
    gts = sorted((cli_run["data"]/"cityscapes/gtFine/val").glob("*/*_gtFine_labelIds.png"))
    assert len(gts) == printed["n_images"] == 3
    cm = cs_eval.generateMatrix(args)
    for g in gts:
        pred = cs_eval.getPrediction(args, str(g))            # the official name matching (<city>_<seq>_<frame>)
        cs_eval.evaluatePair(pred, str(g), cm, {}, {}, args)
    from cda_nb.data import CS_LABELS
    scores = {l.name: cs_eval.getIouScoreForLabel(l.id, cm, args) for l in CS_LABELS if l.id >= 0 and not l.ignore_in_eval}
    official = cs_eval.getScoreAverage(scores, args)
    assert abs(official - printed["miou"]) < 1e-6, (official, printed["miou"])
    for name, v in printed["per_class_iou"].items():
        assert (v is None and math.isnan(scores[name])) or abs(v - scores[name]) < 1e-6, name

def test_eval_missing_checkpoint(tmp_path):
    r = _script("cda-eval", tmp_path/"nope")
    assert r.returncode == 2 and "checkpoint not found" in r.stderr and "Traceback" not in r.stderr
