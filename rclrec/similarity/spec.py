"""What a weak-positive index holds (:class:`IndexSpec`) and how it is computed
(:class:`BuildOptions`): the one place a similarity config becomes index parameters.

An :class:`IndexSpec` is every setting that changes the index's content, so it also keys the
index cache; :class:`BuildOptions` only change the speed and where the work runs (the engines
and a Dask cluster select the same neighbours bit for bit). :func:`spec_of` reads the RCL
section of a run's config; RCL's training and the embedding analysis both build their index
through :func:`index_for_config`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rclrec.config import ConfigError
from rclrec.similarity.measures import DEFAULT_BLOCK_ENTRIES, METRICS

SELECTIONS = ("row", "global")
ENGINES = ("auto", "numba", "numpy")


@dataclass(frozen=True)
class IndexSpec:
    """Which neighbours the index keeps (docs/METHOD.md sections 3 and 5).

    Attributes:
        metric: jaccard | tfidf | ngram | levenshtein | semantic.
        alpha: fraction in (0, 1] of sequences (row) or of pairs (global) kept.
        selection: "row" (the paper's text) or "global" (the authors' code).
        max_neighbours: cap on neighbours per row (the memory bound).
        ngram: n of the ngram metric (the other metrics ignore it).
        exclude_same_target: drop pairs whose targets are equal.
        approx: levenshtein only: score only each row's top ``approx_candidates`` Jaccard
            neighbours (the exact mode scores every pair sharing an item).
        approx_candidates: candidates per row of the approx mode [4 * max_neighbours].
        candidate_budget: None (default): exact. Otherwise (numba engine; jaccard, ngram,
            tfidf) each row scans its items rarest first and stops before the posting lists
            would exceed this many entries; the candidates found are scored exactly, pairs
            sharing only the skipped popular items are missed (docs/RESULTS.md).
    """

    metric: str = "jaccard"
    alpha: float = 0.05
    selection: str = "row"
    max_neighbours: int = 256
    ngram: int = 2
    exclude_same_target: bool = True
    approx: bool = False
    approx_candidates: int | None = None
    candidate_budget: int | None = None

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ConfigError(f"metric={self.metric!r} is not one of {', '.join(METRICS)}")
        if not 0 < self.alpha <= 1:
            raise ConfigError(f"alpha must be in (0, 1], got {self.alpha}")
        if self.selection not in SELECTIONS:
            raise ConfigError(f"selection={self.selection!r} is not one of "
                              f"{', '.join(SELECTIONS)}")
        if self.max_neighbours < 1:
            raise ConfigError(f"max_neighbours must be >= 1, got {self.max_neighbours}")
        if self.ngram < 1:
            raise ConfigError(f"n-gram size must be >= 1, got {self.ngram}")
        if self.approx and self.metric != "levenshtein":
            raise ConfigError(f"approx mode is for levenshtein, not {self.metric!r} (for very "
                              f"skewed jaccard / ngram / tfidf data use candidate_budget)")

    @classmethod
    def of_index(cls, metric: str, info: dict[str, Any]) -> IndexSpec:
        """The spec an index was built with, read back from its ``info``."""
        return cls(metric, alpha=info["alpha"], selection=info["selection"],
                   max_neighbours=info["max_neighbours"], ngram=info.get("n", 2),
                   exclude_same_target=bool(info["exclude_same_target"]),
                   approx=bool(info.get("approx")),
                   approx_candidates=(info.get("approx_options") or {}).get("candidates"),
                   candidate_budget=info.get("candidate_budget"))

    def params(self) -> dict[str, Any]:
        """The metric's parameters for :mod:`rclrec.similarity.measures`: ``{"n": ngram}``."""
        return {"n": int(self.ngram)} if self.metric == "ngram" else {}

    def cache_options(self) -> dict[str, Any]:
        """The settings that key the cache file and are recorded in ``index.info`` (the keys
        and values of the earlier keyword API, so cached indexes stay valid)."""
        return {"alpha": self.alpha, "selection": self.selection,
                "max_neighbours": self.max_neighbours,
                "exclude_same_target": self.exclude_same_target, "approx": self.approx,
                **self.params(),
                **({"approx_options": self.approx_options()} if self.approx else {}),
                **({"candidate_budget": self.candidate_budget}
                   if self.candidate_budget else {})}

    def approx_options(self) -> dict[str, int] | None:
        return None if self.approx_candidates is None else {
            "candidates": self.approx_candidates}


@dataclass(frozen=True)
class BuildOptions:
    """How an index is computed; none of these changes which neighbours it holds.

    Attributes:
        engine: "auto" (the numba kernel for jaccard / ngram / tfidf when installed, else SciPy
            blocks), "numba" or "numpy" (SciPy blocks; the reference path).
        block_entries: bound on the entries of one block's sparse product (memory knob).
        workers: threads for rapidfuzz (levenshtein), -1 = all cores.
        show_progress: a tqdm bar over row blocks (stderr).
        client: a ``dask.distributed.Client`` (numba engine): the row blocks are scored on its
            workers and merged into the same arrays as a local build
            (``pip install rclrec[distributed]``).
    """

    engine: str = "auto"
    block_entries: int = DEFAULT_BLOCK_ENTRIES
    workers: int = -1
    show_progress: bool = False
    client: Any = None

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ConfigError(f"engine={self.engine!r} is not one of {', '.join(ENGINES)}")


def spec_of(rcl: Any) -> IndexSpec:
    """The index settings of a run's RCL section (similarity, ngram, alpha, selection,
    max_neighbours)."""
    return IndexSpec(metric=rcl.similarity, alpha=rcl.alpha, selection=rcl.selection,
                     max_neighbours=rcl.max_neighbours, ngram=rcl.ngram)
