"""RecBole 1.2.1 SASRec beside rclrec SASRec on Beauty, same machine, same settings, 1 thread each.

    python benchmarks/recbole_side_by_side.py                       # full Beauty, both halves
    python benchmarks/recbole_side_by_side.py --users 2000 --max-epochs 1   # smoke test

What it does:
1. Creates benchmarks/.work/recbole-venv (not an rclrec dependency): torch==2.13.0 (the CPU wheel
   on this machine's disk) first, then recbole==1.2.1, then "numpy<2" "pandas<2.2" "scipy<1.14"
   "setuptools<81" (see shared/PEERS.md). Each step is skipped when already satisfied.
2. Converts the one-line-per-user data set to a RecBole atomic .inter (timestamp = position in the
   user's sequence) under benchmarks/.work/recbole-data/<name>/ (with --users N: the first N users,
   also written as a .txt for rclrec under benchmarks/.work/side_by_side/data/).
3. Runs RecBole's SASRec (benchmarks/recbole/runner.py inside that venv) with rclrec's defaults:
   CE over all items, d=64, inner 256, 2 blocks, 2 heads, dropout 0.5/0.5, GELU, LN eps 1e-12,
   init 0.02, Adam 1e-3, batch 256, max length 50, leave-one-out full ranking, valid NDCG@10,
   stopping_step 10, seed 0, 1 torch thread; capped at --max-epochs and --recbole-wall-cap seconds.
   The result is cached under benchmarks/.work/recbole-runs/<settings hash>/result.json.
4. Runs `python -m rclrec train --method sasrec --seed 0 --set train.threads=1 --epochs N --resume`.
5. Writes benchmarks/results/recbole_side_by_side{suffix}.json and .md (atomically).

Wall time "to an epoch" is the sum of (training + validation) seconds of the epochs up to it, on
both sides (RecBole's true wall clock, with its checkpoint writes and logging, is also recorded).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / ".work"
VENV = WORK / "recbole-venv"
RECBOLE_DATA = WORK / "recbole-data"
RECBOLE_RUNS = WORK / "recbole-runs"
SIDE = WORK / "side_by_side"
RESULTS = ROOT / "benchmarks" / "results"
RUNNER = ROOT / "benchmarks" / "recbole" / "runner.py"
KS = (5, 10, 20)
REPORT_KEYS = [f"{m}@{k}" for m in ("HR", "NDCG") for k in KS]

DATASETS = {"beauty": "Beauty.txt", "sports": "Sports_and_Outdoors.txt",
            "toys": "Toys_and_Games.txt", "yelp": "Yelp.txt", "lastfm": "LastFM.txt"}


def log(msg: str) -> None:
    print(f"[side_by_side {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------------------------------------ the venv


def venv_python() -> Path:
    return VENV / "bin" / "python"


def _venv_has(requirement: str) -> bool:
    """True when the venv already satisfies ``requirement`` (packaging's check, no network)."""
    code = ("import sys, importlib.metadata as m\n"
            "from packaging.requirements import Requirement\n"
            "r = Requirement(sys.argv[1])\n"
            "try:\n    v = m.version(r.name)\nexcept m.PackageNotFoundError:\n    sys.exit(1)\n"
            "sys.exit(0 if r.specifier.contains(v, prereleases=True) else 1)\n")
    if not venv_python().exists():
        return False
    probe = subprocess.run([str(venv_python()), "-c", code, requirement], capture_output=True)
    if probe.returncode not in (0, 1):  # packaging missing: fall back to pip show
        name = requirement.split("=")[0].split("<")[0].strip().strip('"')
        return subprocess.run([str(venv_python()), "-m", "pip", "show", name],
                              capture_output=True).returncode == 0 and "==" not in requirement
    return probe.returncode == 0


def ensure_venv() -> None:
    if not venv_python().exists():
        log(f"creating {VENV}")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(venv_python()), "-m", "pip", "install", "--quiet"]
    # The order matters (PEERS.md): the CPU torch first, so recbole's torch>=1.10 requirement is
    # already met and pip never pulls a CUDA build; then recbole; then its old-numpy pins.
    steps = [["torch==2.13.0"], ["recbole==1.2.1"],
             ["numpy<2", "pandas<2.2", "scipy<1.14", "setuptools<81"]]
    for reqs in steps:
        if all(_venv_has(r) for r in reqs):
            continue
        log("pip install " + " ".join(reqs))
        subprocess.run(pip + reqs, check=True)
    check = subprocess.run([str(venv_python()), "-c",
                            "import torch, recbole; print(torch.__version__, recbole.__version__)"],
                           capture_output=True, text=True, check=True)
    torch_v, recbole_v = check.stdout.split()
    if "+cu" in torch_v or not torch_v.startswith("2.13.0"):
        raise SystemExit(f"{VENV} has torch {torch_v}; expected the 2.13.0 CPU build")
    log(f"recbole venv ready: torch {torch_v}, recbole {recbole_v}")


