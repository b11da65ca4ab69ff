"""The GPU smoke script (reports/gpu/smoke.sh -> smoke.py) runs end to end on a CPU with the small network: one config,
its record complete, the table of gpu.md rewritten between its markers and nothing else of the file touched."""
import json, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def test_smoke_script_on_cpu(tmp_path):
    md = tmp_path/"gpu.md"
    md.write_text("# GPU\n\nprose kept\n\n<!-- smoke:begin -->\nold table\n<!-- smoke:end -->\n\nafter\n")
    out = tmp_path/"smoke.json"
    cmd = [sys.executable, str(ROOT/"reports/gpu/smoke.py"), "--device", "cpu", "--model", "small", "--iters", "4", "--init-iters", "1",
           "--n-src", "1", "--n-train", "1", "--n-val", "1", "--configs", "gta5_cityscapes/dacs", "--data", str(tmp_path/"data"),
           "--work", str(tmp_path/"work"), "--out", str(out), "--md", str(md)]
    r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    doc = json.loads(out.read_text())
    assert str(tmp_path) not in out.read_text()                     # no path of this machine in the report
    (rec,) = doc["runs"]
    assert "error" not in rec, rec.get("error")
    assert rec["config"] == "gta5_cityscapes/dacs" and rec["model"] == "small" and rec["timed_steps"] == [2, 3]
    assert rec["sec_per_iter"] > 0 and rec["checkpoint_bytes"] > 0 and 0 <= rec["miou"] <= 1
    assert rec["syncs_one_step"] is None                             # counted on CUDA only (set_sync_debug_mode)
    assert abs(rec["full_pass_seconds"]["evaluation_500"] - rec["eval_seconds_per_image"] * 500) <= 0.5 + 1e-9   # per image rounded to ms
    assert rec["full_pass_seconds"]["refresh_2975_estimate"] > rec["full_pass_seconds"]["evaluation_500"] > 0
    text = md.read_text()
    assert text.startswith("# GPU\n\nprose kept\n") and text.endswith("<!-- smoke:end -->\n\nafter\n") and "old table" not in text
    assert "| gta5_cityscapes/dacs | small |" in text

def test_smoke_sh_is_valid_bash():
    assert subprocess.run(["bash", "-n", str(ROOT/"reports/gpu/smoke.sh")]).returncode == 0
