"""DeepLab-V2 ResNet-101 on a tiny MiniCity-format pair (CPU, 2 iterations) goes through nbs/train.ipynb and
through `cda-train` with identical configs and identical results."""
import json, shutil, subprocess, sys
from pathlib import Path
from conftest import ROOT

VOLATILE = {"train_seconds", "sec_per_iter", "peak_rss_mb", "peak_gpu_mb", "data_seconds", "hook_seconds", "data_wait_share", "eval_seconds"}

def test_deeplab_notebook_and_cli_agree(tiny_root, tmp_path):
    # no weights can be downloaded here: random init, so BatchNorm must train (frozen statistics of a random
    # ResNet-101 overflow); with pretrained weights the default freeze_bn=True is what the papers do
    common = dict(model="deeplabv2", data_root=str(tiny_root), iters=2, batch_size=1, lr=0.001)
    nb = subprocess.run([sys.executable, "-m", "papermill", str(ROOT/"nbs/train.ipynb"), str(tmp_path/"out.ipynb"), "--cwd", str(tmp_path),
                         *sum([["-p", k, str(v)] for k, v in {**common, "out_dir": tmp_path/"nb"}.items()], []),
                         "-y", "model_kwargs: {freeze_bn: false}"], capture_output=True, text=True, timeout=900)
    assert nb.returncode == 0, nb.stderr[-3000:]
    exe = shutil.which("cda-train", path=str(Path(sys.executable).parent)) or shutil.which("cda-train")
    # the notebook's own defaults for what it does not expose are TrainConfig's, as for the CLI without a file
    cli = subprocess.run([exe, *[f"{k}={v}" for k, v in common.items()], "model_kwargs.freeze_bn=false", f"out_dir={tmp_path/'cli'}", "progress=false"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert cli.returncode == 0, cli.stderr[-3000:]
    a, b = tmp_path/"nb/minicity/source_only/seed0", tmp_path/"cli/minicity/source_only/seed0"
    ca, cb = (json.loads((d/"config.json").read_text()) for d in (a, b))
    ca.pop("out_dir"); cb.pop("out_dir"); ca.pop("progress"); cb.pop("progress")
    assert ca == cb and ca["model"] == "deeplabv2"
    ma, mb = (json.loads((d/"metrics.json").read_text()) for d in (a, b))
    assert {k: v for k, v in ma.items() if k not in VOLATILE} == {k: v for k, v in mb.items() if k not in VOLATILE}