# ------------------------------------------------------------------------------ the data


def find_source(dataset: str) -> Path:
    name = DATASETS.get(dataset.lower(), dataset)
    for base in (Path(os.environ.get("RCLREC_DATA", "")) if os.environ.get("RCLREC_DATA") else None,
                 ROOT.parent / "shared" / "data", ROOT / "data"):
        if base is not None and (base / name).is_file():
            return base / name
    if Path(dataset).is_file():
        return Path(dataset)
    raise SystemExit(f"data set {dataset!r} not found (looked for {name} in shared/data)")


def read_sequences(path: Path, users: int | None) -> list[list[str]]:
    lines = []
    with open(path) as f:
        for line in f:
            fields = line.split()
            if fields:
                lines.append(fields)
            if users is not None and len(lines) >= users:
                break
    return lines


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def prepare_data(dataset: str, users: int | None) -> tuple[str, Path, str]:
    """Returns (RecBole dataset name, .inter path, rclrec --dataset argument)."""
    source = find_source(dataset)
    stem = Path(DATASETS.get(dataset.lower(), dataset)).stem.lower()
    name = stem if users is None else f"{stem}_u{users}"
    inter = RECBOLE_DATA / name / f"{name}.inter"
    seqs = None
    if not inter.exists() or inter.stat().st_mtime < source.stat().st_mtime:
        seqs = read_sequences(source, users)
        rows = ["user_id:token\titem_id:token\ttimestamp:float"]
        for fields in seqs:
            user = fields[0]
            rows += [f"{user}\t{item}\t{pos}" for pos, item in enumerate(fields[1:], start=1)]
        write_atomic(inter, "\n".join(rows) + "\n")
        log(f"wrote {inter} ({len(seqs)} users, {len(rows) - 1} interactions)")
    rclrec_dataset = dataset
    if users is not None:
        txt = SIDE / "data" / f"{name}.txt"
        if not txt.exists() or txt.stat().st_mtime < source.stat().st_mtime:
            seqs = seqs or read_sequences(source, users)
            write_atomic(txt, "".join(" ".join(f) + "\n" for f in seqs))
        rclrec_dataset = str(txt)
    return name, inter, rclrec_dataset


# ------------------------------------------------------------------------------ RecBole


def recbole_config(args: argparse.Namespace, name: str) -> dict:
    """RecBole settings matching rclrec's SASRec defaults (rclrec/config.py;
    docs/BASELINES.md section 0.4)."""
    return {
        "data_path": str(RECBOLE_DATA),
        "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "MAX_ITEM_LIST_LENGTH": 50,
        # the model
        "n_layers": 2, "n_heads": 2, "hidden_size": 64, "inner_size": 256,
        "hidden_dropout_prob": 0.5, "attn_dropout_prob": 0.5, "hidden_act": "gelu",
        "layer_norm_eps": 1e-12, "initializer_range": 0.02, "loss_type": "CE",
        # training
        "train_neg_sample_args": None, "epochs": args.max_epochs, "train_batch_size": 256,
        "learner": "adam", "learning_rate": 1e-3, "weight_decay": 0.0, "clip_grad_norm": None,
        "eval_step": 1, "stopping_step": 10,
        # evaluation: leave-one-out, full ranking over all items, seen items filtered
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full",
                      "group_by": "user"},
        "metrics": ["Recall", "NDCG", "MRR"], "topk": list(KS), "valid_metric": "NDCG@10",
        "eval_batch_size": 4096,
        "seed": args.seed, "reproducibility": True,
        "use_gpu": False, "device": "cpu", "gpu_id": "", "worker": 0,
        "show_progress": False, "log_wandb": False,
        "checkpoint_dir": "saved",
    }


