"""Run a suite: plan its cells, search hyper-parameters, train or reuse every cell, and record
what was done and what is missing (with the reason) in ``results/suites/<group>.json``."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rclrec.config import ConfigError, load_config
from rclrec.files import read_json, write_json_atomic
from rclrec.grid.cells import CellUnavailable, run_cell
from rclrec.grid.search import coordinate_search, search_name
from rclrec.grid.suites import ALPHAS, PROFILES, Group, Profile, search_space, suites_of
from rclrec.methods import METHODS

DEFAULT_WORK = Path("runs") / "cells"


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass
class BenchmarkOptions:
    """What `rclrec benchmark` was asked for (None = the suite's or the profile's choice)."""

    profile: Profile = field(default_factory=lambda: PROFILES["smoke"])
    results: Path = Path("results") / "smoke"
    work: Path = DEFAULT_WORK
    datasets: tuple[str, ...] | None = None
    methods: tuple[str, ...] | None = None
    seeds: int | None = None
    device: str = "auto"
    threads: int | None = None  # CPU threads per cell (None = the config's)
    budget: int | None = None  # None = the profile's search budget
    use_budget: bool = False  # True: ``budget`` overrides the profile's (None = no limit)
    settings: dict[str, Any] = field(default_factory=dict)  # on top of the profile's (hashed)
    show_progress: bool = False
    train: bool = True  # False: reuse finished cells only, record the rest as missing
    log: Callable[[str], None] = _stderr


def dataset_key(name: str) -> str:
    """A file-name-safe key of a dataset name or path (``beauty``, ``synthetic-3``)."""
    return Path(name).stem.lower() if ("/" in name or "." in name) else name.lower()


def missing_method_reason(method: str) -> str | None:
    if method in METHODS:
        return None
    return f"missing method: {method!r} is not in rclrec.methods.METHODS"


def missing_dataset_reason(dataset: str) -> str | None:
    from rclrec.data.dataset import DataError
    from rclrec.data.registry import resolve_dataset

    try:
        resolve_dataset(dataset)
    except DataError:
        return f"dataset not found: {dataset!r} is in no data directory"
    return None


def write_dataset_record(results: Path, dataset: str, histogram_metrics: tuple[str, ...] = (),
                         log: Callable[[str], None] = _stderr) -> dict[str, Any]:
    """Table 1 statistics, and if asked per metric the Figure 1 histogram and where the alpha
    grid cuts the weak candidates, of a dataset; each written once."""
    from rclrec.data.registry import load_dataset
    from rclrec.data.stats import dataset_stats

    path = results / "datasets" / f"{dataset_key(dataset)}.json"
    record = read_json(path) if path.exists() else {"name": dataset}
    hist = record.setdefault("similarity_histogram", {})
    cuts = record.setdefault("alpha_cut", {})
    todo = [m for m in histogram_metrics if m not in hist or m not in cuts]
    if "stats" in record and not todo:
        return record
    ds = load_dataset(dataset)
    if "stats" not in record:
        record["stats"] = dataset_stats(ds)
    if todo:
        from rclrec.data.split import contrast_units, leave_one_out
        from rclrec.similarity.histogram import alpha_cut, similarity_profile
        from rclrec.similarity.spec import IndexSpec

        inputs, targets = contrast_units(leave_one_out(ds).train)
        for metric in todo:
            log(f"[datasets] {dataset}: Figure 1 histogram and alpha cut by {metric}")
            hist[metric], candidates = similarity_profile(inputs, targets, metric,
                                                          **IndexSpec(metric).params())
            cuts[metric] = alpha_cut(candidates, ALPHAS)
    write_json_atomic(path, record)
    return record


def variant_id(variant: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in variant.items()) or "-"


def run_group(group: Group, opts: BenchmarkOptions) -> dict[str, Any]:
    """Train or reuse every cell of a group; write and return its manifest."""
    prof = opts.profile
    datasets = opts.datasets or prof.datasets or group.datasets
    methods = [m for m in group.methods if opts.methods is None or m in opts.methods]
    n_seeds = group.seeds or opts.seeds or prof.seeds
    budget = opts.budget if opts.use_budget else prof.search_budget
    path = opts.results / "suites" / f"{group.name}.json"
    unrecorded: dict[str, Any] = {"train.device": opts.device}
    if opts.threads is not None:
        unrecorded["train.threads"] = opts.threads
    for dataset in datasets:
        no_data = missing_dataset_reason(dataset)
        if no_data is None:
            metrics = prof.histogram_metrics if group.kind == "analysis" else ()
            write_dataset_record(opts.results, dataset, metrics, opts.log)
        for method in methods:
            # A control searches nothing of its own: it trains at another method's choice.
            searched = group.tuned_by.get(method, method)
            reason = (no_data or missing_method_reason(method)
                      or missing_method_reason(searched))
            common = {**prof.settings, **opts.settings, **group.settings,
                      "data.dataset": dataset, "encoder.name": group.encoder, "train.seed": 0}
            search_base = {**common, "method": searched}
            base = {**common, "method": method}
            tuned: dict[str, Any] = {}
            search_file = None
            if reason is None:
                space = search_space(searched, prof)
                search_file = search_name(searched, group.encoder, dataset, search_base, space,
                                          budget, prof.rounds)
                try:
                    rec = coordinate_search(search_base, space, results=opts.results,
                                            work=opts.work, budget=budget, name=search_file,
                                            unrecorded=unrecorded,
                                            show_progress=opts.show_progress,
                                            train=opts.train, rounds=prof.rounds, log=opts.log)
                    tuned = rec["settings"]
                except CellUnavailable as e:
                    reason = str(e)
                except Exception as e:  # noqa: BLE001 - a broken method must not stop the grid
                    reason = f"failed in search: {type(e).__name__}: {e}"
            for variant in group.variants:
                entry = {"id": f"{group.name}/{dataset_key(dataset)}/{method}/"
                               f"{variant_id(variant)}",
                         "group": group.name, "kind": group.kind, "profile": prof.name,
                         "dataset": dataset_key(dataset), "method": method,
                         "label": group.labels.get(method, method), "encoder": group.encoder,
                         "variant": variant, "search": search_file, "tuned": tuned,
                         "cells": {}, "missing": []}
                if searched != method:
                    entry["tuned_by"] = searched
                if reason is not None:
                    entry["missing"].append({"seed": None, "reason": reason})
                    opts.log(f"[{group.name}] {dataset} {method} {variant_id(variant)}: "
                             f"skipped ({reason})")
                    _write_manifest(path, group, prof, entry)
                    continue
                for seed in range(n_seeds):
                    settings = {**base, **tuned, **variant, "train.seed": seed}
                    try:
                        cfg = load_config(None, {**settings, **unrecorded})
                        cell, reused = run_cell(cfg, opts.results, opts.work, settings=settings,
                                                show_progress=opts.show_progress,
                                                train=opts.train)
                    except CellUnavailable as e:
                        entry["missing"].append({"seed": seed, "reason": str(e)})
                        continue
                    except Exception as e:  # noqa: BLE001
                        entry["missing"].append({"seed": seed, "reason":
                                                 f"failed: {type(e).__name__}: {e}"})
                        opts.log(f"[{group.name}] {dataset} {method} seed {seed}: failed ({e})")
                        continue
                    entry["cells"][str(seed)] = cell["hash"]
                    how = "reused" if reused else f"{cell['seconds']:.0f}s"
                    opts.log(f"[{group.name}] {dataset} {method} {variant_id(variant)} seed "
                             f"{seed}: test NDCG@10 {cell['test']['NDCG@10']:.4f} ({how}, "
                             f"{cell['hash']})")
                if group.kind == "analysis" and "0" in entry["cells"]:
                    _analyse(entry, opts)
                _write_manifest(path, group, prof, entry)  # an interrupted grid keeps its cells
    # Every entry was written as it finished, merged with what other processes wrote meanwhile.
    if not path.exists():
        _write_manifest(path, group, prof, None)
    return read_json(path)


def _write_manifest(path: Path, group: Group, prof: Profile,
                    entry: dict[str, Any] | None) -> None:
    """Record one entry in the manifest on disk, keeping the entries other processes wrote
    (but not those of settings the group no longer has: its grid was changed)."""
    manifest = read_json(path) if path.exists() else {}
    current = {variant_id(v) for v in group.variants}
    entries = {e["id"]: e for e in manifest.get("entries", [])
               if variant_id(e["variant"]) in current}
    if entry is not None:
        entries[entry["id"]] = entry
    write_json_atomic(path, {"group": group.name, "kind": group.kind, "profile": prof.name,
                             "entries": list(entries.values())})


def _analyse(entry: dict[str, Any], opts: BenchmarkOptions) -> None:
    """Figures 5 and 6 of the seed-0 cell; the JSON and the t-SNE PNG are committed."""
    digest = entry["cells"]["0"]
    dest = opts.results / "analysis" / digest
    entry["analysis"] = f"analysis/{digest}/analysis.json"
    if (dest / "analysis.json").exists():
        return
    run_dir = opts.work / digest
    if not (run_dir / "model.pt").exists():
        entry["missing"].append({"seed": 0, "reason": f"analysis: no model.pt in {run_dir} "
                                                      f"(cell trained elsewhere)"})
        entry.pop("analysis")
        return
    from rclrec.analysis import analyze_run

    device = "cpu" if opts.device == "auto" else opts.device
    try:
        analyze_run(run_dir, centres=opts.profile.centres, seed=0, device=device)
    except Exception as e:  # noqa: BLE001
        entry["missing"].append({"seed": 0, "reason": f"analysis failed: {type(e).__name__}: "
                                                      f"{e}"})
        entry.pop("analysis")
        return
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("analysis.json", "fig5_tsne.png"):
        shutil.copyfile(run_dir / name, dest / name)
    opts.log(f"[analysis] {entry['dataset']} rcl: Figures 5 and 6 -> {dest}")


def run_suite(suite: str, opts: BenchmarkOptions) -> list[dict[str, Any]]:
    """Run every group of a suite (``all`` = every suite); return their manifests."""
    suites = suites_of(opts.profile)
    if suite not in suites:
        raise ConfigError(f"unknown suite {suite!r}; choose one of {', '.join(suites)}")
    return [run_group(group, opts) for group in suites[suite]]
