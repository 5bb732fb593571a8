#!/usr/bin/env bash
# Fill a grid (the quick profile by default) on a lent GPU within a deadline, then pack its cells.
#
# The device machine has PyTorch, NumPy, SciPy, numba, scikit-learn, matplotlib and tqdm but not
# rapidfuzz (Levenshtein cells), and ../shared/data does not travel. Before the call, here
# (.gpu/ is git-ignored; the call carries it):
#   mkdir -p .gpu/data .gpu/whl && cp ../shared/data/*.txt .gpu/data/
#   git rev-parse HEAD > .gpu/commit   (cells record it: .git does not travel)
#   mkdir -p .gpu/cache/similarity && cp ~/.cache/rclrec/similarity/ngram-* .gpu/cache/similarity/
#   .venv/bin/pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 -d .gpu/whl rapidfuzz==3.14.6
# The call (device tool): command "bash benchmarks/gpu_grid.sh 540", carry [".gpu"], timeout_s 600.
# Seen on 2026-11-27 (H100, 15 minutes of device time): the machine started in about 35 s;
# WORKERS=5 THREADS=3 with a 480 s budget trained 10 quick cells, a second 285 s call 6 more.
# Back here: bash benchmarks/gpu_grid.sh --merge <files_at>   (the folder holding <profile>.tgz)
# The paper's protocol without the search, e.g. Table 2 on Beauty (not yet run on a GPU):
#   PROFILE=full GRID_ARGS="--budget 1 --seeds 1" SUITES="table2:beauty" bash benchmarks/gpu_grid.sh 540
#
# Order: a smoke run of every method on the GPU first (catches device bugs in seconds; a failure
# ends the call), epoch timing alone, then WORKERS processes fill the quick cells still missing,
# most wanted first. A cell unfinished at the deadline is lost (its checkpoint stays on the
# machine); finished cells come back in $OUT/<profile>.tgz, re-packed every 30 s.
set -uo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--merge" ]; then
    for archive in "$2"/*.tgz; do
        profile=$(basename "$archive" .tgz)
        tmp=$(mktemp -d)
        tar -xzf "$archive" -C "$tmp"
        # Cells, searches, analyses and dataset records never change once written: copy what
        # is new, then rebuild every manifest from the cells that are here.
        for sub in cells searches analysis datasets; do
            [ -d "$tmp/$profile/$sub" ] && mkdir -p "results/$profile/$sub" \
                && cp -rn "$tmp/$profile/$sub/." "results/$profile/$sub/"
        done
        for suite in table2 table3 ablation alpha analysis; do
            .venv/bin/python -m rclrec benchmark --profile "$profile" --no-train --suite "$suite" \
                2>&1 | tail -1
        done
        rm -rf "$tmp"
        echo "merged $profile; rebuild the report: .venv/bin/python -m rclrec report" \
             "--results results/$profile --out docs/REPORT.md (quick) or docs/REPORT-$profile.md"
    done
    mkdir -p benchmarks/.work/logs && cp "$2"/*.log benchmarks/.work/logs/ 2>/dev/null
    cp "$2"/*.json benchmarks/results/ 2>/dev/null  # epoch timing on the device
    exit 0
fi

budget=${1:-540}
profile=${PROFILE:-quick}  # full: the paper's 200 epochs / patience 10 (GRID_ARGS="--budget 1 --seeds 1" fits it)
workers=${WORKERS:-4}  # one small model leaves an H100 mostly idle: several grid processes share it
end=$(( $(date +%s) + budget - 20 ))  # 20 s to pack
out=${OUT:-/tmp/gpu_grid_out}
mkdir -p "$out"
log="$out/gpu_grid.log"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 RCLREC_DATA=$PWD/.gpu/data RCLREC_CACHE=/tmp/rclrec-cache
# Similarity indexes built here travel in .gpu/cache (a CPU-bound minute or more each there).
mkdir -p /tmp/rclrec-cache && cp -r .gpu/cache/. /tmp/rclrec-cache/ 2>/dev/null
export RCLREC_GIT_COMMIT=${RCLREC_GIT_COMMIT:-$(cat .gpu/commit 2>/dev/null)}
if ls .gpu/whl/*.whl > /dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .gpu/whl/*.whl \
        && export PYTHONPATH=$PYTHONPATH:/tmp/site
fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader >> "$log" 2>&1

pack() {  # finished cells so far, replaced atomically: a call cut at its limit still returns them
    mkdir -p "results/$profile"
    tar -czf "$out/.$profile.tgz" -C results "$profile" && mv "$out/.$profile.tgz" "$out/$profile.tgz"
}

step() {  # one benchmark command, cut at the deadline; a failure does not stop the others
    local left=$(( end - $(date +%s) ))
    [ "$left" -gt 30 ] || return 0
    echo "== $(date +%T) ($left s left) $*" >> "$log"
    timeout "$left" python3 -m rclrec benchmark --device "${DEVICE:-cuda}" \
        --threads "${THREADS:-3}" "$@" || echo "== exit $? : $*"
}

# Device bugs first, alone: a smoke run of every method; any failure ends the call at once, so
# the device time left can go to a fixed rerun.
[ "${SMOKE:-1}" = 0 ] || step --profile smoke --suite all --results /tmp/smoke --work /tmp/smoke-work >> "$log" 2>&1
if grep -q "failed\|== exit" "$log"; then echo "smoke failed on the device: stopping" >> "$log"; exit 1; fi
# Seconds per epoch on the GPU, measured alone (the grid below shares the GPU between processes).
[ "${TIMING_STEPS:-40}" = 0 ] || timeout 120 python3 benchmarks/epoch_timing.py --device "${DEVICE:-cuda}" --dataset beauty \
    --methods sasrec rcl --steps "${TIMING_STEPS:-40}" --threads 4 --out "$out" --name epoch_timing_beauty_gpu \
    >> "$log" 2>&1 || echo "== epoch timing failed" >> "$log"

grid() {
    # shellcheck disable=SC2086  # GRID_ARGS is a list of options
    local q=(--profile "$profile" ${GRID_ARGS:-})
    for suite in ${SUITES:-table2:yelp table3:yelp table2:sports}; do
        step "${q[@]}" --suite "${suite%:*}" --datasets "${suite#*:}"
    done
    [ "$profile" = quick ] || return 0
    step "${q[@]}" --suite table2 --datasets beauty --seeds 3
    step "${q[@]}" --suite table3 --datasets yelp --seeds 3
}
for w in $(seq "$workers"); do
    grid > "$out/worker$w.log" 2>&1 &
    sleep 5  # the per-cell lock hands each process a different cell
done
while [ -n "$(jobs -r)" ] && [ "$(date +%s)" -lt "$end" ]; do sleep 30; pack; done
wait
pack
echo "packed $(tar -tzf "$out/$profile.tgz" | grep -c cell.json) cells into $out/$profile.tgz" >> "$log"
