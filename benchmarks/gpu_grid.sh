#!/usr/bin/env bash
# Fill a grid (the paper profile by default) on a lent GPU within a deadline, then pack its cells.
#
# The device machine has PyTorch, NumPy, SciPy, numba, scikit-learn, matplotlib and tqdm but not
# rapidfuzz (Levenshtein cells), and ../shared/data does not travel. Before the call, here
# (.gpu/ is git-ignored; the call carries it):
#   mkdir -p .gpu/data .gpu/whl && cp ../shared/data/*.txt .gpu/data/ && cp -r ../shared/data/ml-100k .gpu/data/
#   git rev-parse HEAD > .gpu/commit   (cells record it: .git does not travel)
#   mkdir -p .gpu/cache/similarity && cp ~/.cache/rclrec/similarity/ngram-* .gpu/cache/similarity/
#   .venv/bin/pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 -d .gpu/whl rapidfuzz==3.14.6
# The call (device tool): command "bash benchmarks/gpu_grid.sh 540", carry [".gpu"], timeout_s 600.
# Back here: bash benchmarks/gpu_grid.sh --merge <files_at>   (the folder holding <profile>.tgz);
# it also keeps the unfinished cells' checkpoints in .gpu/resume/<cell>.tgz for the next call,
# which resumes them. results/paper/NOTES.md: the command, the order, the cost estimate and
# the timings seen on earlier calls.
# The quick profile instead: PROFILE=quick bash benchmarks/gpu_grid.sh 540.
#
# Order: a smoke run of every method on the GPU first (catches device bugs in seconds; a failure
# ends the call), epoch timing alone, then WORKERS processes fill the cells still missing, most
# wanted first (SUITES, "suite:dataset" items). A cell unfinished at the deadline keeps its last
# epoch's checkpoint: up to RESUME_FILES (default: WORKERS, at least 3) of them, most epochs
# first, come back as resume-<n>.tgz (16 MiB a file), then the marker resume-done.txt lists
# them. --merge changes .gpu/resume only where that marker came back (a call cut at the device
# limit, or ended by a failed smoke run, returns none) and then replaces only the cells whose
# checkpoints came back; a cell finished in results/ drops its checkpoint either way.
# Finished cells come back in $OUT/<profile>.tgz, re-packed every 30 s; logs in $OUT/logs.tgz.
#
# A trial of the whole path on a CPU, in minutes (tests/grid/test_gpu_grid.py runs it):
#   DEVICE=cpu SMOKE=0 TIMING_STEPS=0 PYTHON=.venv/bin/python RESULTS=/tmp/g/paper OUT=/tmp/g/out \
#   WORK=/tmp/g/work GRID_ARGS="--epochs 1 --max-steps 2 --budget 2 --seeds 2" \
#   SUITES="table2:lastfm controls:lastfm" bash benchmarks/gpu_grid.sh 600
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv/bin/python ]; then PYTHON=${PYTHON:-.venv/bin/python}; else PYTHON=${PYTHON:-python3}; fi