def run_recbole(args: argparse.Namespace, name: str, inter: Path) -> dict:
    config = recbole_config(args, name)
    spec = {"model": "SASRec", "dataset": name, "config": config, "threads": args.threads,
            "max_epochs": args.max_epochs, "wall_cap_s": args.recbole_wall_cap}
    # The cache key is the settings and the data file (its size and hash), nothing else.
    data_sig = hashlib.sha256(inter.read_bytes()).hexdigest()
    key = hashlib.sha256((json.dumps(spec, sort_keys=True) + data_sig).encode()).hexdigest()[:12]
    run_dir = RECBOLE_RUNS / f"{name}-{key}"
    result_path = run_dir / "result.json"
    if result_path.exists():
        log(f"RecBole: reusing {result_path.relative_to(ROOT)}")
        return json.loads(result_path.read_text()) | {"run_dir": str(run_dir.relative_to(ROOT))}
    ensure_venv()
    run_dir.mkdir(parents=True, exist_ok=True)
    spec["out"] = str(result_path)
    spec_path = run_dir / "spec.json"
    write_atomic(spec_path, json.dumps(spec, indent=2))
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
               PYTHONDONTWRITEBYTECODE="1")
    cmd = [str(venv_python()), str(RUNNER), str(spec_path)]
    log(f"RecBole: {' '.join(cmd)}  (cwd {run_dir.relative_to(ROOT)}; log in runner.log)")
    started = time.time()
    with open(run_dir / "runner.log", "w") as logf:
        proc = subprocess.Popen(cmd, cwd=run_dir, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:
            logf.write(line)
            logf.flush()
            if line.startswith("recbole"):
                log(line.rstrip())
        if proc.wait() != 0:
            raise SystemExit(f"RecBole runner failed (exit {proc.returncode}); see "
                             f"{run_dir / 'runner.log'}")
    log(f"RecBole finished in {time.time() - started:.0f}s")
    return json.loads(result_path.read_text()) | {"run_dir": str(run_dir.relative_to(ROOT))}


# ------------------------------------------------------------------------------ rclrec


def run_rclrec(args: argparse.Namespace, dataset: str) -> tuple[dict, list[str]]:
    out = SIDE / ("rclrec" if args.users is None else f"rclrec_u{args.users}_e{args.rclrec_epochs}")
    cmd = [str(ROOT / ".venv" / "bin" / "python"), "-m", "rclrec", "train", "--dataset", dataset,
           "--method", "sasrec", "--seed", str(args.seed), "--set", f"train.threads={args.threads}",
           "--epochs", str(args.rclrec_epochs), "--out", str(out.relative_to(ROOT)), "--resume",
           "--quiet"]
    finished = out / "metrics.json"
    if finished.exists():
        # A finished run is reused as it is. (rclrec's own --resume would do the same, but it
        # refuses a folder whose saved config lacks a section added to rclrec since the run.)
        log(f"rclrec: reusing {finished.relative_to(ROOT)}")
        metrics = json.loads(finished.read_text())
        if metrics["config"]["train"]["epochs"] != args.rclrec_epochs:
            log(f"note: {out} is a finished run with epochs="
                f"{metrics['config']['train']['epochs']} (not {args.rclrec_epochs})")
        return metrics, cmd
    log("rclrec: " + " ".join(cmd))
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    started = time.time()
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)
    log(f"rclrec finished in {time.time() - started:.0f}s")
    metrics = json.loads((out / "metrics.json").read_text())
    if metrics["config"]["train"]["epochs"] != args.rclrec_epochs:
        log(f"note: {out} is a finished run with epochs={metrics['config']['train']['epochs']} "
            f"(not {args.rclrec_epochs}); reused as it is")
    return metrics, cmd


# ------------------------------------------------------------------------------ comparison


def cumulative(history: list[dict], key: str = "epoch_seconds") -> list[float]:
    total, out = 0.0, []
    for h in history:
        total += h[key]
        out.append(round(total, 3))
    return out


