#!/usr/bin/env bash
# Regenerates the checkpoint seeds of the fuzz corpus from a minimal real run (a few KB of
# weights, so the seeds stay small). The config and dictionary seeds are written by hand.
#   fuzz/make_seeds.sh [TRAINER]
set -euo pipefail
cd "$(dirname "$0")/.."
trainer=${1:-build/trainer}
d=$(mktemp -d)
"$trainer" --config configs/tiny.json --run-dir "$d" --d-model 8 --heads 1 --ff-dim 8 --encoder-layers 1 \
  --decoder-layers 1 --max-train-words 40 --batch-size 8 --max-eval-words 10 --epochs 1 --save-every-steps 2 >/dev/null
# Mode byte 0: checked like the trainer does; 1: checksum skipped.
for f in "$d"/checkpoints/step-*.pt; do
  n=$(basename "$f" .pt)
  { printf '\x00'; cat "$f"; } > fuzz/corpus/checkpoint/$n-checked
  { printf '\x01'; cat "$f"; } > fuzz/corpus/checkpoint/$n-unchecked
done
rm -rf "$d"
ls -la fuzz/corpus/checkpoint
