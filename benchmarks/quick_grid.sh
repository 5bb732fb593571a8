#!/usr/bin/env bash
# The quick-profile grid behind docs/REPORT-quick.md, in priority order, on a 2-core CPU.
# Run it in two shells (or on two machines sharing results/quick): the per-cell lock hands each
# cell to one process, finished cells are reused, so a killed grid resumes where it stopped.
#   bash benchmarks/quick_grid.sh            # each process trains with 1 thread
# Costly cells come last: CT4Rec (2.2x a SASRec epoch) and FMLP-Rec + HPM (about 3.5x, as
# FMLP-Rec trains on every prefix: 514 steps per Beauty epoch instead of 88).
# On a lent GPU, PROFILE=quick benchmarks/gpu_grid.sh fills the same grid within the device time.
set -euo pipefail
cd "$(dirname "$0")/.."
run() { .venv/bin/python -m rclrec benchmark --profile quick --threads "${THREADS:-1}" "$@"; }
run --suite table2 --datasets beauty --methods sasrec cl4srec duorec mclrec contrarec hpm rcl
run --suite table2 --datasets beauty --methods sasrec rcl --seeds 3
run --suite analysis
run --suite table3 --datasets beauty --methods sasrec rcl
run --suite table3 --datasets beauty --methods sasrec rcl --seeds 3
run --suite table2 --datasets beauty
run --suite ablation
run --suite table3 --datasets beauty
run --suite alpha
run --suite table2 --datasets yelp
