"""Command line: rclrec train | evaluate | recommend | serve | stats | analyze | export |
compare | similarity | benchmark | report | rekey."""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from rclrec.config import ConfigError, load_config, parse_overrides
from rclrec.errors import InputError
from rclrec.grid import cli as experiments_cli
from rclrec.similarity import cli as similarity_cli

# Flags that are shortcuts for a config key: flag dest -> dotted key.
TRAIN_SHORTCUTS = {
    "dataset": "data.dataset",
    "data_dir": "data.data_dir",
    "method": "method",
    "encoder": "encoder.name",
    "epochs": "train.epochs",
    "max_steps": "train.max_steps",
    "seed": "train.seed",
    "device": "train.device",
    "track": "train.track",
}
# For --help without importing the methods (and torch) on every command; a test holds them
# equal to METHODS and to the RCL loss's VARIANTS.
METHOD_NAMES = ("sasrec", "rcl", "cl4srec", "duorec", "ct4rec", "mclrec", "contrarec", "hpm",
                "random_positives", "repeated_centres")
RCL_VARIANTS = ("rcl", "unweight", "weak", "strong", "three_pairs", "official")
# Flags named after a setting of the chosen method: flag dest -> the method's field. They set
# that method's own section (rcl.*, duorec.*, ...) or are an error.
METHOD_FLAGS = {"variant": "variant", "similarity": "similarity", "alpha": "alpha",
                "lambda_": "weight", "tau": "tau"}


def format_table(rows: dict[str, dict[str, float]], ks: tuple[int, ...] = (5, 10, 20)) -> str:
    """A plain text table: one row per split, HR / NDCG / MRR columns."""
    cols = [f"HR@{k}" for k in ks] + [f"NDCG@{k}" for k in ks] + ["MRR@10"]
    lines = ["split  " + "  ".join(f"{c:>8}" for c in cols)]
    for name, metrics in rows.items():
        lines.append(f"{name:<6} " + "  ".join(f"{metrics.get(c, float('nan')):8.4f}"
                                                for c in cols))
    return "\n".join(lines)


def add_train_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train and evaluate a model",
                       description="Train a method, select the epoch by validation NDCG@10 and "
                                   "report test metrics at that epoch.")
    p.add_argument("--dataset", help="dataset name (beauty, sports, toys, yelp, lastfm, ml-100k, "
                                     "ml-1m, synthetic, synthetic-<seed>) or a file path "
                                     "[beauty]")
    p.add_argument("--data-dir", dest="data_dir", help="directory searched first for datasets")
    p.add_argument("--method", help=" | ".join(METHOD_NAMES) + " [sasrec]")
    p.add_argument("--encoder", help="sasrec | fmlp [sasrec]")
    p.add_argument("--epochs", type=int, help="maximum epochs [200]")
    p.add_argument("--max-steps", dest="max_steps", type=int, help="cap steps per epoch")
    p.add_argument("--seed", type=int, help="random seed [0]")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N [auto]")
    p.add_argument("--variant", help="RCL loss variant: " + " | ".join(RCL_VARIANTS) + " [rcl]")
    p.add_argument("--similarity", help="RCL weak-positive metric: jaccard | tfidf | ngram | "
                                        "levenshtein | semantic; cl4srec, duorec: dot | cos")
    p.add_argument("--alpha", type=float, help="RCL: top alpha fraction of similar sequences")
    p.add_argument("--lambda", dest="lambda_", type=float,
                   help="the method's loss weight (RCL: Eq. 18)")
    p.add_argument("--tau", type=float, help="the method's temperature")
    p.add_argument("--config", help="TOML file with settings")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any setting, e.g. --set train.lr=1e-3 (repeatable)")
    p.add_argument("--out", required=True, help="run directory for metrics.json and model.pt")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run in --out (or return a finished one)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--track", help="none | tensorboard | mlflow: each epoch's metrics also to "
                                   "<out>/tensorboard (needs rclrec[track]) or to MLflow "
                                   "(MLFLOW_TRACKING_URI, else <out>/mlflow; needs "
                                   "rclrec[mlflow]) [none]")