def side_summary(history: list[dict], best_epoch: int, test: dict, instances: int,
                 steps: int) -> dict:
    wall = cumulative(history)
    n = max(len(history), 1)
    best = history[best_epoch - 1]
    return {
        "epochs_run": len(history),
        "training_instances_per_epoch": instances,
        "steps_per_epoch": steps,
        "train_seconds_per_epoch": round(sum(h["train_seconds"] for h in history) / n, 3),
        "epoch_seconds_per_epoch": round(sum(h["epoch_seconds"] for h in history) / n, 3),
        "best_epoch": best_epoch,
        "best_valid_ndcg10": best["valid"]["NDCG@10"],
        "best_valid": best["valid"],
        "wall_seconds_to_best": wall[best_epoch - 1],
        "test_at_best": {k: test[k] for k in REPORT_KEYS + ["MRR@10"] if k in test},
        "curve": [{"epoch": h["epoch"], "train_seconds": h["train_seconds"],
                   "epoch_seconds": h["epoch_seconds"], "wall_seconds": w,
                   "valid_ndcg10": h["valid"]["NDCG@10"]}
                  for h, w in zip(history, wall, strict=True)],
    }


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "logical_cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version()}


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def compare(rb: dict, rc: dict) -> dict:
    target = rb["best_valid_ndcg10"]
    reached = next((c for c in rc["curve"] if c["valid_ndcg10"] >= target), None)
    out = {"recbole_best_valid_ndcg10": target,
           "recbole_wall_seconds_to_best": rb["wall_seconds_to_best"],
           "rclrec_reaches_it": reached is not None,
           "rclrec_epoch_to_reach": reached["epoch"] if reached else None,
           "rclrec_wall_seconds_to_reach": reached["wall_seconds"] if reached else None,
           "ratio": (round(reached["wall_seconds"] / rb["wall_seconds_to_best"], 4)
                     if reached and rb["wall_seconds_to_best"] > 0 else None),
           "goal_ratio_at_most": 0.5}
    out["goal_met"] = out["ratio"] is not None and out["ratio"] <= 0.5
    return out


def fmt(x, digits=4):
    return "-" if x is None else (f"{x:.{digits}f}" if isinstance(x, float) else str(x))


