#!/usr/bin/env bash
# The demo behind `make demo`: generate a synthetic abdominal CT as a real DICOM series, segment it
# with the bundled default model, and score the result against the phantom's exact labels.
# Usage: packaging/demo.sh DENSA OUT_DIR
set -euo pipefail
densa=$1
out=$2
rm -rf "$out"
mkdir -p "$out"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "densa --version"
"$densa" --version

step "1. A synthetic CT phantom (512 x 512 x 40, DICOM series + exact label map, marked SYNTHETIC)"
"$densa" phantom -o "$out" --cases 1 --seed 7 --slices 40

step "2. densa info on the DICOM folder"
"$densa" info "$out/synthetic_phantom_000/dicom"

step "3. densa segment with the bundled default model"
"$densa" segment -i "$out/synthetic_phantom_000/dicom" -o "$out/segmentation" --preview
case_dir=$(dirname "$(ls "$out"/segmentation/*/report.json | head -n 1)")

step "4. Report summary ($case_dir/report.json)"
python3 - "$case_dir/report.json" <<'PY' 2>/dev/null || grep -E '"(liver_volume_ml|tumour_volume_ml|tumour_burden_percent|lesion_count)"' "$case_dir/report.json"
import json, sys
r = json.load(open(sys.argv[1]))
print(f"liver volume  {r['liver_volume_ml']:.1f} mL")
print(f"tumour volume {r['tumour_volume_ml']:.1f} mL  (burden {r['tumour_burden_percent']:.2f} %)")
print(f"lesions       {r['lesion_count']}")
for l in r["lesions"][:5]:
    x, y, z = l["centroid_lps_mm"]
    print(f"  #{l['id']}: {l['volume_ml']:.2f} mL, longest axial diameter {l['longest_axial_diameter_mm']:.1f} mm, "
          f"centroid ({x:.1f}, {y:.1f}, {z:.1f}) mm LPS")
print(f"model         {r['model']['id']}  ({r['model']['training_stage']} stage)")
print(f"time          {r['timings_s']['total']:.1f} s")
PY

step "5. Dice against the phantom's exact labels (densa evaluate, LiTS metrics)"
"$densa" evaluate "$case_dir/label.nii.gz" "$out/synthetic_phantom_000/label.nii.gz" -o "$out/evaluation"

step "Outputs"
echo "label map (NIfTI): $case_dir/label.nii.gz"
echo "DICOM SEG:         $case_dir/seg.dcm"
echo "report (JSON):     $case_dir/report.json"
echo "preview (PNG):     $case_dir/preview.png"
echo "cohort table:      $out/segmentation/cohort.csv"
echo "evaluation:        $out/evaluation/summary.json"
