#!/usr/bin/env bash
# Regenerate every committed MiniCity result from scratch:
#   3 seeds x {source_only, source_only-geo (geometric-only policy), oracle, self_training, bcl, bcl-t70 (the paper's T),
#   dacs, cluda, sdca, clst, adabn (the target-BatchNorm control) and its notbn / recompute variants, ucda},
#   the ablations (seed 0), then the report. MiniCity v2; numbers on target test with val beside.
# Run from anywhere:  bash reports/minicity/regenerate.sh        (JOBS=2 runs two trainings at a time, one thread each)
# Finished runs (metrics.json present) are kept and interrupted ones resume from their checkpoint, so an
# interrupted regeneration continues; `rm -rf reports/runs/minicity` first to start from nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v papermill >/dev/null || { echo "papermill not found: install the kit first (see README.md) and activate its venv"; exit 1; }
export RUNS=reports/runs NB=reports/runs/_notebooks
mkdir -p "$NB"
JOBS=${JOBS:-1}
if [ "$JOBS" -gt 1 ]; then export OMP_NUM_THREADS=1; fi

run() {  # run <method> <seed> [tag] [augmentation policy] [method_params yaml] [threads]
  local method=$1 seed=$2 tag=${3:-} aug=${4:-photometric} mp=${5:-} threads=${6:-}
  [ -n "$mp" ] && [ "$mp" != "-" ] || mp="{}"
  [ "$tag" != "-" ] || tag=""
  [ "$aug" != "-" ] || aug=photometric
  local name=$method${tag:+-$tag}
  if [ -f "$RUNS/minicity/$name/seed$seed/metrics.json" ]; then echo "finished already: $name seed $seed"; return 0; fi
  ${threads:+env OMP_NUM_THREADS=$threads} papermill nbs/train.ipynb "$NB/${name}_seed${seed}.ipynb" -p method "$method" -p seed "$seed" -p tag "$tag" \
    -y "method_params: $mp" -p aug "$aug" -p out_dir "$RUNS" --cwd . >/dev/null 2>"$NB/${name}_seed${seed}.log" \
    || { echo "FAILED: $name seed $seed (see $NB/${name}_seed${seed}.log)"; return 1; }
  echo "done: $name seed $seed"
}
runline() { local m s t a th mp; read -r m s t a th mp <<< "$1"; [ "$th" != "-" ] || th=""; run "$m" "$s" "$t" "$a" "$mp" "$th"; }
runcfg() {  # runcfg "<method> <seed> <tag> <yaml of other train.ipynb parameters>", e.g. a network: {model: hrda, ...}
  local m s t y; read -r m s t y <<< "$1"
  local name=$m-$t
  if [ -f "$RUNS/minicity/$name/seed$s/metrics.json" ]; then echo "finished already: $name seed $s"; return 0; fi
  papermill nbs/train.ipynb "$NB/${name}_seed${s}.ipynb" -p method "$m" -p seed "$s" -p tag "$t" -y "$y" -p out_dir "$RUNS" --cwd . \
    >/dev/null 2>"$NB/${name}_seed${s}.log" || { echo "FAILED: $name seed $s (see $NB/${name}_seed${s}.log)"; return 1; }
  echo "done: $name seed $s"
}
export -f run runline runcfg

# stage 1: the source-only models every adapting method starts from; stage 2: the adapting methods (each starts
# from the source-only run of its seed), the oracle and the geometric-only source-only; stage 3: ablations on seed 0
# (names match cda_nb.report.ABLATION; the rows marked † there were run with labels on running BatchNorm statistics,
# which their lines below request explicitly: label_bn / teacher_bn: eval). Columns: method seed tag policy threads method_params ("-" = default).
printf '%s\n' "source_only 0" "source_only 1" "source_only 2" "oracle 0" |
  xargs -P "$JOBS" -I{} bash -c 'runline "$1"' _ {}
printf '%s\n' "dacs 0" "self_training 0" "bcl 0" "dacs 1" "self_training 1" "bcl 1" "dacs 2" "self_training 2" "bcl 2" \
  "sdca 0" "clst 0" "sdca 1" "clst 1" "sdca 2" "clst 2" \
  "adabn 0" "adabn 1" "adabn 2" "adabn 0 notbn - - {target_bn: false}" "adabn 1 notbn - - {target_bn: false}" \
  "adabn 2 notbn - - {target_bn: false}" "adabn 0 recompute - - {recompute: true}" "adabn 1 recompute - - {recompute: true}" \
  "adabn 2 recompute - - {recompute: true}" \
  "ucda 0" "ucda 1" "ucda 2" "cluda 0" "cluda 1" "cluda 2" \
  "bcl 0 t70 - - {threshold: 0.7, label_bn: eval}" "bcl 1 t70 - - {threshold: 0.7, label_bn: eval}" "bcl 2 t70 - - {threshold: 0.7, label_bn: eval}" \
  "oracle 1" "oracle 2" "source_only 0 geo geometric" "source_only 1 geo geometric" "source_only 2 geo geometric" |
  xargs -P "$JOBS" -I{} bash -c 'runline "$1"' _ {}
