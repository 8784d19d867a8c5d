#!/usr/bin/env bash
# Evidence that GEMINI pretraining helps (a benchmark, not a test; issue: densa pretrain):
#   1. fine-tuning gemini-unet from a GEMINI backbone vs from scratch with 1, 2 and 5 labelled
#      phantoms, the same number of steps, liver and tumour Dice on held-out phantoms;
#   2. label propagation by `densa register` phantom -> phantom: liver Dice before (identity in
#      physical space) and after, with the pretrained deformer and with an untrained one.
# Usage: tests/bench/gemini_transfer.sh DENSA_EXE WORK_DIR
# Scale with PRESET, CROP, SPACING, SIZE, SLICES, PRE_STEPS, FT_STEPS (defaults fit a 2-core CPU
# in about half an hour; the published protocol runs 2×10⁵ pretraining iterations on a GPU).
set -euo pipefail
DENSA=$(realpath "$1")
W=$(realpath -m "$2")
PRESET=${PRESET:-tiny} CROP=${CROP:-32} SPACING=${SPACING:-4} SIZE=${SIZE:-128} SLICES=${SLICES:-40}
PRE_STEPS=${PRE_STEPS:-400} FT_STEPS=${FT_STEPS:-150}
export OMP_WAIT_POLICY=PASSIVE
mkdir -p "$W"
cd "$W"
ph() { [ -d "$1" ] || "$DENSA" phantom -o "$1" --cases "$2" --seed "$3" --size "$SIZE" --slices "$SLICES" >/dev/null; }
ph unlabelled 8 101
ph labelled 5 202
ph test 4 303

cat > pre.yaml <<YAML
datasets: [{path: $W/unlabelled}]
preset: $PRESET
crop_size: $CROP
spacing_mm: $SPACING
steps: $PRE_STEPS
log_every: 50
checkpoint_every: $PRE_STEPS
seed: 1
YAML
[ -f gemini/last.densa ] || "$DENSA" pretrain gemini --config pre.yaml -o gemini 2>/dev/null | tail -2

flatten() { # $1: a folder of <case>/label.nii.gz, $2: a flat folder of <phantom>.nii.gz
  # (densa segment names a DICOM case <folder>_dicom_<series>: keep the phantom's folder name).
  mkdir -p "$2"
  for d in "$1"/*/; do
    local id; id=$(basename "$d"); id=${id%%_dicom*}
    [ -f "$d/label.nii.gz" ] && cp "$d/label.nii.gz" "$2/$id.nii.gz"
  done
}
flatten test truth

printf '\n%-9s %-8s %12s %12s\n' labelled init liver_dice tumour_dice | tee results.txt
for n in 1 2 5; do
  mkdir -p "lab$n"
  for d in $(ls -d labelled/*/ | head -n "$n"); do ln -sfn "$W/$d" "lab$n/$(basename "$d")"; done
  for init in scratch gemini; do
    run="ft-$init-$n"
    extra=""
    [ "$init" = gemini ] && extra="init_from: $W/gemini/last.densa"
    cat > "$run.yaml" <<YAML
datasets: [{path: $W/lab$n}]
architecture: gemini-unet
preset: $PRESET
spacing_mm: $SPACING
steps: $FT_STEPS
batch_size: 2
crop_size: $CROP
folds: 1
learning_rate: 0.001
validate_every: $FT_STEPS
checkpoint_every: $FT_STEPS
log_every: 50
rotation_degrees: 10
$extra
YAML
    [ -f "$run/best.densa" ] || "$DENSA" train --config "$run.yaml" -o "$run" >/dev/null 2>&1
    rm -rf "seg-$run" "pred-$run" "eval-$run"
    "$DENSA" segment -i test -o "seg-$run" --model "$run/best.densa" --no-seg >/dev/null 2>&1 || true
    flatten "seg-$run" "pred-$run"
    "$DENSA" evaluate "pred-$run" truth -o "eval-$run" >/dev/null 2>&1
    python3 - "$n" "$init" "eval-$run/summary.json" <<'PY' | tee -a results.txt
import json, sys
s = json.load(open(sys.argv[3]))
print(f"{sys.argv[1]:<9} {sys.argv[2]:<8} {s['liver']['dice_per_case']:12.3f} {s['lesion']['dice_per_case']:12.3f}")
PY
  done
done

# Registration: test phantom 0 -> 1, 2 -> 3 with the pretrained and an untrained deformer.
[ -f untrained.densa ] || "$DENSA" model create gemini --preset "$PRESET" -o untrained.densa >/dev/null
printf '\n%-10s %-10s %8s %8s %10s\n' pair deformer before after folding% | tee -a results.txt
cases=(test/*/)
for p in "0 1" "2 3"; do
  set -- $p
  for model in gemini/last.densa untrained.densa; do
    out="reg-$1-$2-$(basename "$(dirname "$model")")"
    "$DENSA" register "${cases[$1]}dicom" "${cases[$2]}dicom" -o "$out" --model "$model" \
      --labels "${cases[$1]}label.nii.gz" --fixed-labels "${cases[$2]}label.nii.gz" >/dev/null 2>&1 || continue
    python3 - "$1->$2" "$model" "$out/report.json" <<'PY' | tee -a results.txt
import json, sys
r = json.load(open(sys.argv[3]))
print(f"{sys.argv[1]:<10} {('pretrained' if 'gemini' in sys.argv[2] else 'untrained'):<10} {r['liver_dice']['before']:8.3f} {r['liver_dice']['after']:8.3f} {r['jacobian']['folding_percent']:10.2f}")
PY
  done
done
echo "results: $W/results.txt"