def markdown(res: dict) -> str:
    rb, rc, cmp_ = res["recbole"], res["rclrec"], res["comparison"]
    cap = rb["caps"]
    lines = [
        f"# RecBole {res['versions']['recbole']} SASRec vs rclrec SASRec on {res['dataset']}",
        "",
        f"Command: `{res['command']}`  ",
        f"Machine: {res['machine']['cpu']}, {res['machine']['logical_cpus']} logical CPUs (shared "
        f"with other jobs), torch {res['versions']['torch_recbole_venv']} (RecBole venv) / "
        f"{res['versions']['torch_rclrec']} (rclrec), {res['threads']} torch thread per side, "
        f"seed {res['seed']}, git {res['git_commit']} (rclrec run: {res['rclrec']['git_commit']})"
        f"; the two halves ran "
        f"{'at the same time' if res['halves_run_in_parallel'] else 'one after the other'}.  ",
        f"Data: {rb['num_users']} users, {rb['num_items']} items, {rb['num_interactions']} "
        f"interactions; leave-one-out, full ranking, history items excluded.",
        "",
        "| | RecBole SASRec | rclrec SASRec |",
        "|---|---|---|",
        f"| training instances / epoch | {rb['training_instances_per_epoch']} (every prefix) | "
        f"{rc['training_instances_per_epoch']} ({res['rclrec_instances']}) |",
        f"| steps / epoch (batch 256) | {rb['steps_per_epoch']} | {rc['steps_per_epoch']} |",
        f"| epochs run | {rb['epochs_run']} | {rc['epochs_run']} |",
        f"| s / epoch, training | {fmt(rb['train_seconds_per_epoch'], 1)} | "
        f"{fmt(rc['train_seconds_per_epoch'], 1)} |",
        f"| s / epoch, training + validation | {fmt(rb['epoch_seconds_per_epoch'], 1)} | "
        f"{fmt(rc['epoch_seconds_per_epoch'], 1)} |",
        f"| best valid NDCG@10 (epoch) | {fmt(rb['best_valid_ndcg10'])} ({rb['best_epoch']}) | "
        f"{fmt(rc['best_valid_ndcg10'])} ({rc['best_epoch']}) |",
        f"| wall s to best valid NDCG@10 | {fmt(rb['wall_seconds_to_best'], 1)} | "
        f"{fmt(rc['wall_seconds_to_best'], 1)} |",
    ]
    for k in REPORT_KEYS:
        lines.append(f"| test {k} at best epoch | {fmt(rb['test_at_best'].get(k))} | "
                     f"{fmt(rc['test_at_best'].get(k))} |")
    lines += [
        "",
        f"**Key question.** rclrec first reaches RecBole's best validation NDCG@10 "
        f"({fmt(cmp_['recbole_best_valid_ndcg10'])}) "
        + (f"at epoch {cmp_['rclrec_epoch_to_reach']}, after "
           f"{fmt(cmp_['rclrec_wall_seconds_to_reach'], 1)} s, vs RecBole's "
           f"{fmt(cmp_['recbole_wall_seconds_to_best'], 1)} s to its own best: ratio "
           f"**{fmt(cmp_['ratio'], 3)}** (goal <= 0.5: {'met' if cmp_['goal_met'] else 'NOT met'})."
           if cmp_["rclrec_reaches_it"] else
           f"never within {rc['epochs_run']} epochs (goal <= 0.5 not shown)."),
        "",
        "Wall time = sum of training + validation seconds up to that epoch (both sides; RecBole's "
        f"true wall clock incl. checkpoint writes: {fmt(rb['fit_wall_seconds'], 1)} s for "
        f"{rb['epochs_run']} epochs).",
    ]
    notes = []
    if cap["wall_cap_hit"]:
        notes.append(f"RecBole stopped at the wall-clock cap ({cap['wall_cap_s']} s) after "
                     f"{rb['epochs_run']} epochs, before early stopping: its best may still rise.")
    if cap["epoch_cap_hit"]:
        notes.append(f"RecBole stopped at the epoch cap ({cap['max_epochs']}), before early "
                     f"stopping: its best may still rise.")
    if not rc["stopped_early"] and rc["epochs_run"] >= res["rclrec_epochs"]:
        notes.append(f"rclrec stopped at its epoch cap ({res['rclrec_epochs']}), before early "
                     f"stopping.")
    if notes:
        lines += ["", "Caps: " + " ".join(notes)]
    lines += ["", "Caveats:", "",
              "- The machine is shared with other jobs: the absolute seconds depend on their load. "
              "Both halves use 1 torch thread"
              + (" and ran at the same time, so they met the same background load."
                 if res["halves_run_in_parallel"] else "; they ran one after the other."),
              "- Training instances differ by design: RecBole trains on every prefix of every "
              "training sequence (one target each); rclrec's SASRec default is one window per "
              "user with a target at every position. The model, loss (full-softmax CE), "
              "optimiser, batch size and evaluation are the same.",
              "- RecBole's stopping_step 10 stops after 11 epochs without improvement, rclrec's "
              "patience 10 after 10. RecBole validates 4096 users per batch, rclrec 1024.",
              "- A RecBole run cut short by the caps is not resumable mid-training; only a "
              "finished result is cached (benchmarks/.work/recbole-runs/<settings hash>/)."]
    lines += [f"- {n}" for n in res.get("notes", [])]
    lines += ["", "Validation NDCG@10 per epoch (wall s):", "",
              "| epoch | RecBole | rclrec |", "|---|---|---|"]
    for i in range(max(rb["epochs_run"], rc["epochs_run"])):
        a = rb["curve"][i] if i < len(rb["curve"]) else None
        b = rc["curve"][i] if i < len(rc["curve"]) else None
        cell = lambda c: f"{c['valid_ndcg10']:.4f} ({c['wall_seconds']:.0f})" if c else ""  # noqa
        lines.append(f"| {i + 1} | {cell(a)} | {cell(b)} |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ main


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="beauty")
    p.add_argument("--users", type=int, default=None, help="first N users only (smoke tests)")
    p.add_argument("--max-epochs", type=int, default=30, help="RecBole epoch cap [30]")
    p.add_argument("--recbole-wall-cap", type=float, default=3600.0,
                   help="RecBole wall-clock cap in seconds (training + validation) [3600]")
    p.add_argument("--rclrec-epochs", type=int, default=None,
                   help="rclrec --epochs (default: max(--max-epochs, 50))")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--parallel", action="store_true",
                   help="run the two halves at the same time (each on its own thread count); "
                        "both then share the machine's background load alike")
    p.add_argument("--note", action="append", default=[],
                   help="a line added to the report's caveats (repeatable)")
    p.add_argument("--skip-rclrec", action="store_true", help="RecBole half only")
    p.add_argument("--skip-recbole", action="store_true",
                   help="rclrec half only (needs a cached RecBole result for the report)")
    args = p.parse_args()
    if args.rclrec_epochs is None:
        args.rclrec_epochs = max(args.max_epochs, 50)

    name, inter, rclrec_dataset = prepare_data(args.dataset, args.users)
    rc_box: dict = {}

    def rclrec_half() -> None:
        try:
            rc_box["value"] = run_rclrec(args, rclrec_dataset)
        except BaseException as e:  # noqa: BLE001 - re-raised in the main thread
            rc_box["error"] = e

    worker = None
    if args.parallel and not args.skip_rclrec:
        worker = threading.Thread(target=rclrec_half)
        worker.start()
    rb_raw = None if args.skip_recbole else run_recbole(args, name, inter)
    if not args.skip_rclrec:
        if worker is None:
            rclrec_half()
        else:
            worker.join()
        if "error" in rc_box:
            raise rc_box["error"]
    rc_raw, rc_cmd = rc_box.get("value", (None, None))
    if rb_raw is None or rc_raw is None:
        log("one half skipped; no report written")
        return 0

    rb = side_summary(rb_raw["history"], rb_raw["best_epoch"], rb_raw["test"],
                      rb_raw["training_instances"], rb_raw["steps_per_epoch"])
    rb |= {k: rb_raw[k] for k in ("num_users", "num_items", "fit_wall_seconds",
                                  "data_prep_seconds", "run_dir", "stopped_early")}
    # RecBole's inter_num after data_preparation no longer counts one item per user; count the file
    with open(inter) as f:
        rb["num_interactions"] = sum(1 for _ in f) - 1
    rb["caps"] = {k: rb_raw[k] for k in ("max_epochs", "wall_cap_s", "wall_cap_hit",
                                         "epoch_cap_hit")}
    rb["wall_clock_seconds_to_best"] = rb_raw["history"][rb_raw["best_epoch"] - 1]["wall_seconds"]
    n_inst = rc_raw["data"]["training_instances"]
    batch = rc_raw["config"]["train"]["batch_size"]
    steps = math.ceil(n_inst / batch)
    if rc_raw["config"]["train"]["max_steps"]:
        steps = min(steps, rc_raw["config"]["train"]["max_steps"])
    rc = side_summary(rc_raw["history"], rc_raw["best_epoch"], rc_raw["test"], n_inst, steps)
    rc["stopped_early"] = rc_raw["stopped_early"]
    rc["data"] = rc_raw["data"]
    rc["git_commit"] = rc_raw.get("git_commit")
    rc["machine"] = rc_raw.get("machine")
    rc["run_dir"] = str((SIDE / ("rclrec" if args.users is None else
                                 f"rclrec_u{args.users}_e{args.rclrec_epochs}")).relative_to(ROOT))

    torch_rclrec = subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-c",
                                   "import torch; print(torch.__version__)"],
                                  capture_output=True, text=True).stdout.strip()
    suffix = "" if args.users is None else f"_u{args.users}"
    res = {
        "dataset": name,
        "command": "python benchmarks/recbole_side_by_side.py " + " ".join(sys.argv[1:]),
        "rclrec_command": " ".join(rc_cmd),
        "machine": machine(),
        "threads": args.threads,
        "halves_run_in_parallel": args.parallel,
        "seed": args.seed,
        "git_commit": git_commit(),
        "versions": {"recbole": rb_raw["recbole_version"],
                     "torch_recbole_venv": rb_raw["torch_version"],
                     "torch_rclrec": torch_rclrec},
        "rclrec_epochs": args.rclrec_epochs,
        "rclrec_instances": rc_raw["config"]["train"]["instances"],
        "recbole": rb,
        "rclrec": rc,
        "comparison": compare(rb, rc),
        "recbole_settings": recbole_config(args, name),
        "notes": args.note,
    }
    # Subset (smoke) reports stay in the scratch folder; only full runs go to benchmarks/results.
    out_dir = RESULTS if args.users is None else SIDE
    json_path = out_dir / f"recbole_side_by_side{suffix}.json"
    md_path = out_dir / f"recbole_side_by_side{suffix}.md"
    write_atomic(json_path, json.dumps(res, indent=2) + "\n")
    write_atomic(md_path, markdown(res))
    c = res["comparison"]
    log(f"RecBole best valid NDCG@10 {rb['best_valid_ndcg10']:.4f} at epoch {rb['best_epoch']} "
        f"({rb['wall_seconds_to_best']:.0f}s); rclrec best {rc['best_valid_ndcg10']:.4f} at epoch "
        f"{rc['best_epoch']} ({rc['wall_seconds_to_best']:.0f}s); rclrec reaches RecBole's best "
        + (f"after {c['rclrec_wall_seconds_to_reach']:.0f}s, ratio {c['ratio']:.3f}"
           if c["rclrec_reaches_it"] else "never"))
    log(f"written {json_path.relative_to(ROOT)} and {md_path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