if [ "${1:-}" = "--merge" ]; then
    mkdir -p .gpu/resume
    if [ -f "$2/resume-done.txt" ]; then  # lines "resume-<n>.tgz <cell>": the call packed these
        while read -r file cell; do
            [ -f "$2/$file" ] && cp "$2/$file" ".gpu/resume/.$cell.tgz" \
                && mv ".gpu/resume/.$cell.tgz" ".gpu/resume/$cell.tgz" \
                && echo "kept the checkpoint of $cell in .gpu/resume"
        done < "$2/resume-done.txt"
    else
        echo "no resume-done.txt came back: .gpu/resume kept as it was"
    fi
    for archive in "$2"/*.tgz; do
        profile=$(basename "$archive" .tgz)
        case "$profile" in logs|resume-*) continue ;; esac
        tmp=$(mktemp -d)
        tar -xzf "$archive" -C "$tmp"
        # Cells, searches, analyses and dataset records never change once written: copy what
        # is new, then rebuild every manifest from the cells that are here.
        for sub in cells searches analysis datasets; do
            [ -d "$tmp/$profile/$sub" ] && mkdir -p "results/$profile/$sub" \
                && cp -rn "$tmp/$profile/$sub/." "results/$profile/$sub/"
        done
        if [ "$profile" = paper ]; then suites="table2 table3 controls"
        else suites="table2 table3 ablation alpha analysis"; fi
        for suite in $suites; do
            $PYTHON -m rclrec benchmark --profile "$profile" --no-train --suite "$suite" \
                2>/dev/null | grep -m1 "cells done"
        done
        rm -rf "$tmp"
        echo "merged $profile; rebuild its report: $PYTHON -m rclrec report --profile $profile" \
             "(docs/REPORT.md for paper, docs/REPORT-<profile>.md otherwise)"
    done
    for archive in .gpu/resume/*.tgz; do  # a cell finished since needs its checkpoint no more
        cell=$(basename "$archive" .tgz)
        if [ -f "$archive" ] && compgen -G "results/*/cells/$cell/cell.json" > /dev/null; then
            rm -f "$archive" && echo "dropped the checkpoint of finished cell $cell"
        fi
    done
    mkdir -p benchmarks/.work/logs
    [ -f "$2/logs.tgz" ] && tar -xzf "$2/logs.tgz" -C benchmarks/.work/logs
    cp benchmarks/.work/logs/*.json benchmarks/results/ 2>/dev/null  # epoch timing on the device
    exit 0
fi

budget=${1:-540}
profile=${PROFILE:-paper}
results=${RESULTS:-results/$profile}  # its folder name is the profile (--merge reads it so)
work=${WORK:-benchmarks/.work/cells}
workers=${WORKERS:-4}  # one small model leaves a GPU mostly idle: several grid processes share it
end=$(( $(date +%s) + budget - 30 ))  # 30 s to pack
out=${OUT:-/tmp/gpu_grid_out}
logs="$out/.logs"
mkdir -p "$logs" "$work" "$results"
log="$logs/gpu_grid.log"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 RCLREC_CACHE=${RCLREC_CACHE:-/tmp/rclrec-cache}
export RCLREC_DATA=${RCLREC_DATA:-$PWD/.gpu/data}
# Similarity indexes built here travel in .gpu/cache (a CPU-bound minute or more each there).
mkdir -p "$RCLREC_CACHE" && cp -r .gpu/cache/. "$RCLREC_CACHE"/ 2>/dev/null
export RCLREC_GIT_COMMIT=${RCLREC_GIT_COMMIT:-$(cat .gpu/commit 2>/dev/null)}
if ls .gpu/whl/*.whl > /dev/null 2>&1; then
    $PYTHON -m pip install -q --no-index --no-deps --target /tmp/site .gpu/whl/*.whl \
        && export PYTHONPATH=$PYTHONPATH:/tmp/site
fi
# Cells cut by an earlier call's deadline continue from their checkpoints.
for archive in .gpu/resume/*.tgz; do
    [ -f "$archive" ] && tar -xzf "$archive" -C "$work" && echo "resuming from $archive" >> "$log"
done
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader >> "$log" 2>&1

pack() {  # finished cells so far, replaced atomically: a call cut at its limit still returns them
    tar -czf "$out/.$profile.tgz" -C "$(dirname "$results")" "$(basename "$results")" \
        && mv "$out/.$profile.tgz" "$out/$profile.tgz"
    tar -czf "$out/.logs.tgz" -C "$logs" . && mv "$out/.logs.tgz" "$out/logs.tgz"
}

pack_resume() {  # the unfinished cells' checkpoints, one archive each (at most 16 MiB comes back)
    local n=0 h
    rm -f "$out"/resume-*.tgz "$out/resume-done.txt" "$out/.resume-done.txt"
    : > "$out/.resume-done.txt"
    # Most epochs first: where not all fit, the most advanced come back.
    for h in $(resume_candidates); do
        [ "$n" -lt "${RESUME_FILES:-$(( workers > 3 ? workers : 3 ))}" ] || break
        tar -czf "$out/.resume.tgz" -C "$work" "$h/checkpoint.pt" "$h/config.json" \
            $( [ -f "$work/$h/best.pt" ] && echo "$h/best.pt" ) || continue
        if [ "$(stat -c %s "$out/.resume.tgz")" -lt 16000000 ]; then
            mv "$out/.resume.tgz" "$out/resume-$n.tgz"
            echo "resume-$n.tgz $h" >> "$out/.resume-done.txt"; n=$((n + 1))
            echo "kept the checkpoint of unfinished cell $h (resume-$((n - 1)).tgz)" >> "$log"
        fi
    done
    rm -f "$out/.resume.tgz"
    mv "$out/.resume-done.txt" "$out/resume-done.txt"  # last: its presence says all is here
}

resume_candidates() {  # unfinished cells with a checkpoint, most finished epochs first
    RESULTS_DIR="$results" WORK_DIR="$work" $PYTHON - <<'PY'
import os
from pathlib import Path

import torch

def epochs(ckpt: Path) -> int:
    try:
        return int(torch.load(ckpt, map_location="cpu", weights_only=False)["state"]["epoch"])
    except Exception:  # unreadable: packed last, still packed
        return -1

results, work = Path(os.environ["RESULTS_DIR"]), Path(os.environ["WORK_DIR"])
cells = [d for d in sorted(work.iterdir()) if (d / "checkpoint.pt").is_file()
         and (d / "config.json").is_file() and not (results / "cells" / d.name / "cell.json").exists()]
for d in sorted(cells, key=lambda d: -epochs(d / "checkpoint.pt")):
    print(d.name)
PY
}

step() {  # one benchmark command, cut at the deadline; a failure does not stop the others
    local left=$(( end - $(date +%s) ))
    [ "$left" -gt 30 ] || return 0
    echo "== $(date +%T) ($left s left) $*" >> "$log"
    timeout "$left" $PYTHON -m rclrec benchmark --device "${DEVICE:-cuda}" \
        --threads "${THREADS:-3}" --work "$work" "$@" || echo "== exit $? : $*"
}

# Device bugs first, alone: a smoke run of every method (the controls' too); any failure ends
# the call at once, so the device time left can go to a fixed rerun.
if [ "${SMOKE:-1}" != 0 ]; then
    for suite in all controls; do
        step --profile smoke --suite "$suite" --results /tmp/smoke --work /tmp/smoke-work >> "$log" 2>&1
    done
fi
if grep -q "failed\|== exit" "$log"; then echo "smoke failed on the device: stopping" >> "$log"; pack; exit 1; fi
# Seconds per epoch on the GPU, measured alone (the grid below shares the GPU between processes).
[ "${TIMING_STEPS:-40}" = 0 ] || timeout 120 $PYTHON benchmarks/epoch_timing.py --device "${DEVICE:-cuda}" --dataset beauty \
    --methods sasrec rcl --steps "${TIMING_STEPS:-40}" --threads 4 --out "$logs" --name epoch_timing_beauty_gpu \
    >> "$log" 2>&1 || echo "== epoch timing failed" >> "$log"

if [ "$profile" = paper ]; then
    # Beauty first: Table 2 there gives RCL's and SASRec's searches, which its controls reuse.
    default="table2:beauty controls:beauty table2:yelp controls:yelp table3:yelp table2:sports table2:ml-100k"
else
    default="table2:yelp table3:yelp table2:sports"
fi
grid() {
    # shellcheck disable=SC2086  # GRID_ARGS is a list of options
    local q=(--profile "$profile" --results "$results" ${GRID_ARGS:-})
    for suite in ${SUITES:-$default}; do
        step "${q[@]}" --suite "${suite%:*}" --datasets "${suite#*:}"
    done
    [ "$profile" = quick ] || return 0
    step "${q[@]}" --suite table2 --datasets beauty --seeds 3
    step "${q[@]}" --suite table3 --datasets yelp --seeds 3
}
for w in $(seq "$workers"); do
    grid > "$logs/worker$w.log" 2>&1 &
    sleep 5  # the per-cell lock hands each process a different cell
done
while [ -n "$(jobs -r)" ] && [ "$(date +%s)" -lt "$end" ]; do sleep 30; pack; done
wait
pack_resume
echo "packed $(find "$results/cells" -name cell.json | wc -l) cells into $out/$profile.tgz" >> "$log"
pack