printf '%s\n' "bcl 0 decoder - - {feat: decoder, threshold: 0.7, label_bn: eval}" "bcl 0 pooled - - {pairwise: false, threshold: 0.7, label_bn: eval}" \
  "bcl 0 fcl - - {lambda_bc: 0.0, dynamic: false, label_bn: eval}" "bcl 0 dyn_nocal - - {calibrate: false, threshold: 0.7, label_bn: eval}" "dacs 0 nomix - - {mix: false}" \
  "bcl 0 fcl_bcl - - {dynamic: false, label_bn: eval}" "bcl 1 fcl_bcl - - {dynamic: false, label_bn: eval}" "bcl 2 fcl_bcl - - {dynamic: false, label_bn: eval}" \
  "bcl 0 t80 - - {threshold: 0.8, label_bn: eval}" "bcl 0 t95 - - {threshold: 0.95}" "bcl 0 t98 - - {threshold: 0.98}" "dacs 0 a99 - - {alpha: 0.99}" "self_training 0 thr2 - 2" \
  "sdca 0 tau3 - - {tau: 3.0}" "sdca 0 tau10 - - {tau: 10.0}" "sdca 1 tau10 - - {tau: 10.0}" "sdca 2 tau10 - - {tau: 10.0}" \
  "sdca 0 official - - {form: official, tau: 100.0}" "sdca 0 lovasz - - {lambda_feat: 0.0, lambda_out: 0.0}" "sdca 0 ssl - - {ssl_iters: 170}" \
  "self_training 0 noent - - {lambda_ent_s: 0.0, lambda_ent_t: 0.0, label_bn: eval}" "self_training 1 noent - - {lambda_ent_s: 0.0, lambda_ent_t: 0.0, label_bn: eval}" \
  "self_training 0 lbneval - - {label_bn: eval}" \
  "cluda 0 nogamma - - {gamma: false}" "cluda 0 allpairs - - {pairs: all}" "cluda 0 stuff - - {pairs: stuff}" "cluda 0 tau01 - - {tau: 0.1}" \
  "dacs 0 tbneval - - {teacher_bn: eval}" \
  "ucda 0 noexp - - {expansion: false, teacher_bn: eval}" "ucda 0 nocl - - {in_domain: false, cross_domain: false, teacher_bn: eval}" \
  "ucda 0 nocross - - {cross_domain: false, teacher_bn: eval}" \
  "bcl 0 static_fcl - - {lambda_bc: 0.0, dynamic: false}" "bcl 1 static_fcl - - {lambda_bc: 0.0, dynamic: false}" "bcl 2 static_fcl - - {lambda_bc: 0.0, dynamic: false}" \
  "bcl 0 static_fcl_bcl - - {dynamic: false}" "bcl 1 static_fcl_bcl - - {dynamic: false}" "bcl 2 static_fcl_bcl - - {dynamic: false}" \
  "bcl 0 static_fcl_dec - - {lambda_bc: 0.0, dynamic: false, feat: decoder}" \
  "self_training 0 p40 - - {cbst_p: 0.4}" "self_training 0 p60 - - {cbst_p: 0.6}" "self_training 1 p60 - - {cbst_p: 0.6}" \
  "self_training 2 p60 - - {cbst_p: 0.6}" "bcl 0 p60 - - {cbst_p: 0.6}" "bcl 0 static_fcl_p60 - - {lambda_bc: 0.0, dynamic: false, cbst_p: 0.6}" \
  "self_training 1 lbneval - - {label_bn: eval}" "self_training 2 lbneval - - {label_bn: eval}" \
  "bcl 0 lbneval - - {label_bn: eval}" "bcl 1 lbneval - - {label_bn: eval}" "bcl 2 lbneval - - {label_bn: eval}" \
  "bcl 0 static_fcl_lbneval - - {lambda_bc: 0.0, dynamic: false, label_bn: eval}" "bcl 0 distill200 - - {distill_iters: 200}" |
  xargs -P "$JOBS" -I{} bash -c 'runline "$1"' _ {}
# stage 4: the multi-resolution (HRDA) option on seed 0: the small network inside model hrda (context at 0.5, 64x64
# detail crops of the 128x128 training crops): its own source-only model first, then dacs and cluda (eq. 7) from it
HR="model: hrda, model_kwargs: {base: small, crop: [64, 64]}"
runcfg "source_only 0 hrda {$HR}"
printf '%s\n' "dacs 0 hrda {$HR, init: $RUNS/minicity/source_only-hrda/seed0/checkpoint.pt}" \
  "cluda 0 hrda {$HR, init: $RUNS/minicity/source_only-hrda/seed0/checkpoint.pt}" |
  xargs -P "$JOBS" -I{} bash -c 'runcfg "$1"' _ {}

# stage 5: bcl's official representation on a matching head: the small network with DeepLab-V2's branched classifier
# (four 3x3 convs at dilations 2, 4, 6, 8, summed; bcl contrasts their 76-d concatenation), 3 seeds of its own
# source-only model, then L_base (self_training) and bcl from it
AS="model_kwargs: {aspp_rates: [2, 4, 6, 8]}"
printf '%s\n' "source_only 0 aspp {$AS}" "source_only 1 aspp {$AS}" "source_only 2 aspp {$AS}" |
  xargs -P "$JOBS" -I{} bash -c 'runcfg "$1"' _ {}
for s in 0 1 2; do for m in self_training bcl; do echo "$m $s aspp {$AS, init: $RUNS/minicity/source_only-aspp/seed$s/checkpoint.pt}"; done
  echo "bcl $s aspp_t70 {$AS, init: $RUNS/minicity/source_only-aspp/seed$s/checkpoint.pt, method_params: {threshold: 0.7}}"; done |
  xargs -P "$JOBS" -I{} bash -c 'runcfg "$1"' _ {}

papermill nbs/report.ipynb "$NB/report.ipynb" -p dataset minicity -p runs_dir "$RUNS" -p report_dir reports --cwd . \
  -y "notes: $(python -c 'import json,pathlib; p=pathlib.Path("reports/minicity/NOTES.md"); print(json.dumps(p.read_text() if p.exists() else ""))')"
echo "report: reports/minicity/README.md"
