"""CPU cost of one DAFormer (MiT-B5 + context-aware fusion decoder) training iteration at DAFormer's 512x512 crop.

    OMP_NUM_THREADS=1 python reports/bench/daformer_bench.py --batches 1,2 --repeats 3   # -> reports/bench/daformer_<device>.{json,md}

One iteration = forward, cross-entropy on the logits upsampled to the crop (as DAFormer), backward, AdamW step
(lr 6e-5 for the encoder, 6e-4 for the decoder via `param_groups()`, weight decay 0.01). Random init (no weights
are downloaded; speed does not depend on them), random images and labels. Each batch size runs in its own process
(so peak RSS is that setting's): one warm-up iteration, then `--repeats` timed iterations; we report their median."""
import argparse, json, os, subprocess, sys, time, platform
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = r'''
import json, sys, time, statistics, torch
import torch.nn.functional as F
import cda_nb.daformer                      # registers MODELS["daformer"]
from cda_nb.models import build_model
from cda_nb.core import peak_rss_mb
kw = json.loads(sys.argv[1])
torch.manual_seed(0)
net = build_model("daformer", 19, variant=kw["variant"]).train()
enc = sum(p.numel() for p in net.encoder.parameters()); dec = sum(p.numel() for p in net.decode_head.parameters())
opt = torch.optim.AdamW([dict(g, lr=6e-5 * g["lr_mult"]) for g in net.param_groups()], lr=6e-5, weight_decay=0.01)
B, S = kw["batch"], kw["crop"]
x = torch.rand(B, 3, S, S); y = torch.randint(0, 19, (B, S, S))
def step():
    t, c = time.perf_counter(), time.process_time()
    opt.zero_grad(set_to_none=True)
    out = net(x)
    loss = F.cross_entropy(out.upsampled_logits((S, S)), y, ignore_index=255)
    loss.backward(); opt.step()
    return time.perf_counter() - t, time.process_time() - c
warm = [step()[0] for _ in range(kw["warm"])]
runs = [step() for _ in range(kw["repeats"])]
sec, cpu = [r[0] for r in runs], [r[1] for r in runs]
print("RESULT" + json.dumps({"sec_per_iter": statistics.median(sec), "runs": [round(s, 2) for s in sec],
                             "cpu_sec_per_iter": statistics.median(cpu), "cpu_runs": [round(s, 2) for s in cpu],
                             "warmup": [round(s, 2) for s in warm], "peak_rss_mb": peak_rss_mb(),
                             "threads": torch.get_num_threads(), "encoder_params": enc, "decoder_params": dec}))
'''

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", default="b5")
    ap.add_argument("--batches", default="1,2")
    ap.add_argument("--crop", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warm", type=int, default=1)
    a = ap.parse_args()
    rows, load = {}, [round(os.getloadavg()[0], 2)]
    for b in map(int, a.batches.split(",")):
        kw = dict(variant=a.variant, batch=b, crop=a.crop, repeats=a.repeats, warm=a.warm)
        r = subprocess.run([sys.executable, "-c", CHILD, json.dumps(kw)], capture_output=True, text=True)
        if r.returncode: raise SystemExit(r.stderr[-3000:])
        rows[f"batch{b}"] = dict(json.loads(r.stdout.split("RESULT", 1)[1]), batch=b); print(b, rows[f"batch{b}"], flush=True)
        load.append(round(os.getloadavg()[0], 2))
    first = next(iter(rows.values()))
    info = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "threads": first["threads"], "variant": a.variant,
            "crop": a.crop, "repeats": a.repeats, "warmup_iters": a.warm, "encoder_params": first["encoder_params"],
            "decoder_params": first["decoder_params"], "loadavg_1min": load, "date": time.strftime("%Y-%m-%d")}
    (HERE/"daformer_cpu.json").write_text(json.dumps({"info": info, "runs": rows}, indent=2) + "\n")
    cmd = " ".join([f"OMP_NUM_THREADS={info['OMP_NUM_THREADS']}" if info["OMP_NUM_THREADS"] else "", "python reports/bench/daformer_bench.py"] + sys.argv[1:]).strip()
    lines = [f"# DAFormer benchmark (cpu)", "",
             f"`{cmd}` — {info['cpus']} CPUs, torch threads {info['threads']}, Python {info['python']}, "
             f"MiT-{a.variant.upper()} at {a.crop}×{a.crop}, {a.warm} warm-up + {a.repeats} timed iterations per batch size; medians.", "",
             "| batch | s/iter (median, wall) | runs (wall) | s/image | CPU s/iter (median) | warm-up (wall) | peak RSS (MiB) |", "|---|---|---|---|---|---|---|"]
    for r in rows.values():
        lines.append(f"| {r['batch']} | {r['sec_per_iter']:.2f} | {', '.join(map(str, r['runs']))} | {r['sec_per_iter'] / r['batch']:.2f} | {r['cpu_sec_per_iter']:.2f} | "
                     f"{', '.join(map(str, r['warmup']))} | {r['peak_rss_mb']:.0f} |")
    lines += ["", f"Parameters: encoder (MiT-{a.variant.upper()}) {info['encoder_params']:,}, decoder {info['decoder_params']:,}, "
              f"total {info['encoder_params'] + info['decoder_params']:,}.", "",
              f"Machine load (1-min load average before and after each batch size): {', '.join(map(str, load))} on {info['cpus']} CPUs. "
              "The machine is shared: wall time above the process's CPU time is time spent waiting for a core; "
              "read the CPU-time column as the cost on an idle core.", "",
              "One iteration = forward + cross-entropy on the logits upsampled to the crop + backward + AdamW step (random init, "
              "BatchNorm and stochastic depth in training mode). DAFormer's setting (batch 2 source + 2 target, mixed, with an EMA "
              "teacher forward) is GPU work; this table says what one student step costs on a CPU."]
    (HERE/"daformer_cpu.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))

if __name__ == "__main__": main()
