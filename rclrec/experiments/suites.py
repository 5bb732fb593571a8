"""Suites (grids of runs), profiles (how big each run is) and the paper's search grids.

A suite is a list of groups; a group is methods x datasets x settings variants x seeds, each
cell trained with the hyper-parameters its search chose on validation NDCG@10.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# ---------------------------------------------------------------- profiles


@dataclass(frozen=True)
class Profile:
    """How big a cell is. ``settings`` are flat dotted overrides applied to every cell."""

    name: str
    settings: dict[str, Any]
    seeds: int  # default number of seeds (0 .. seeds - 1)
    search_budget: int | None  # max cells per search; None = the whole coordinate sweep
    datasets: tuple[str, ...] | None = None  # replaces every suite's datasets (smoke)
    centres: int = 2000  # Figure 6 centres
    histogram_metrics: tuple[str, ...] = ("jaccard", "ngram")  # Figure 1


PROFILES: dict[str, Profile] = {
    # Seconds per cell, for tests and CI: synthetic data, 1 epoch of 2 steps, a tiny encoder.
    "smoke": Profile("smoke", {"encoder.hidden_dim": 16, "encoder.inner_dim": 32,
                               "train.epochs": 1, "train.max_steps": 2, "train.threads": 1,
                               "train.batch_size": 64},
                     seeds=1, search_budget=2, datasets=("synthetic",), centres=200),
    # Minutes per cell on a 2-core CPU: the paper's model, fewer epochs, early stopping at 3,
    # and no search (a budget of 1 trains the defaults only): a 2-core CPU fits about 20 cells
    # of Beauty in a 3-hour sitting, not a search per method.
    "quick": Profile("quick", {"train.epochs": 20, "train.patience": 3}, seeds=1,
                     search_budget=1),
    # The paper's settings (200 epochs, patience 10, d = 64, batch 256): meant for a GPU.
    "full": Profile("full", {}, seeds=3, search_budget=None),
}

# ---------------------------------------------------------------- search grids (METHOD.md 4)

LAMBDAS = (0.1, 0.2, 0.3, 0.4, 0.5)
ALPHAS = (0.025, 0.05, 0.1, 0.15, 0.2, 0.25)
TAUS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0)
DROPOUTS = (0.1, 0.2, 0.3, 0.4, 0.5)


@dataclass(frozen=True)
class SearchParam:
    """One searched hyper-parameter: a name, the config keys it sets together, its grid."""

    name: str
    keys: tuple[str, ...]
    values: tuple[float, ...]


DROPOUT = SearchParam("dropout", ("encoder.dropout", "encoder.attn_dropout"), DROPOUTS)
LAMBDA = SearchParam("lambda", ("rcl.weight",), LAMBDAS)
TAU = SearchParam("tau", ("rcl.tau",), TAUS)
ALPHA = SearchParam("alpha", ("rcl.alpha",), ALPHAS)

# Coordinate order of the search; the first value tried of each is the config default.
SEARCH_SPACES: dict[str, tuple[SearchParam, ...]] = {"rcl": (LAMBDA, TAU, ALPHA, DROPOUT)}
DEFAULT_SPACE: tuple[SearchParam, ...] = (DROPOUT,)


def search_space(method: str) -> tuple[SearchParam, ...]:
    return SEARCH_SPACES.get(method, DEFAULT_SPACE)


# ---------------------------------------------------------------- suites

BASELINES = ("sasrec", "cl4srec", "duorec", "ct4rec", "mclrec", "contrarec", "hpm")
# The default similarity first, so a partly filled ablation has its main column.
SIMILARITIES = ("ngram", "jaccard", "tfidf", "levenshtein", "semantic")
# rcl first: the variant every other one is compared with.
VARIANTS = ("rcl", "unweight", "weak", "strong", "three_pairs")


@dataclass(frozen=True)
class Group:
    """Methods x datasets x variants x seeds.

    Attributes:
        name: the group's name (also its manifest file and report section).
        kind: table | ablation | alpha | analysis (how the report reads it).
        methods: method names of ``rclrec.methods.METHODS`` (absent ones are recorded missing).
        datasets: dataset names; ``optional`` ones are recorded missing when not found.
        encoder: encoder.name of every cell.
        variants: settings (flat dotted keys) applied on top of the tuned ones, one per column.
        labels: display names of methods.
        seeds: a fixed number of seeds (the analysis needs one), else the --seeds / profile.
    """

    name: str
    kind: str
    methods: tuple[str, ...]
    datasets: tuple[str, ...]
    optional: tuple[str, ...] = ()
    encoder: str = "sasrec"
    variants: tuple[dict[str, Any], ...] = ({},)
    labels: dict[str, str] = field(default_factory=dict)
    seeds: int | None = None


TABLE2 = Group("table2", "table", (*BASELINES, "rcl"), ("beauty", "sports", "yelp", "ml-1m"),
               optional=("ml-1m",),
               labels={"sasrec": "SASRec", "cl4srec": "CL4SRec", "duorec": "DuoRec",
                       "ct4rec": "CT4Rec", "mclrec": "MCLRec", "contrarec": "ContraRec",
                       "hpm": "HPM", "rcl": "RCL"})
TABLE3 = Group("table3", "table", ("sasrec", "hpm", "rcl"), ("yelp", "beauty"), encoder="fmlp",
               labels={"sasrec": "FMLP", "hpm": "FMLP+HPM", "rcl": "FMLP+RCL"})
ABLATION = Group("ablation", "ablation", ("rcl",), ("beauty",),
                 variants=tuple({"rcl.variant": v, "rcl.similarity": s}
                                for s in SIMILARITIES for v in VARIANTS))
# Figure 4 sweeps alpha on Jaccard with the neighbour cap lifted. On Beauty no sequence has more
# 2-gram candidates (different-target sequences with a shared bigram, at most 397) than
# k = ceil(alpha (N - 1)) = 560 at the smallest alpha, so on the default 2-grams every alpha keeps
# the same weak positives and the sweep would train one model six times; with Jaccard the cut
# binds (6.7% of rows at 0.025). The report prints this cut table (datasets/*.json "alpha_cut").
# 8,192 lies above k at alpha 0.25 on Beauty (5,591): alpha, not the cap, sets k.
ALPHA_SWEEP = Group("alpha", "alpha", ("rcl",), ("beauty",),
                    variants=tuple({"rcl.alpha": a, "rcl.similarity": "jaccard",
                                    "rcl.max_neighbours": 8192} for a in ALPHAS))
ANALYSIS = Group("analysis", "analysis", ("rcl",), ("beauty",), seeds=1)

SUITES: dict[str, tuple[Group, ...]] = {
    "table2": (TABLE2,),
    "table3": (TABLE3,),
    "ablation": (ABLATION,),
    "alpha": (ALPHA_SWEEP,),
    "analysis": (ANALYSIS,),
}
SUITES["all"] = tuple(g for name in ("table2", "table3", "ablation", "alpha", "analysis")
                      for g in SUITES[name])
GROUPS: dict[str, Group] = {g.name: g for g in SUITES["all"]}
