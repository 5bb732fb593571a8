"""Suites (grids of runs), profiles (how big each run is) and the paper's search grids.

A suite is a list of groups; a group is methods x datasets x settings variants x seeds, each
cell trained with the hyper-parameters its search chose on validation NDCG@10.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

# ---------------------------------------------------------------- profiles


@dataclass(frozen=True)
class Profile:
    """How big a cell is. ``settings`` are flat dotted overrides applied to every cell.

    ``spaces`` (method -> searched parameters) and ``suites`` replace the module's defaults
    (``SEARCH_SPACES``, ``SUITES``) for this profile; ``rounds`` is the most coordinate passes
    of a search (None: until a pass changes nothing or the budget is spent).
    """

    name: str
    settings: dict[str, Any]
    seeds: int  # default number of seeds (0 .. seeds - 1)
    search_budget: int | None  # max cells per search; None = the whole coordinate sweep
    datasets: tuple[str, ...] | None = None  # replaces every suite's datasets (smoke)
    centres: int = 2000  # Figure 6 centres
    histogram_metrics: tuple[str, ...] = ("jaccard", "ngram")  # Figure 1
    spaces: dict[str, tuple[SearchParam, ...]] | None = None
    default_space: tuple[SearchParam, ...] | None = None
    rounds: int | None = 1
    suites: dict[str, tuple[Group, ...]] | None = None


# ---------------------------------------------------------------- search grids (docs/METHOD.md 4)

LAMBDAS = (0.1, 0.2, 0.3, 0.4, 0.5)
ALPHAS = (0.025, 0.05, 0.1, 0.15, 0.2, 0.25)
TAUS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0)
DROPOUTS = (0.1, 0.2, 0.3, 0.4, 0.5)


@dataclass(frozen=True)
class SearchParam:
    """One searched hyper-parameter: a name, the config keys it sets together, its grid.

    A scalar value sets every key (dropout: hidden and attention); a tuple value sets the keys
    pairwise, so one parameter can sweep a product (the score x temperature grid).
    """

    name: str
    keys: tuple[str, ...]
    values: tuple[Any, ...]

    def assign(self, value: Any) -> dict[str, Any]:
        """The settings that one grid value stands for."""
        if isinstance(value, tuple):
            return dict(zip(self.keys, value, strict=True))
        return {k: value for k in self.keys}


DROPOUT = SearchParam("dropout", ("encoder.dropout", "encoder.attn_dropout"), DROPOUTS)
LAMBDA = SearchParam("lambda", ("rcl.weight",), LAMBDAS)
TAU = SearchParam("tau", ("rcl.tau",), TAUS)
ALPHA = SearchParam("alpha", ("rcl.alpha",), ALPHAS)

# Coordinate order of the search; the first value tried of each is the config default.
SEARCH_SPACES: dict[str, tuple[SearchParam, ...]] = {"rcl": (LAMBDA, TAU, ALPHA, DROPOUT)}
DEFAULT_SPACE: tuple[SearchParam, ...] = (DROPOUT,)


def _score_tau(name: str, score_key: str, tau_key: str, scores: tuple[Any, Any]) -> SearchParam:
    """Both similarity scores at every temperature of the grid, as one parameter: the paper's
    raw dot product is tried at the low temperatures too, not only at the best cosine one."""
    return SearchParam(name, (score_key, tau_key), tuple((s, t) for s in scores for t in TAUS))


# The paper profile: every contrastive method searches its contrastive weight on the lambda grid
# and its temperature on the tau grid (with both scores where it has a choice), then dropout;
# the authors' defaults are the start, tried first. RCL's alpha is left out: on 2-grams the
# smallest alpha already keeps every weak candidate of every row (docs/RESULTS.md, "Where
# top-alpha binds"), so its sweep would train one model six times.
_DOT_COS = ("dot", "cos")


def _weight(method: str, key: str = "weight") -> SearchParam:
    return SearchParam("weight", (f"{method}.{key}",), LAMBDAS)


def _tau(method: str, key: str = "tau") -> SearchParam:
    return SearchParam("tau", (f"{method}.{key}",), TAUS)


PAPER_SPACES: dict[str, tuple[SearchParam, ...]] = {
    "rcl": (LAMBDA, _score_tau("score x tau", "rcl.score", "rcl.tau", ("cosine", "dot")),
            DROPOUT),
    "cl4srec": (_weight("cl4srec"), _score_tau("similarity x tau", "cl4srec.similarity",
                                                "cl4srec.tau", _DOT_COS), DROPOUT),
    "duorec": (_weight("duorec"), _score_tau("similarity x tau", "duorec.similarity",
                                              "duorec.tau", _DOT_COS), DROPOUT),
    "hpm": (_weight("hpm"), _score_tau("normalize x tau", "hpm.normalize", "hpm.tau",
                                        (False, True)), DROPOUT),
    # CT4Rec's and ContraRec's contrasts are cosine by construction: the temperature alone.
    "ct4rec": (_weight("ct4rec", "ur_weight"), _tau("ct4rec", "ur_tau"), DROPOUT),
    "contrarec": (_weight("contrarec"), _tau("contrarec", "ccc_tau"), DROPOUT),
    # MCLRec: the meta-contrast weight (its lmd stays the scripts' per-dataset value).
    "mclrec": (_weight("mclrec", "beta"), _tau("mclrec"), DROPOUT),
}
# Every method gets this many cells: RCL's one pass over its grid (1 + 4 + 11 + 4). A method
# with a smaller grid spends the rest on further coordinate passes until one changes nothing;
# SASRec's grid (dropout) has 5 settings in all.
PAPER_BUDGET = 20


def search_space(method: str, profile: Profile | None = None) -> tuple[SearchParam, ...]:
    """The parameters searched for ``method`` (the profile's grids where it has its own)."""
    if profile is not None and profile.spaces is not None:
        return profile.spaces.get(method, profile.default_space or DEFAULT_SPACE)
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
        settings: applied before the search (part of what is searched from, unlike variants).
        tuned_by: method -> the method whose search picks its hyper-parameters (a control
            trains at RCL's chosen settings instead of searching its own).
        standins: dataset -> the paper's dataset it stands in for (its row is marked so).
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
    settings: dict[str, Any] = field(default_factory=dict)
    tuned_by: dict[str, str] = field(default_factory=dict)
    standins: dict[str, str] = field(default_factory=dict)


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
# 2-gram candidates (different-target sequences with a shared bigram) than
# k = ceil(alpha (N - 1)) at the smallest alpha, so on the default 2-grams every alpha keeps the
# same weak positives and the sweep would train one model six times; with Jaccard the cut binds
# (docs/RESULTS.md, "Where top-alpha binds"). The report prints this cut table (datasets/*.json
# "alpha_cut"). The cap of 8,192 lies above k at the largest alpha on Beauty: alpha, not the
# cap, sets k.
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

# ---------------------------------------------------------------- the paper profile's suites

# ML-1M is not obtainable here: ML-100K (max length 200, as MovieLens) stands in for it, and
# ML-1M's row runs wherever its file is found (data/registry.py reads GroupLens' ratings.dat).
TABLE2_PAPER = replace(TABLE2, datasets=("beauty", "sports", "yelp", "ml-100k", "ml-1m"),
                       standins={"ml-100k": "ml-1m"})
TABLE3_PAPER = replace(TABLE3, datasets=("yelp",))  # the paper's only Table 3 dataset
# Where RCL's gain comes from, each at RCL's searched settings, 3 seeds (SASRec and RCL
# themselves are Table 2's cells): (1) lambda 0: the positives keep their recommendation loss,
# no contrast; (2) as many random training sequences per centre as RCL draws positives, with
# the recommendation loss, no contrast; (3) SASRec with the centre itself repeated as often:
# RCL's number of extra sequences per step; (4) the paper's RCL, positives without the
# recommendation loss, searched on its own, and at the raw dot product at the grid's low taus.
CONTROL_DATASETS = ("beauty", "yelp")
# SASRec and RCL at their searched settings, 3 seeds (the same cells as Table 2's, by hash):
# what the controls are compared with, and RCL beside lambda 0 is the controlled test of the
# contrast, so the controls suite holds them too.
CONTROL_BASE = Group("control_base", "control", ("sasrec", "rcl"), CONTROL_DATASETS,
                     labels={"sasrec": "SASRec", "rcl": "RCL"})
CONTROL_LAMBDA0 = Group("control_lambda0", "control", ("rcl",), CONTROL_DATASETS,
                        variants=({"rcl.weight": 0.0},), labels={"rcl": "RCL, lambda 0"})
CONTROL_RANDOM = Group("control_random", "control", ("random_positives",), CONTROL_DATASETS,
                       tuned_by={"random_positives": "rcl"},
                       labels={"random_positives": "random positives, rec. loss"})
CONTROL_REPEAT = Group("control_repeat", "control", ("repeated_centres",), CONTROL_DATASETS,
                       tuned_by={"repeated_centres": "rcl"},
                       labels={"repeated_centres": "SASRec, RCL's extra sequences per step"})
LOW_TAUS = (0.01, 0.05, 0.1)
CONTROL_PAPER_RCL = Group("control_paper_rcl", "control", ("rcl",), CONTROL_DATASETS,
                          settings={"rcl.rec_loss_on_positives": False},
                          variants=({}, *({"rcl.score": "dot", "rcl.tau": t} for t in LOW_TAUS)),
                          labels={"rcl": "paper's RCL (no rec. loss on positives)"})
CONTROLS = (CONTROL_BASE, CONTROL_LAMBDA0, CONTROL_RANDOM, CONTROL_REPEAT, CONTROL_PAPER_RCL)
SUITES["controls"] = CONTROLS  # not in "all": the quick profile's grid stays as it was
GROUPS: dict[str, Group] = {g.name: g for g in (*SUITES["all"], *CONTROLS)}

PAPER_SUITES: dict[str, tuple[Group, ...]] = {
    **SUITES,
    "table2": (TABLE2_PAPER,),
    "table3": (TABLE3_PAPER,),
    "controls": CONTROLS,
}
PAPER_SUITES["all"] = (TABLE2_PAPER, TABLE3_PAPER, *CONTROLS)

# ---------------------------------------------------------------- profiles

PROFILES: dict[str, Profile] = {
    # Seconds per cell, for tests and CI: synthetic data, 1 epoch of 2 steps, a tiny encoder.
    "smoke": Profile("smoke", {"encoder.hidden_dim": 16, "encoder.inner_dim": 32,
                               "train.epochs": 1, "train.max_steps": 2, "train.threads": 1,
                               "train.batch_size": 64},
                     seeds=1, search_budget=2, datasets=("synthetic",), centres=200),
    # Minutes per cell on a 2-core CPU: the paper's model, fewer epochs, early stopping at 3,
    # and no search (a budget of 1 trains the defaults only): a CPU sitting fits a grid of
    # cells, not a search per method (docs/RESULTS.md has the timings).
    "quick": Profile("quick", {"train.epochs": 20, "train.patience": 3}, seeds=1,
                     search_budget=1),
    # The paper's settings (200 epochs, patience 10, d = 64, batch 256): meant for a GPU.
    "full": Profile("full", {}, seeds=3, search_budget=None),
    # The paper's protocol (as full) with the paper's search: every method searches its own
    # grid (PAPER_SPACES) on validation NDCG@10 within the same budget, then 3 seeds of the
    # chosen setting; Table 2 with ML-100K standing in for ML-1M, Table 3 on Yelp, the controls.
    "paper": Profile("paper", {"train.epochs": 200, "train.patience": 10}, seeds=3,
                     search_budget=PAPER_BUDGET, spaces=PAPER_SPACES, rounds=None,
                     suites=PAPER_SUITES),
}


def suites_of(profile: Profile) -> dict[str, tuple[Group, ...]]:
    return profile.suites if profile.suites is not None else SUITES


def group_of(profile_name: str, group: str) -> Group:
    """A group by name as the profile defines it (the paper profile's Table 2 has ML-100K)."""
    prof = PROFILES.get(profile_name)
    if prof is None or prof.suites is None:
        return GROUPS[group]
    return {g.name: g for gs in prof.suites.values() for g in gs}[group]
