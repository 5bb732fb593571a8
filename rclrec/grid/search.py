"""Hyper-parameter search on validation NDCG@10 over the paper's grids, with a cell budget.

Coordinate search: start from the config defaults, then for each parameter in order try every
value of its grid with the others at their best so far, and keep the best (ties keep the
earlier). With ``rounds`` above 1 (or None) the pass is repeated while the last one changed the
chosen settings and the budget lasts, so a method with a small grid can spend the same budget
as one with a large grid. Every tried configuration is a cell, so a repeated search costs
nothing. The record (every tried cell and the chosen one) is written as JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rclrec.config import load_config
from rclrec.files import read_json, write_json_atomic
from rclrec.grid.cells import run_cell
from rclrec.grid.suites import SearchParam

SELECT_METRIC = "NDCG@10"


def _value_of(cfg_dict: dict[str, Any], key: str) -> Any:
    node: Any = cfg_dict
    for part in key.split("."):
        node = node[part]
    return node


def search_name(method: str, encoder: str, dataset: str, base: dict[str, Any],
                space: tuple[SearchParam, ...], budget: int | None, rounds: int | None = 1
                ) -> str:
    spec = {"base": base, "space": [[p.name, p.keys, p.values] for p in space], "budget": budget}
    if rounds != 1:  # one-pass searches keep their names
        spec["rounds"] = rounds
    spec = json.dumps(spec, sort_keys=True, default=str)
    digest = hashlib.sha256(spec.encode()).hexdigest()[:8]
    return f"{method}-{encoder}-{Path(dataset).stem}-{digest}"


def coordinate_search(base: dict[str, Any], space: tuple[SearchParam, ...], *,
                      results: str | os.PathLike, work: str | os.PathLike,
                      budget: int | None = None, name: str | None = None,
                      unrecorded: dict[str, Any] | None = None, show_progress: bool = False,
                      train: bool = True, rounds: int | None = 1,
                      log: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Search ``space`` around ``base`` (flat dotted settings; the search seed is base's).

    Args:
        base: flat settings of every tried cell (method, dataset, encoder, profile, seed).
        space: the parameters, searched in this order.
        budget: the most cells tried (distinct configurations); None = the whole sweep.
        name: file name of the record under ``results/searches``; None = no file.
        unrecorded: settings that do not define the cells (train.device), applied last.
        train: False = only reuse finished cells (CellNotTrained otherwise).
        rounds: the most coordinate passes; None = until a pass changes nothing (or the budget
            is spent). A configuration tried before is not a new cell.

    Returns:
        The record: ``tried`` (settings, hash, valid/test metrics of each tried cell, in order),
        ``chosen`` (the tried entry with the best validation NDCG@10), ``settings`` (the chosen
        values of the searched keys), ``budget`` and ``exhausted`` (stopped by the budget),
        ``rounds`` (passes made; only where more than one was allowed).
    """
    from rclrec.run import resolve

    # Resolved: a baseline's unset setting starts from the value it trains with, not None.
    defaults = resolve(load_config(None, base)).to_dict()
    current = {k: _value_of(defaults, k) for p in space for k in p.keys}
    # A parameter that sets its keys to one value (dropout) starts from its first key's value.
    for p in space:
        if not any(isinstance(v, tuple) for v in p.values):
            for k in p.keys[1:]:
                current[k] = current[p.keys[0]]
    tried: list[dict[str, Any]] = []
    seen: dict[str, dict[str, Any]] = {}
    exhausted = False

    def evaluate(values: dict[str, Any], param: str | None) -> dict[str, Any] | None:
        nonlocal exhausted
        cfg = load_config(None, {**base, **values, **(unrecorded or {})})
        from rclrec.grid.cells import config_hash

        digest = config_hash(cfg)
        if digest in seen:
            return seen[digest]
        if budget is not None and len(tried) >= budget:
            exhausted = True
            return None
        cell, reused = run_cell(cfg, results, work, settings=dict(values),
                                show_progress=show_progress, train=train)
        entry = {"param": param, "settings": dict(values), "hash": digest, "reused": reused,
                 "valid": cell["valid"], "test": cell["test"]}
        log(f"  search {name or ''} {param or 'start'} {values}: valid {SELECT_METRIC} "
            f"{cell['valid'][SELECT_METRIC]:.4f}{' (reused)' if reused else ''}")
        tried.append(entry)
        seen[digest] = entry
        return entry

    best = evaluate(dict(current), None)
    passes = 0
    while rounds is None or passes < rounds:
        passes += 1
        start = best
        for p in space:
            for value in p.values:
                entry = evaluate({**current, **p.assign(value)}, p.name)
                if entry is None:
                    break
                if entry["valid"][SELECT_METRIC] > best["valid"][SELECT_METRIC]:
                    best = entry
            current = dict(best["settings"])
            if exhausted:
                break
        if exhausted or best is start:  # the budget is spent, or the pass changed nothing
            break
    record = {
        "name": name,
        "select_metric": f"valid {SELECT_METRIC}",
        "strategy": "coordinate",
        "base": base,
        "space": [{"name": p.name, "keys": list(p.keys),
                   "values": [list(v) if isinstance(v, tuple) else v for v in p.values]}
                  for p in space],
        "budget": budget,
        "exhausted": exhausted,
        "tried": tried,
        "chosen": best,
        "settings": dict(best["settings"]),
    }
    if rounds != 1:  # records of one-pass searches keep their layout
        record["rounds"] = passes
    if name is not None:
        path = Path(results) / "searches" / f"{name}.json"
        # A call that only reuses the cells the record lists keeps the record as the call that
        # trained them wrote it ("reused" says who trained what).
        hashes = [e["hash"] for e in tried]
        unchanged = (all(e["reused"] for e in tried) and path.exists()
                     and [e["hash"] for e in read_json(path)["tried"]] == hashes)
        if not unchanged:
            write_json_atomic(path, record)
    return record
