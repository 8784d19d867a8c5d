#!/usr/bin/env bash
# Retrieval figures of ADSL (a benchmark, not a test; issue: densa index / densa search):
# Recall@1/2/4/8 and NMI on the test patches of the real multi-organ CTs
# (data/models/adsl-organs.yaml, ../shared/data/totalseg_abdomen_ct) for
#   ADSL (K starts at 1, plateau-driven splits) vs one learner (K = 1, no splits) vs
#   DCML with fixed K = 4 vs the untrained network's pooled features vs raw pixels, and ADSL
#   started from our self-supervised pretraining on CT slices (body tiles as their own classes)
#   vs from scratch,
# all trained and scored in one run of this script, then index size / search time on those CTs.
# Usage: tests/bench/adsl_retrieval.sh DENSA_EXE WORK_DIR
# Scale with EPOCHS (default 100; fine-tune over the last sixth, as the reference's 250/300),
# PATIENCE (default 10, the reference), THREADS.
set -euo pipefail
DENSA=$(realpath "$1")
W=$(realpath -m "$2")
HERE=$(cd "$(dirname "$0")" && pwd)
CONFIG="$HERE/../../data/models/adsl-organs.yaml"
EPOCHS=${EPOCHS:-100} PATIENCE=${PATIENCE:-10} THREADS=${THREADS:-2} SSL_EPOCHS=${SSL_EPOCHS:-60}
FT=$((EPOCHS * 5 / 6))
export OMP_WAIT_POLICY=PASSIVE
mkdir -p "$W"
common=(--set "epochs=$EPOCHS" --set "finetune_epoch=$FT" --set "patience=$PATIENCE"
        --set "threads=$THREADS" --set "cache_dir=$W/cache")
run() { # name, extra --set arguments; a run whose test split is scored already is kept
  local name=$1; shift
  if python3 -c "import json,sys; sys.exit(0 if 'embedding' in json.load(open('$W/$name/retrieval.json')).get('test', {}) else 1)" 2>/dev/null; then
    return
  fi
  /usr/bin/time -f "$name: %e s, %M KB peak" "$DENSA" train adsl --config "$CONFIG" -o "$W/$name" \
    "${common[@]}" "$@" > "$W/$name.log" 2>&1
  tail -1 "$W/$name.log"
}
run adsl --set dynamic=true --set learners=1
run single --set dynamic=false --set learners=1
run dcml4 --set dynamic=false --set learners=4
run ssl --set self_supervised=true --set dynamic=false --set learners=1 \
  --set "epochs=$SSL_EPOCHS" --set "finetune_epoch=$SSL_EPOCHS"
run adsl_ssl --set dynamic=true --set learners=1 --set "init_from=$W/ssl/best.densa"

python3 - "$W" <<'PY'
import json, sys
w = sys.argv[1]
def row(name, j):
    return f"| {name} | {j['nmi']:.3f} | " + " | ".join(f"{j['recall_at_'+str(k)]:.3f}" for k in (1, 2, 4, 8)) + " |"
print("\nTest patches (never used for training or model selection):\n")
print("| features | NMI | R@1 | R@2 | R@4 | R@8 |\n|---|---|---|---|---|---|")
adsl = json.load(open(f"{w}/adsl/retrieval.json"))
print(row("raw pixels (64², windowed)", adsl["test"]["raw_pixels"]))
print(row("untrained network, pooled", adsl["test"]["untrained_pooled"]))
for name, label in (("single", "one learner (K=1, no splits)"), ("dcml4", "DCML, fixed K=4"),
                    ("adsl", "ADSL (dynamic K)"), ("ssl", "self-supervised tiles only (no labels)"),
                    ("adsl_ssl", "ADSL from the self-supervised backbone")):
    j = json.load(open(f"{w}/{name}/retrieval.json"))
    print(row(f"{label}, embedding; K={j['best_learners']} at epoch {j['best_epoch']}", j["test"]["embedding"]))
    print(row(f"{label}, pooled 1024/256-d", j["test"]["pooled"]))
PY

# Index and search on the two real CTs with the ADSL model.
rm -rf "$W/index"
DATA="$HERE/../../../shared/data/totalseg_abdomen_ct"
/usr/bin/time -f "index add (2 CTs): %e s" "$DENSA" index add "$DATA/dicom_uncompressed" --model "$W/adsl/best.densa" --index "$W/index" | tail -1
/usr/bin/time -f "index add: %e s" "$DENSA" index add "$DATA/nifti/example_ct_sm.nii.gz" --model "$W/adsl/best.densa" --index "$W/index" | tail -1
/usr/bin/time -f "search (case query, incl. model load and embedding): %e s" "$DENSA" search "$DATA/nifti/example_ct.nii.gz" --index "$W/index" -k 2 -o "$W/search"