def run_train(args: argparse.Namespace) -> int:
    from rclrec.run import run_training
    from rclrec.train.distributed import is_main_process

    overrides: dict[str, Any] = {}
    for dest, key in TRAIN_SHORTCUTS.items():
        value = getattr(args, dest, None)
        if value is not None:
            overrides[key] = value
    settings = parse_overrides(args.overrides)  # --set wins over the flags
    method = load_config(args.config, {**overrides, **settings}).method
    cfg = load_config(args.config, {**overrides, **method_flag_settings(args, method), **settings})
    metrics = run_training(cfg, args.out, resume=args.resume, show_progress=not args.quiet)
    if not is_main_process():
        return 0  # data-parallel: rank 0 reports
    print(f"\n{metrics['method']} / {metrics['encoder']} on {metrics['dataset']} "
          f"(seed {metrics['seed']}): best epoch {metrics['best_epoch']} of "
          f"{metrics['epochs_run']}, {metrics['train_seconds']:.0f}s")
    print(format_table({"valid": metrics["valid"], "test": metrics["test"]},
                       tuple(metrics["config"]["eval"]["ks"])))
    print(f"written: {Path(args.out) / 'metrics.json'}, {Path(args.out) / 'model.pt'}")
    return 0


def method_flag_settings(args: argparse.Namespace, method: str) -> dict[str, Any]:
    """The METHOD_FLAGS given, as settings of ``method``'s own section.

    Raises:
        ConfigError: a flag names no setting of the method (e.g. --alpha with duorec).
    """
    from rclrec.methods import method_class

    section, names = method_class(method).section, list(method_class(method).reads())
    settings = {}
    for dest, name in METHOD_FLAGS.items():
        value = getattr(args, dest, None)
        if value is None:
            continue
        if name not in names:
            own = (f"; its settings are {', '.join(f'{section}.{n}' for n in names)} (--set)"
                   if names else "; it has no settings of its own")
            raise ConfigError(f"--{dest.rstrip('_')} is not a setting of method {method}{own}")
        settings[f"{section}.{name}"] = value
    return settings


def add_evaluate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="re-evaluate a saved run")
    p.add_argument("--run", required=True, help="run directory written by `rclrec train`")
    p.add_argument("--input", help="file of test histories: each user's last item is the "
                                   "target, the earlier ones the input (docs/DATA.md)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N [auto]")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run_evaluate(args: argparse.Namespace) -> int:
    from rclrec.eval.saved import evaluate_file, evaluate_run

    if args.input:
        result = evaluate_file(args.run, args.input, device=args.device)
        if args.json:
            print(json.dumps(result))
        else:
            print(f"{result['cases']} cases from {args.input}; left out: " + ", ".join(
                f"{key.replace('_', ' ')} {n}" for key, n in result["skipped"].items()))
            print(format_table({"test": result["test"]}))
        return 0
    result = evaluate_run(args.run, device=args.device)
    if args.json:
        print(json.dumps(result))
    else:
        print(format_table({"valid": result["valid"], "test": result["test"]}))
    return 0


def add_recommend_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("recommend", help="top-k items after item histories (JSON lines out)",
                       description="Each input line is one history: item ids as in the data "
                                   "file, oldest first, separated by spaces. Each output line "
                                   "is a JSON object: line, items, scores, unknown.")
    p.add_argument("--run", required=True, help="run directory written by `rclrec train`")
    p.add_argument("--input", default="-", help="file of histories, one per line [stdin]")
    add_serving_options(p)
    p = sub.add_parser("serve", help="HTTP service: POST /recommend, GET /health, GET /ready",
                       description='POST /recommend {"history": [item, ...], "k": 10} (or '
                                   '"histories": [[...], ...]) answers {"recommendations": '
                                   '[{"items", "scores", "unknown"}]}.')
    p.add_argument("--run", required=True, help="run directory written by `rclrec train`")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (0.0.0.0: every interface) [127.0.0.1]")
    p.add_argument("--port", type=int, default=8080, help="port to listen on [8080]")
    add_serving_options(p)
    p.add_argument("--max-body-bytes", type=positive_int, default=1 << 20,
                   help="largest request body; larger ones get a 413 [1048576]")
    p.add_argument("--max-histories", type=positive_int, default=256,
                   help="histories per request [256]")
    p.add_argument("--max-history-items", type=positive_int, default=10_000,
                   help="items per history [10000]")
    p.add_argument("--max-k", type=positive_int, default=1000, help="largest k [1000]")
    p.add_argument("--batch-wait-ms", type=float, default=0.0,
                   help="how long a request may wait for others to share its forward pass; "
                        "with 0 a pass takes the requests that queued during the last one [0]")


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_serving_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--k", type=positive_int, default=10, help="items per history [10]")
    p.add_argument("--keep-history", action="store_true",
                   help="may recommend items already in the history")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto [cpu]")


