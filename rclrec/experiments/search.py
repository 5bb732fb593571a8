"""Hyper-parameter search on validation NDCG@10 over the paper's grids, with a cell budget.

Coordinate search: start from the config defaults, then for each parameter in order try every
value of its grid with the others at their best so far, and keep the best (ties keep the
earlier). Every tried configuration is a cell, so a repeated search costs nothing. The record
(every tried cell and the chosen one) is written as JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rclrec.config import load_config
from rclrec.experiments.cells import run_cell
from rclrec.experiments.suites import SearchParam
from rclrec.files import read_json, write_json_atomic

SELECT_METRIC = "NDCG@10"


def _value_of(cfg_dict: dict[str, Any], key: str) -> Any:
    node: Any = cfg_dict
    for part in key.split("."):
        node = node[part]
    return node


def search_name(method: str, encoder: str, dataset: str, base: dict[str, Any],
                space: tuple[SearchParam, ...], budget: int | None) -> str:
    spec = json.dumps({"base": base, "space": [[p.name, p.keys, p.values] for p in space],
                       "budget": budget}, sort_keys=True, default=str)
    digest = hashlib.sha256(spec.encode()).hexdigest()[:8]
    return f"{method}-{encoder}-{Path(dataset).stem}-{digest}"


def coordinate_search(base: dict[str, Any], space: tuple[SearchParam, ...], *,
                      results: str | os.PathLike, work: str | os.PathLike,
                      budget: int | None = None, name: str | None = None,
                      unrecorded: dict[str, Any] | None = None, show_progress: bool = False,
                      train: bool = True,
                      log: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Search ``space`` around ``base`` (flat dotted settings; the search seed is base's).

    Args:
        base: flat settings of every tried cell (method, dataset, encoder, profile, seed).
        space: the parameters, searched in this order.
        budget: the most cells tried (distinct configurations); None = the whole sweep.
        name: file name of the record under ``results/searches``; None = no file.
        unrecorded: settings that do not define the cells (train.device), applied last.
        train: False = only reuse finished cells (CellNotTrained otherwise).

    Returns:
        The record: ``tried`` (settings, hash, valid/test metrics of each tried cell, in order),
        ``chosen`` (the tried entry with the best validation NDCG@10), ``settings`` (the chosen
        values of the searched keys), ``budget`` and ``exhausted`` (stopped by the budget).
    """
    defaults = load_config(None, base).to_dict()
    current = {k: _value_of(defaults, k) for p in space for k in p.keys}
    # A parameter whose keys hold different values starts from its first key's value.
    for p in space:
        for k in p.keys[1:]:
            current[k] = current[p.keys[0]]
    tried: list[dict[str, Any]] = []
    seen: dict[str, dict[str, Any]] = {}
    exhausted = False

    def evaluate(values: dict[str, Any], param: str | None) -> dict[str, Any] | None:
        nonlocal exhausted
        cfg = load_config(None, {**base, **values, **(unrecorded or {})})
        from rclrec.experiments.cells import config_hash

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
    for p in space:
        for value in p.values:
            candidate = {**current, **{k: value for k in p.keys}}
            entry = evaluate(candidate, p.name)
            if entry is None:
                break
            if entry["valid"][SELECT_METRIC] > best["valid"][SELECT_METRIC]:
                best = entry
        current = dict(best["settings"])
        if exhausted:
            break
    record = {
        "name": name,
        "select_metric": f"valid {SELECT_METRIC}",
        "strategy": "coordinate",
        "base": base,
        "space": [{"name": p.name, "keys": list(p.keys), "values": list(p.values)}
                  for p in space],
        "budget": budget,
        "exhausted": exhausted,
        "tried": tried,
        "chosen": best,
        "settings": dict(best["settings"]),
    }
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
