"""The reduced full-scale rehearsal (reports/fullscale/rehearsal.py --model small): every GTA5/SYNTHIA -> Cityscapes config
of configs/ through cda-train at the true image sizes and formats, SIGKILLed after its first checkpoint and resumed, one
config also through papermill nbs/train.ipynb and through the in-process DeviceCheck step."""
import json, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(f"{p.parent.name}/{p.stem}" for d in ("gta5_cityscapes", "synthia_cityscapes") for p in (ROOT/"configs"/d).glob("*.yaml"))
KEYS = {"config", "completed", "resumed", "sec_per_iter", "data_wait_share", "peak_rss_mb", "checkpoint_bytes", "syncs_per_step",
        "full_pass_seconds", "refresh_seconds", "eval_seconds", "loader"}
ONE = "gta5_cityscapes/dacs"                    # also through papermill and DeviceCheck (cheap: no source-only pre-run)

def test_reduced_rehearsal(tmp_path):
    out = tmp_path/"out"
    cmd = [sys.executable, str(ROOT/"reports/fullscale/rehearsal.py"), "--model", "small", "--iters", "2", "--init-iters", "1",
           "--n-src", "1", "--n-train", "1", "--n-val", "1", "--data", str(tmp_path/"data"), "--work", str(tmp_path/"work"),
           "--out", str(out), "--papermill", ONE, "--syncs", ONE, "--loader-items", "2"]
    r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    text = (out/"rehearsal.json").read_text()
    assert str(tmp_path) not in text                                  # no path of this machine in the report
    doc = json.loads(text)
    assert {"command", "model", "data", "loader", "runs"} <= set(doc) and doc["model"] == "small"
    assert doc["data"]["gta5"] == [1914, 1052] and doc["data"]["cityscapes"] == [2048, 1024] and doc["data"]["synthia"] == [1280, 760]
    runs = {x["name"]: x for x in doc["runs"]}
    assert sorted(runs) == CONFIGS
    for name, x in runs.items():
        assert KEYS <= set(x), (name, KEYS - set(x))
        assert x["completed"] and x["resumed"], (name, x.get("error"), x.get("error_tail", "")[-1500:])
        assert x["model"] == "small" and x["checkpoint_bytes"] > 0 and x["sec_per_iter"] > 0, name
        assert x["cli"]["killed_at_step"] == 1 and x["cli"]["resume_evidence"]["log_lines_kept"], name
        fp = x["full_pass_seconds"]
        assert fp["evaluation"] > 0 and fp["header_check"] > 0, name
        if x["method"] in ("self_training", "bcl"):                # CBST labels refreshed at steps 0 and 1; labels beside the checkpoint
            assert x["n_refreshes"] == 2 and x["refresh_seconds"] > 0 and fp["refresh"] > 0 and fp["class_statistics"] > 0, name
            assert x["sidecars"] == ["checkpoint-static_labels-v1.pt"], name
        if x["method"] == "sdca":                                  # the SSL stage (its label pass) in the last step
            assert x["interval_overrides"]["ssl_iters"] == 1 and x["n_refreshes"] == 1 and fp["refresh"] is not None, name
            assert fp["sdca_init_stats"] > 0, name
    one = runs[ONE]
    assert one["papermill"]["completed"] and one["papermill"]["resumed"], one["papermill"]
    assert one["papermill"]["same_miou_as_cli"]                      # the notebook runs the very same trainer
    assert isinstance(one["syncs_per_step"], int) and one["syncs_per_step"] >= 1 and one["devcheck_problems"] == []
    assert one["loader"]["per_step_cpu_s"] > 0 and set(one["loader"]["data_wait_share_at_W"]) == {"1", "2", "4", "8"}
    readme = (out/"README.md").read_text()
    assert "<!-- rehearsal:small:begin -->" in readme and all(f"| {n} | small | yes | yes |" in readme for n in CONFIGS)