def run_recommend(args: argparse.Namespace) -> int:
    from itertools import islice

    from rclrec.data.dataset import DataError
    from rclrec.serve import Recommender

    if args.input != "-" and Path(args.input).is_dir():  # an error line, not a traceback
        raise DataError(f"{args.input}: is a directory; give the file of histories")
    recommender = Recommender.from_run(args.run, args.device)
    source = sys.stdin if args.input == "-" else open(args.input)  # noqa: SIM115
    name = "stdin" if args.input == "-" else args.input
    done = 0
    try:
        with source:
            # A chunk of lines at a time: memory stays bounded whatever the input's length.
            while lines := list(islice(source, RECOMMEND_CHUNK_LINES)):
                histories = [line.split() for line in lines]
                recs = recommender.recommend(histories, args.k, not args.keep_history)
                pairs = zip(histories, recs, strict=True)
                for n, (history, rec) in enumerate(pairs, start=done + 1):
                    if not rec.items and len(rec.unknown) < len(history):
                        print(f"rclrec recommend: {name} line {n}: every item the model knows "
                              "is in the history (see --keep-history)", file=sys.stderr)
                    elif not rec.items:
                        print(f"rclrec recommend: {name} line {n}: no item the model knows "
                              f"({len(rec.unknown)} unknown)", file=sys.stderr)
                    print(json.dumps({"line": n, "items": rec.items, "scores": rec.scores,
                                      "unknown": rec.unknown}))
                done += len(lines)
                sys.stdout.flush()
    except BrokenPipeError:
        # The reader (`| head`) has what it wanted. Point stdout at /dev/null so that the
        # flush at exit does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


RECOMMEND_CHUNK_LINES = 256


def run_serve(args: argparse.Namespace) -> int:
    import signal

    from rclrec.serve import Limits, Recommender
    from rclrec.serve.app import HttpServer, Service, import_uvicorn

    try:
        import_uvicorn()
    except ImportError as e:
        print(f"rclrec serve: error: {e}", file=sys.stderr)
        return 2
    recommender = Recommender.from_run(args.run, args.device)
    limits = Limits(args.max_body_bytes, args.max_histories, args.max_history_items,
                    args.max_k)
    service = Service(recommender, args.k, limits, max_wait_s=args.batch_wait_ms / 1000)
    server = HttpServer(service, args.host, args.port)
    print(f"serving {args.run} ({len(recommender.item_ids)} items) on "
          f"http://{server.host}:{server.port}/recommend", file=sys.stderr, flush=True)
    # uvicorn drains on SIGTERM / SIGINT, then raises the signal again: end quietly then.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    server.run()
    print("stopped: requests in flight answered", file=sys.stderr)
    return 0


def add_stats_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stats", help="dataset statistics (Table 1) and similarity histograms")
    p.add_argument("--dataset", required=True, help="dataset name or file path")
    p.add_argument("--data-dir", dest="data_dir", help="directory searched first for datasets")
    p.add_argument("--similarity", help="comma-separated metrics for the Figure 1 histogram, "
                                        "e.g. jaccard,ngram")
    p.add_argument("--plot", help="PNG path for the histogram [stats_<dataset>.png]")
    p.add_argument("--json", action="store_true", help="end with one JSON line")


def run_stats(args: argparse.Namespace) -> int:
    from rclrec.data.registry import load_dataset
    from rclrec.data.stats import dataset_stats

    ds = load_dataset(args.dataset, data_dir=args.data_dir)
    stats = dataset_stats(ds)
    for key, value in stats.items():
        print(f"{key:>26}: {value}")
    if args.similarity:
        from rclrec.data.split import contrast_units, leave_one_out
        from rclrec.similarity.histogram import different_target_pair_histogram, plot_histogram

        inputs, targets = contrast_units(leave_one_out(ds).train)
        hist = {}
        for metric in [m.strip() for m in args.similarity.split(",") if m.strip()]:
            hist[metric] = different_target_pair_histogram(inputs, targets, metric)
            print(f"different-target pairs by {metric} similarity: {hist[metric]}")
        plot = args.plot or f"stats_{Path(args.dataset).stem}.png"
        plot_histogram(hist, plot)
        print(f"written: {plot}")
        stats["similarity_histogram"] = hist
    if args.json:
        print(json.dumps(stats))
    return 0


def add_analyze_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("analyze", help="Figures 5 and 6 for a trained run")
    p.add_argument("--run", required=True, help="run directory written by `rclrec train`")
    p.add_argument("--centres", type=int, default=2000,
                   help="centres averaged for Figure 6 [2000]")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the centres and positives drawn [0]")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N [cpu]")


