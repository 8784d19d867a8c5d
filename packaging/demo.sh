#!/usr/bin/env bash
# The demo behind `make demo`: generate a synthetic abdominal CT as a real DICOM series, then run
# Densa's I/O path on it (`densa info`, `densa convert`). Usage: packaging/demo.sh DENSA OUT_DIR
# (The segmentation demo replaces this once the default model exists.)
set -euo pipefail
densa=$1
out=$2
rm -rf "$out"
mkdir -p "$out"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "densa --version"
"$densa" --version

step "Generate a synthetic CT phantom (DICOM series + label map)"
"$densa" phantom -o "$out" --cases 1 --seed 7 --size 256 --slices 40

step "densa info on the DICOM folder"
"$densa" info "$out/synthetic_phantom_000/dicom"

step "densa convert DICOM -> NIfTI"
"$densa" convert "$out/synthetic_phantom_000/dicom" "$out/ct.nii.gz"

step "densa info on the NIfTI (same geometry as the DICOM series)"
"$densa" info "$out/ct.nii.gz"

if [ -d ../shared/data/totalseg_abdomen_ct/dicom_j2k ]; then
  step "Real CT found in ../shared/data: densa info on the JPEG 2000 series"
  "$densa" info ../shared/data/totalseg_abdomen_ct/dicom_j2k
fi

step "Done. Outputs in $out/"
ls -l "$out" "$out/synthetic_phantom_000"
