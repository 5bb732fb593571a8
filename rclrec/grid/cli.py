"""`rclrec benchmark`, `rclrec report` and `rclrec rekey`; rclrec/cli.py registers them with
``add_parsers`` and calls ``run(args)`` for these commands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rclrec.grid.suites import PAPER_SUITES, PROFILES, SUITES, suites_of

COMMANDS = ("benchmark", "report", "rekey")


def _names(values: list[str] | None) -> tuple[str, ...] | None:
    """``--datasets beauty sports`` or ``--datasets beauty,sports``."""
    if not values:
        return None
    return tuple(n.strip() for v in values for n in v.split(",") if n.strip())


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "benchmark", help="train a suite of runs (Tables 2/3, Figures 3-6) as resumable cells",
        description="Train or reuse every cell of a suite. A cell is a `train` run named by the "
                    "hash of its resolved configuration; finished cells are reused, so an "
                    "interrupted benchmark resumes and several processes can fill one grid. "
                    "Hyper-parameters are searched on validation NDCG@10 over the paper's grids.",
        epilog="suites: " + "; ".join(
            f"{name} = " + " + ".join(f"{g.name} ({', '.join(g.methods)} on "
                                      f"{', '.join(g.datasets)}, {g.encoder})"
                                      for g in groups)
            for name, groups in SUITES.items() if name != "all")
        + "; all = every suite but controls (the paper profile's: table2, table3, "
          "controls). The paper profile's table2 adds ml-100k (ML-1M's stand-in) and its "
          "table3 is Yelp only.")
    p.add_argument("--suite", required=True, choices=list(PAPER_SUITES))
    p.add_argument("--datasets", nargs="+", help="replace the suite's datasets")
    p.add_argument("--methods", nargs="+", help="keep only these methods of the suite")
    p.add_argument("--seeds", type=int, help="number of seeds (0..N-1) [the profile's]")
    p.add_argument("--profile", choices=list(PROFILES), default="quick",
                   help="smoke (seconds, synthetic) | quick (CPU) | full (paper's epochs, GPU) "
                        "| paper (the paper's protocol and search, GPU) [quick]")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda [auto]")
    p.add_argument("--threads", type=int,
                   help="CPU threads per cell; not part of a cell's hash [the config's]")
    p.add_argument("--results", help="committed results folder [results/<profile>]")
    p.add_argument("--work", help="git-ignored run folders [runs/cells]")
    p.add_argument("--budget", type=int,
                   help="max cells per hyper-parameter search (0 = no limit) [the profile's]")
    p.add_argument("--epochs", type=int,
                   help="most epochs per cell, replacing the profile's (a tiny trial of a grid; "
                        "part of a cell's hash)")
    p.add_argument("--max-steps", type=int,
                   help="most steps per epoch (a tiny trial of a grid; part of a cell's hash)")
    p.add_argument("--progress", action="store_true", help="progress bars of each run")
    p.add_argument("--no-train", action="store_true",
                   help="train nothing: reuse finished cells, record the rest as missing "
                        "(rebuilds the manifests after several processes filled a grid)")

    r = subparsers.add_parser("report", help="Markdown report from a results folder",
                              description="Rebuild the report (tables, PNG figures, missing "
                                          "cells) from the committed JSON of a results folder.")
    r.add_argument("--results", help="results folder [results/<profile>]")
    r.add_argument("--profile", choices=list(PROFILES),
                   help="picks the default --results and the layout [quick; with --results, "
                        "the profile its manifests name]")
    r.add_argument("--out", help="report path [docs/REPORT.md for the paper profile, else "
                                 "docs/REPORT-<profile>.md]; PNGs go to <its folder>/<its name>/")

    k = subparsers.add_parser(
        "rekey", help="rename cells whose hash changed after a setting was added",
        description="A new setting changes the hash of every cell of the methods that read its "
                    "section. When its default keeps the old behaviour, this renames those "
                    "cells (results and run folders) and the manifests' references, so they are "
                    "reused instead of trained again.")
    k.add_argument("--results", help="results folder [results/<profile>]")
    k.add_argument("--profile", choices=list(PROFILES), default="quick",
                   help="picks the default --results [quick]")
    k.add_argument("--work", help="git-ignored run folders [runs/cells]")


def run_benchmark(args: argparse.Namespace) -> int:
    from rclrec.grid.runner import DEFAULT_WORK, BenchmarkOptions, run_suite

    profile = PROFILES[args.profile]
    if args.seeds is not None and args.seeds < 1:
        print("rclrec benchmark: error: --seeds must be >= 1", file=sys.stderr)
        return 2
    for flag, value in (("--threads", args.threads), ("--epochs", args.epochs),
                        ("--max-steps", args.max_steps)):
        if value is not None and value < 1:
            print(f"rclrec benchmark: error: {flag} must be >= 1", file=sys.stderr)
            return 2
    suites = suites_of(profile)
    if args.suite not in suites:
        print(f"rclrec benchmark: error: --suite {args.suite} is not a suite of the "
              f"{profile.name} profile ({', '.join(suites)})", file=sys.stderr)
        return 2
    trial = {key: value for key, value in (("train.epochs", args.epochs),
                                           ("train.max_steps", args.max_steps))
             if value is not None}
    opts = BenchmarkOptions(
        profile=profile,
        results=Path(args.results or Path("results") / profile.name),
        work=Path(args.work) if args.work else DEFAULT_WORK,
        datasets=_names(args.datasets), methods=_names(args.methods), seeds=args.seeds,
        device=args.device, threads=args.threads,
        budget=(args.budget or None) if args.budget is not None else None,
        use_budget=args.budget is not None, show_progress=args.progress,
        train=not args.no_train, settings=trial)
    known = {m for g in suites[args.suite] for m in g.methods}
    unknown = sorted(set(opts.methods or ()) - known)
    if unknown:
        print(f"rclrec benchmark: error: --methods {', '.join(unknown)}: not in suite "
              f"{args.suite} ({', '.join(sorted(known))})", file=sys.stderr)
        return 2
    manifests = run_suite(args.suite, opts)
    done = sum(len(e["cells"]) for m in manifests for e in m["entries"])
    missing = [(e["id"], x) for m in manifests for e in m["entries"] for x in e["missing"]]
    print(f"{args.suite} ({profile.name}): {done} cells done, {len(missing)} missing; "
          f"results in {opts.results}")
    for entry_id, m in missing:
        seed = "all seeds" if m["seed"] is None else f"seed {m['seed']}"
        print(f"  missing {entry_id} ({seed}): {m['reason']}")
    return 0


def run_report(args: argparse.Namespace) -> int:
    from rclrec.grid.report import (
        build_report,
        default_report_path,
        figure_dir,
        report_profile,
    )

    results = Path(args.results or Path("results") / (args.profile or "quick"))
    if not results.is_dir():
        print(f"rclrec report: error: {results} is not a results folder (run `rclrec "
              f"benchmark` first)", file=sys.stderr)
        return 2
    profile = args.profile or report_profile(results)
    out = Path(args.out) if args.out else default_report_path(profile)
    if profile == "paper":
        from rclrec.grid.paper_report import build_paper_report

        build_paper_report(results, out)
    else:
        build_report(results, out)
    print(f"written: {out} (figures in {figure_dir(out)})")
    return 0


def run_rekey(args: argparse.Namespace) -> int:
    from rclrec.grid.cells import rekey_cells
    from rclrec.grid.runner import DEFAULT_WORK

    results = Path(args.results or Path("results") / args.profile)
    try:
        moves, busy = rekey_cells(results, Path(args.work) if args.work else DEFAULT_WORK)
    except FileExistsError as e:
        print(f"rclrec rekey: error: {e}", file=sys.stderr)
        return 1
    for old, new in moves.items():
        print(f"{old} -> {new}")
    print(f"{len(moves)} cells renamed in {results}")
    if busy:
        print(f"{len(busy)} cells left as they are, being trained by another process (run "
              f"`rclrec rekey` again when they are finished): {', '.join(busy)}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.command == "benchmark":
        return run_benchmark(args)
    if args.command == "report":
        return run_report(args)
    if args.command == "rekey":
        return run_rekey(args)
    raise ValueError(f"rclrec.grid.cli cannot run {args.command!r}")


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point until rclrec/cli.py wires the commands in."""
    parser = argparse.ArgumentParser(prog="rclrec")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parsers(sub)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