def run_analyze(args: argparse.Namespace) -> int:
    from rclrec.analysis import analyze_run

    result = analyze_run(args.run, centres=args.centres, seed=args.seed, device=args.device)
    d = result["mean_dot"]
    print(f"mean dot product with the centre ({result['centres']} centres, "
          f"{result['similarity']} weak positives): strong {d['strong']:.3f}  "
          f"weak {d['weak']:.3f}  negative {d['negative']:.3f}")
    print("order strong > weak > negative: " + ("yes" if result["order_strong_weak_negative"]
                                                 else "no"))
    for name, gap in result["strong_minus_weak"].items():
        print(f"strong - weak ({name}), paired over centres: {gap['mean']:.3f} +- {gap['se']:.3f} "
              f"(s.e.), positive for {gap['share_positive']:.1%} of centres")
    print(f"written: {Path(args.run) / 'analysis.json'}, fig6_dot_products.png, fig5_tsne.png")
    return 0


def add_export_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="a trained model as ONNX or TorchScript (docs/EXPORT.md)",
                       description="Write the run's encoder as a graph from left-padded "
                                   "histories (B, max_len) int64 to scores over all items, "
                                   "and <file>.json beside it: input/output names and the "
                                   "item ids.")
    p.add_argument("--run", required=True, help="run directory written by `rclrec train`")
    p.add_argument("--format", required=True, choices=("onnx", "torchscript"))
    p.add_argument("--out", help="model file [RUN/model.onnx or RUN/model.torchscript.pt]")


def run_export(args: argparse.Namespace) -> int:
    from rclrec.export import ExportError, description_path, export_run

    try:
        result = export_run(args.run, args.format, args.out)
    except ExportError as e:
        print(f"rclrec export: error: {e}", file=sys.stderr)
        return 2
    model_file = Path(args.out or Path(args.run) / result["model_file"])
    check = ("not checked (onnxruntime is not installed)" if result["check"] is None
             else f"max |score difference| to PyTorch {result['check']:.2g} on 64 histories")
    print(f"written: {model_file}, {description_path(model_file)} "
          f"({len(result['item_ids'])} items, max_len {result['max_len']}); {check}")
    return 0


def add_compare_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="finished runs' test metrics beside the paper's rows")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories of `rclrec train`")


def run_compare(args: argparse.Namespace) -> int:
    from rclrec.comparison import comparison_table

    print(comparison_table(args.runs))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rclrec", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    add_train_parser(sub)
    add_evaluate_parser(sub)
    add_recommend_parsers(sub)
    add_stats_parser(sub)
    add_analyze_parser(sub)
    add_export_parser(sub)
    add_compare_parser(sub)
    similarity_cli.add_parser(sub)
    experiments_cli.add_parsers(sub)
    return parser


COMMANDS = {"train": run_train, "evaluate": run_evaluate, "recommend": run_recommend,
            "serve": run_serve, "stats": run_stats, "analyze": run_analyze,
            "export": run_export, "compare": run_compare}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command in COMMANDS:
            return COMMANDS[args.command](args)
        if args.command in experiments_cli.COMMANDS:
            return experiments_cli.run(args)
        return similarity_cli.run(args)
    except KeyboardInterrupt:
        print("\ninterrupted; continue with --resume", file=sys.stderr)
        return 130
    except Exception as e:
        if not is_input_error(e):
            # A bug in rclrec: keep the traceback for the report, and say which command failed.
            traceback.print_exc()
            print(f"rclrec {args.command}: internal error ({type(e).__name__}); this is a bug "
                  f"in rclrec: please report it with the traceback above", file=sys.stderr)
            return 1
        hint = ("; free some space and continue with --resume" if args.command == "train"
                and getattr(e, "errno", None) in (errno.ENOSPC, errno.EDQUOT) else "")
        print(f"rclrec {args.command}: error: {describe(e)}{hint}", file=sys.stderr)
        return 2


def is_input_error(error: Exception) -> bool:
    """Whether an exception is about the input rather than rclrec's code: an OSError (a missing
    or unreadable file, a full disk, a read-only folder) or one of rclrec's InputErrors, its checks
    of files and settings (ConfigError, DataError, CorruptFile, ...). Any other exception,
    a plain ValueError included (rclrec's internal checks, numpy, torch), is a bug."""
    return isinstance(error, (OSError, InputError))


def describe(error: Exception) -> str:
    """One line: rclrec's own messages as they are; an OSError as "file: reason"."""
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        text = f"{error.filename}: {error.strerror}"
        if error.filename2 is not None:
            text += f" ({error.filename2})"
    else:
        text = str(error) or type(error).__name__
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
