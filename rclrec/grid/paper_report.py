"""The paper-protocol report (`rclrec report --profile paper`, docs/REPORT.md).

Per row of Tables 2 and 3: mean +- std over seeds beside the paper's number, the hyper-parameters
the search chose, the epochs to the best, the cost per cell and where it ran, and a Welch t-test
of RCL against the row; per dataset, RCL against the best other row and against SASRec. Then the
controls (where RCL's gain comes from) and whether any searched setting of the contrast beats
the lambda-0 control by more than its seed spread. A row without cells says so: no number is
shown for a cell that is not there.
"""

from __future__ import annotations

import math
import os
import statistics
from pathlib import Path
from typing import Any

from rclrec.grid import paper
from rclrec.grid.cells import load_cell
from rclrec.grid.formatting import beside, markdown_table, mean_std
from rclrec.grid.report import (
    METRICS,
    Report,
    aggregate,
    entry_cells,
    load_results,
)
from rclrec.grid.suites import PAPER_BUDGET, PAPER_SPACES, PROFILES, group_of

PROFILE = "paper"
TEST_METRIC = "NDCG@10"
CONTRAST_KEYS = ("rcl.weight", "rcl.tau", "rcl.score")


# ---------------------------------------------------------------- statistics and cost


def welch(a: list[float], b: list[float]) -> tuple[float, float] | None:
    """Welch's t-test of mean(a) against mean(b): (t, two-sided p); None where it is undefined
    (fewer than 2 values on a side, or no spread on either)."""
    if len(a) < 2 or len(b) < 2 or statistics.variance(a) == statistics.variance(b) == 0:
        return None
    from scipy.stats import ttest_ind

    result = ttest_ind(a, b, equal_var=False)
    t, p = float(result.statistic), float(result.pvalue)
    return None if math.isnan(t) or math.isnan(p) else (t, p)


def p_text(p: float) -> str:
    """``p 0.042``; ``p < 0.001`` below what three decimals show."""
    return "p < 0.001" if p < 0.001 else f"p {p:.3f}"


def welch_text(a: list[float], b: list[float]) -> str:
    test = welch(a, b)
    if test is not None:
        return f"t {test[0]:+.2f}, {p_text(test[1])}"
    if len(a) < 2 or len(b) < 2:
        return f"— ({len(a)} vs {len(b)} seeds; needs 2 each)"
    return "— (no spread)"


SCREEN_ALPHA = 0.05  # family-wise: the chance that any screened cell passes with no effect


def sd(xs: list[float]) -> tuple[float, float]:
    """(mean, sample std; 0 for one value)."""
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def prediction_bound(reference: list[float], k: int, alpha: float = SCREEN_ALPHA) -> float:
    """The one-sided upper prediction bound of one new value of ``reference``'s distribution
    (normal, unknown variance), Bonferroni-corrected for ``k`` values compared with it: with
    no effect, the chance that any of the k exceeds it is at most ``alpha``."""
    from scipy.stats import t as student

    n = len(reference)
    mean, std = sd(reference)
    return mean + float(student.ppf(1 - alpha / max(k, 1), n - 1)) * std * math.sqrt(1 + 1 / n)


def extra_text(cells: list[dict[str, Any]]) -> str:
    """Mean extra sequences and CE positions per centre the rec. loss saw (as logged)."""
    logged = [c["extra_per_centre"] for c in cells if "extra_per_centre" in c]
    if not logged:
        return "—"
    return (f"{statistics.fmean(x['extra_sequences'] for x in logged):.2f} / "
            f"{statistics.fmean(x['extra_positions'] for x in logged):.1f}")


def share_base(rcl: list[float], sasrec: list[float]) -> float | None:
    """RCL's gain over SASRec (mean test NDCG@10) as the base of "share of RCL's gain": None
    unless RCL is above SASRec at Welch p < 0.05 (a gain near 0, or below it, would make the
    share flip sign or explode)."""
    test = welch(rcl, sasrec)
    if test is None or test[1] >= 0.05:
        return None
    gain = statistics.fmean(rcl) - statistics.fmean(sasrec)
    return gain if gain > 0 else None


def cell_cost(cell: dict[str, Any]) -> tuple[str, float]:
    """(unit, amount) of one cell: GPU-minutes on a GPU, core-hours on a CPU.

    On a CPU the core-hours are the CPU time of the run's epochs where every epoch recorded
    it (a shared machine stretches wall time, not CPU time; a lower bound: loading, the
    similarity index, the test ranking and other ranks' processes are not in it); otherwise
    threads x the longer of the run's time (resumed parts summed) and the call's wall time,
    an upper bound.
    """
    seconds = max(float(cell.get("seconds") or 0.0), float(cell.get("wall_seconds") or 0.0))
    if str(cell.get("device", "cpu")).lower() == "cpu":
        if cell.get("cpu_seconds"):
            return "core-h", float(cell["cpu_seconds"]) / 3600.0
        threads = cell.get("config", {}).get("train", {}).get("threads") or 1
        return "core-h", seconds * threads / 3600.0
    return "GPU-min", seconds / 60.0


def device_name(cell: dict[str, Any]) -> str:
    device = str(cell.get("device", "cpu"))
    return "CPU" if device.lower() == "cpu" else device.removeprefix("NVIDIA ")


def cost_text(cells: list[dict[str, Any]]) -> str:
    """Mean cost per cell, per unit (a CPU's core-hours and a GPU's minutes do not add)."""
    by_unit: dict[str, list[float]] = {}
    for c in cells:
        unit, amount = cell_cost(c)
        by_unit.setdefault(unit, []).append(amount)
    return " + ".join(f"{statistics.fmean(v):.2f} {u}" + (f" ({len(v)})" if len(by_unit) > 1
                                                           else "")
                      for u, v in sorted(by_unit.items())) or "—"


def total_cost_text(cells: list[dict[str, Any]]) -> str:
    by_unit: dict[str, float] = {}
    for c in cells:
        unit, amount = cell_cost(c)
        by_unit[unit] = by_unit.get(unit, 0.0) + amount
    return " + ".join(f"{v:.2f} {u}" for u, v in sorted(by_unit.items())) or "—"


def settings_text(settings: dict[str, Any]) -> str:
    """``lambda 0.2, score dot, tau 0.1, dropout 0.3`` from flat dotted settings."""
    # A baseline's searched contrast weight, temperature and score, named alike for all.
    baseline_names = {"ur_weight": "weight", "beta": "weight", "ur_tau": "tau",
                      "ccc_tau": "tau", "normalize": "cosine", "similarity": "score"}
    parts: dict[str, Any] = {}
    for key, value in settings.items():
        if key == "encoder.attn_dropout" and value == settings.get("encoder.dropout"):
            continue
        section, name = key.rsplit(".", 1) if "." in key else ("", key)
        if key == "rcl.weight":
            name = "lambda"
        elif section not in ("rcl", "data", "encoder", "train", "eval"):
            name = baseline_names.get(name, name)
        parts[name] = value
    return ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}"
                     for k, v in parts.items()) or "defaults"


def values(cells: list[dict[str, Any]], metric: str = TEST_METRIC, split: str = "test"
           ) -> list[float]:
    return [c[split][metric] for c in cells]


# ---------------------------------------------------------------- the report


class PaperReport(Report):
    def __init__(self, res: dict[str, Any], out: Path) -> None:
        super().__init__(res, out)
        # The cells of the searches too (their cost, and the grid check below).
        for s in res["searches"].values():
            for t in s["tried"]:
                if t["hash"] not in res["cells"]:
                    cell = load_cell(res["root"], t["hash"])
                    if cell is not None:
                        res["cells"][t["hash"]] = cell

    def entry_of(self, group: str, dataset: str, method: str,
                 variant: dict[str, Any] | None = None) -> dict[str, Any] | None:
        manifest = self.res["manifests"].get(group) or {"entries": []}
        for e in manifest["entries"]:
            if e["dataset"] == dataset and e["method"] == method and \
                    e["variant"] == (variant or {}):
                return e
        return None

    def base_entry(self, dataset: str, method: str) -> dict[str, Any] | None:
        """SASRec's or RCL's entry at its searched setting: the controls suite's, else Table
        2's (the same cells by hash where both were run)."""
        return (self.entry_of("control_base", dataset, method)
                or self.entry_of("table2", dataset, method))

    def search_text(self, entry: dict[str, Any]) -> str:
        tuned = {**entry.get("tuned", {}), **entry["variant"]}
        if entry.get("tuned_by"):  # a control reads none of the contrast's settings
            kept = {k: v for k, v in tuned.items() if k not in CONTRAST_KEYS}
            return f"{settings_text(kept)} ({entry['tuned_by']}'s search)"
        text = settings_text(tuned)
        s = self.res["searches"].get(entry.get("search") or "")
        if s is None:
            return f"{text} (no search record)"
        passes = (f", {s['rounds']} pass{'es' if s['rounds'] > 1 else ''}" if "rounds" in s
                  else "")
        return f"{text} ({len(s['tried'])} of {s['budget'] or 'no'} cells{passes})"

    # Tables 2 and 3
    def table(self, group: str, title: str) -> None:
        self.lines += [f"## {title}", ""]
        entries = [e for e in self.entries(group) if not e["variant"]]
        g = group_of(PROFILE, group)
        # The planned datasets, and any other a --datasets run filled.
        for dataset in dict.fromkeys([*g.datasets, *(e["dataset"] for e in entries)]):
            rows_e = [e for e in entries if e["dataset"] == dataset]
            standin = g.standins.get(dataset)
            heading = f"### {dataset} ({g.encoder} encoder; test, mean ± std over seeds)"
            if standin:
                heading = (f"### {dataset}: stand-in for {standin.upper()} ({g.encoder} encoder, "
                           f"max length 200; the paper's numbers are {standin.upper()}'s, shown "
                           f"for scale only)")
            self.lines += [heading, ""]
            cells_of = {e["method"]: entry_cells(self.res, e) for e in rows_e}
            if not any(cells_of.values()):
                why = ("optional: its file is not on this machine" if dataset in g.optional
                       else "not trained yet")
                self.lines += [f"**No cells yet** ({why}): 0 of {len(g.methods)} methods x "
                               f"their seeds. Nothing below is a result.", ""]
                continue
            paper_set = standin or dataset
            rcl = cells_of.get("rcl", [])
            rows = []
            for method in g.methods:
                e = next((x for x in rows_e if x["method"] == method), None)
                label = g.labels.get(method, method)
                cells = cells_of.get(method, [])
                if e is None or not cells:
                    rows.append([label, "0", *["missing"] * len(METRICS), "—", "—", "—", "—",
                                 "—"])
                    continue
                agg = aggregate(cells)
                metric_cols = [beside(*agg[m], paper.table2_value(paper_set, method, m,
                                                                   g.encoder))
                               for m in METRICS]
                best = statistics.fmean(c["best_epoch"] for c in cells)
                capped = sum(c["best_epoch"] == c["config"]["train"]["epochs"] for c in cells)
                run = statistics.fmean(c["epochs_run"] for c in cells)
                epochs = f"{best:.0f} of {run:.0f}" + (f" (cap hit {capped})" if capped else "")
                versus = ("—" if method == "rcl" else
                          welch_text(values(rcl), values(cells)))
                rows.append([label, str(len(cells)), *metric_cols, self.search_text(e), epochs,
                             cost_text(cells),
                             " / ".join(sorted({device_name(c) for c in cells})), versus])
            self.lines += markdown_table(["method", "seeds", *METRICS, "chosen (search)",
                                  "best epoch of run", "cost per cell", "ran on",
                                  f"RCL vs row, Welch ({TEST_METRIC})"], rows)
            self.lines += ["", *self.rcl_tests(cells_of, g.labels), ""]

    def rcl_tests(self, cells_of: dict[str, list[dict[str, Any]]],
                  labels: dict[str, str]) -> list[str]:
        """RCL against the best other row (by mean test NDCG@10) and against SASRec."""
        rcl = cells_of.get("rcl", [])
        others = {m: c for m, c in cells_of.items() if m != "rcl" and c}
        if not rcl or not others:
            return ["Welch tests: — (RCL or every other row has no cells)."]
        best = max(others, key=lambda m: statistics.fmean(values(others[m])))
        lines = []
        for name, method in (("the best other row", best), ("SASRec", "sasrec")):
            if method not in others:
                lines.append(f"RCL against {name}: — (no cells).")
                continue
            parts = [f"{m} {welch_text(values(rcl, m), values(others[method], m))}"
                     for m in ("NDCG@10", "HR@10")]
            lines.append(f"RCL against {name} ({labels.get(method, method)}): "
                         f"{'; '.join(parts)} (Welch, test, seeds as listed).")
        return [" ".join(lines)]

    # The controls
    def control_rows(self, dataset: str) -> list[tuple[str, str, dict[str, Any] | None]]:
        """(short name, label, manifest entry) of each row of the controls table."""
        rows: list[tuple[str, str, dict[str, Any] | None]] = [
            ("SASRec", "SASRec (its search, 3 seeds)", self.base_entry(dataset, "sasrec")),
            ("RCL", "RCL (its search, 3 seeds)", self.base_entry(dataset, "rcl")),
            ("(1)", "(1) RCL, lambda 0: positives with the rec. loss, no contrast",
             self.entry_of("control_lambda0", dataset, "rcl", {"rcl.weight": 0.0})),
            ("(2)", "(2) random sequences, as many, with the rec. loss, no contrast",
             self.entry_of("control_random", dataset, "random_positives")),
            ("(3)", "(3) SASRec, the centre repeated: RCL's extra sequences per step",
             self.entry_of("control_repeat", dataset, "repeated_centres")),
        ]
        for variant in group_of(PROFILE, "control_paper_rcl").variants:
            what = settings_text(variant) if variant else "its own search"
            rows.append((f"(4) {what}", f"(4) the paper's RCL, no rec. loss on positives: {what}",
                         self.entry_of("control_paper_rcl", dataset, "rcl", variant)))
        return rows

    def controls(self) -> None:
        self.lines += ["## Controls: where RCL's gain comes from", "",
                       "Each control trains at RCL's searched settings (the paper's RCL searches "
                       "its own), 3 seeds, test metrics. \"Share of the gain\": (row - SASRec) / "
                       "(RCL - SASRec) in mean test NDCG@10, shown only where RCL is above "
                       "SASRec at Welch p < 0.05 (\"—\" otherwise: a gain that is not there has "
                       "no shares). The controls match RCL in extra sequences per centre, not "
                       "in CE positions (sequences of other lengths hold other numbers of "
                       "targets): "
                       "the column \"extra sequences / CE positions\" shows both as measured in "
                       "training.", ""]
        found = [e["dataset"] for group in ("control_lambda0", "control_random",
                                            "control_repeat", "control_paper_rcl")
                 for e in self.entries(group)]  # (also records what is missing)
        for dataset in dict.fromkeys([*group_of(PROFILE, "control_lambda0").datasets, *found]):
            rows_e = self.control_rows(dataset)
            cells = {short: (entry_cells(self.res, e) if e else []) for short, _, e in rows_e}
            self.lines += [f"### {dataset}", ""]
            if not any(cells.values()):
                self.lines += ["**No cells yet**: none of these rows has been trained. Nothing "
                               "below is a result.", ""]
                continue
            sasrec, rcl = cells["SASRec"], cells["RCL"]
            gain = (statistics.fmean(values(rcl)) - statistics.fmean(values(sasrec))
                    if rcl and sasrec else None)
            shared = share_base(values(rcl), values(sasrec))
            rows = []
            for short, label, e in rows_e:
                c = cells[short]
                if not c:
                    rows.append([label, "0", "missing", "missing", "—", "—", "—", "—", "—"])
                    continue
                agg = aggregate(c)
                share = ("—" if shared is None else
                         f"{(agg[TEST_METRIC][0] - statistics.fmean(values(sasrec))) / shared:.0%}")
                rows.append([label, str(len(c)), mean_std(*agg["HR@10"]),
                             mean_std(*agg[TEST_METRIC]), self.search_text(e), extra_text(c),
                             share,
                             "—" if short == "RCL" else welch_text(values(rcl), values(c)),
                             "—" if short == "SASRec" else welch_text(values(c),
                                                                      values(sasrec))])
            self.lines += markdown_table(["row", "seeds", "HR@10", "NDCG@10", "settings",
                                          "extra sequences / CE positions per centre",
                                          "share of RCL's gain", "RCL vs row, Welch (NDCG@10)",
                                  "row vs SASRec, Welch (NDCG@10)"], rows)
            self.lines += ["", self.explanation(rows_e, cells, gain), ""]

    def explanation(self, rows_e, cells, gain: float | None) -> str:
        """Which controls RCL cannot be told apart from (p >= 0.05), with numbers."""
        rcl = values(cells["RCL"])
        if gain is None:
            return "What explains the gain: — (RCL or SASRec has no cells)."
        gain_test = welch_text(rcl, values(cells["SASRec"]))
        alike, apart = [], []
        for short, _, _ in rows_e[2:]:
            test = welch(rcl, values(cells[short]))
            if test is None:
                continue
            (alike if test[1] >= 0.05 else apart).append(f"{short} ({p_text(test[1])})")
        return (f"RCL - SASRec = {gain:+.4f} NDCG@10 ({gain_test}). Not told apart from RCL "
                f"at p < 0.05: {', '.join(alike) or 'none'}; below or above RCL at p < 0.05: "
                f"{', '.join(apart) or 'none'}. Rows with fewer than 2 seeds are left out.")

    def grid_check(self) -> None:
        """Does the contrast add anything: RCL against lambda 0 at the same settings, Welch."""
        self.lines += [
            "## Does the contrast add anything?", "",
            "**Tested**: RCL at the setting its search chose (seed 0, validation NDCG@10), "
            "trained at 3 seeds, against the same configuration with lambda = 0 (control (1): "
            "the same dropout, batch, positives and their rec. loss; tau and score do nothing "
            "at lambda 0), Welch's t-test on test NDCG@10 over the seeds. Test, not "
            "validation: the setting was picked on validation, which favours it there. "
            "\"yes\" only where RCL is above lambda 0 at p < 0.05.", ""]
        rows = []
        datasets = self.control_datasets("control_lambda0")
        for dataset in datasets:
            rcl = self.base_entry(dataset, "rcl")
            zero = self.entry_of("control_lambda0", dataset, "rcl", {"rcl.weight": 0.0})
            a = entry_cells(self.res, rcl) if rcl else []
            b = entry_cells(self.res, zero) if zero else []
            if not a or not b:
                rows.append([dataset, "—", "missing" if not a else mean_std(*sd(values(a))),
                             "missing" if not b else mean_std(*sd(values(b))), "—", "—",
                             "missing (RCL or lambda-0 cells)"])
                continue
            if {**rcl.get("tuned", {}), "rcl.weight": 0.0} != {**zero.get("tuned", {}),
                                                               **zero["variant"]}:
                rows.append([dataset, settings_text(rcl.get("tuned", {})), "—", "—", "—", "—",
                             "not comparable: lambda 0 was trained at other settings"])
                continue
            test = welch(values(a), values(b))
            diff = statistics.fmean(values(a)) - statistics.fmean(values(b))
            verdict = ("— (needs 2 seeds a side with spread)" if test is None else
                       "yes" if test[1] < 0.05 and diff > 0 else
                       "no: lambda 0 is above" if test[1] < 0.05 else
                       "no evidence (p >= 0.05)")
            rows.append([dataset, settings_text(rcl.get("tuned", {})),
                         f"{mean_std(*sd(values(a)))} ({len(a)})",
                         f"{mean_std(*sd(values(b)))} ({len(b)})", f"{diff:+.4f}",
                         welch_text(values(a), values(b)), verdict])
        self.lines += markdown_table(["dataset", "RCL's setting", "RCL, test NDCG@10 (seeds)",
                                      "lambda 0, same setting (seeds)", "difference",
                                      "Welch", "the contrast adds (5% level)"], rows)
        self.lines += ["", "The paper's RCL (no rec. loss on its positives) is compared with "
                       "SASRec, not with lambda 0 (which keeps that loss): row (4) of the "
                       "controls table, column \"row vs SASRec\".", ""]
        self.grid_screen(datasets)

    def control_datasets(self, group: str) -> list[str]:
        manifest = self.res["manifests"].get(group) or {"entries": []}
        return list(dict.fromkeys([*group_of(PROFILE, group).datasets,
                                   *(e["dataset"] for e in manifest["entries"])]))

    def grid_screen(self, datasets: list[str]) -> None:
        """Every searched cell against a Bonferroni-corrected prediction bound of the reference."""
        self.lines += [
            "### A screen of the searched cells (not a test of the contrast)", "",
            f"Each cell a search tried (seed 0, validation NDCG@10) against a one-sided "
            f"prediction bound of one more seed of the reference at level 1 - {SCREEN_ALPHA}/k "
            f"(mean + t(1 - {SCREEN_ALPHA}/k, n - 1) s sqrt(1 + 1/n), n its seeds, k the cells "
            f"screened: Bonferroni), so that with no effect at all the chance of any cell "
            f"above it is at most {SCREEN_ALPHA:.0%}. RCL's search is screened against lambda 0, "
            "the paper's RCL's against SASRec. The cells differ from the reference in dropout, "
            "score and tau too: a cell above is a setting to re-run at 3 seeds beside its own "
            "lambda 0, not evidence for the contrast.", ""]
        rows = []
        for dataset in datasets:
            zero = self.entry_of("control_lambda0", dataset, "rcl", {"rcl.weight": 0.0})
            for label, group, ref_label, ref in (
                    ("RCL", "table2", "lambda 0", zero),
                    ("paper's RCL", "control_paper_rcl", "SASRec",
                     self.base_entry(dataset, "sasrec"))):
                e = (self.base_entry(dataset, "rcl") if group == "table2"
                     else self.entry_of(group, dataset, "rcl"))
                s = self.res["searches"].get((e or {}).get("search") or "")
                ref_cells = entry_cells(self.res, ref) if ref else []
                if s is None or len(ref_cells) < 2:
                    rows.append([dataset, label, ref_label, "—", "—", "—", "—",
                                 f"missing (search or 2 {ref_label} seeds)"])
                    continue
                v = values(ref_cells, split="valid")
                tried = [t for t in s["tried"] if t["settings"].get("rcl.weight", 1) != 0]
                bar = prediction_bound(v, len(tried))
                above = [t for t in tried if t["valid"][TEST_METRIC] > bar]
                top = max(tried, key=lambda t: t["valid"][TEST_METRIC])
                rows.append([dataset, label, ref_label,
                             f"{mean_std(*sd(v))} ({len(v)} seeds)", f"{bar:.4f}",
                             f"{len(above)} of {len(tried)}",
                             f"{top['valid'][TEST_METRIC]:.4f} "
                             f"({settings_text(top['settings'])})",
                             "; ".join(settings_text(t["settings"]) for t in above) or "none"])
        self.lines += markdown_table(["dataset", "search", "reference", "reference, valid "
                                      "NDCG@10", "bound", "cells above", "best cell",
                                      "cells to re-run"], rows)
        self.lines.append("")

    def search_budgets(self) -> None:
        self.lines += ["## Search budget per method", "",
                       f"Every method gets the same budget: at most {PAPER_BUDGET} cells "
                       "(distinct configurations, seed 0, validation NDCG@10), coordinate "
                       "passes from the authors' defaults until a pass changes nothing. Grids "
                       "(rclrec/grid/suites.py, PAPER_SPACES; lambda {.1,..,.5}, tau "
                       "{.01,.05,.1,.5,1,5}, dropout {.1,..,.5}). RCL's one pass is the "
                       "budget (1 + 4 + 11 + 4 cells, its defaults lying in the grids); a method "
                       "with fewer values spends the rest on further passes; SASRec's grid "
                       "(dropout) has 5 settings in all.", ""]
        rows = [[method, "; ".join(f"{p.name} ({len(p.values)})" for p in space)]
                for method, space in PAPER_SPACES.items()]
        rows.append(["sasrec", "dropout (5)"])
        self.lines += markdown_table(["method", "searched, in order (values in the grid)"], rows)
        self.lines.append("")

    def cost_summary(self) -> None:
        cells = list(self.res["cells"].values())
        self.lines += ["## Cost", "",
                       f"All {len(cells)} cells (searches included): {total_cost_text(cells)}. "
                       "GPU-minutes are wall minutes of one grid process; benchmarks/gpu_grid.sh "
                       "runs several processes on one GPU, so a cell's GPU-minutes are of a "
                       "shared GPU. Core-hours on a CPU: the CPU hours of a run's epochs where it "
                       "recorded them (a lower bound), else threads x wall hours (an upper "
                       "bound on a shared machine).", ""]


def build_paper_report(results: str | os.PathLike, out: str | os.PathLike) -> str:
    out = Path(out)
    res = load_results(results)
    r = PaperReport(res, out)
    prof = PROFILES[PROFILE]
    n_cells = sum(1 for c in res["cells"].values())
    r.lines += ["# rclrec report: the paper's protocol", "",
                f"Rebuilt by `rclrec report --profile paper --results {results}` from the "
                "committed JSON only. Protocol (`--profile paper`): the paper's model (d 64, 2 "
                f"blocks, batch 256, full-softmax CE), at most {prof.settings['train.epochs']} "
                f"epochs with patience {prof.settings['train.patience']} on validation "
                f"NDCG@10, each method's grid searched on validation only within "
                f"{prof.search_budget} cells, then {prof.seeds} seeds of the chosen setting. "
                "Each number is followed by the paper's and the gap (ours - paper). RCL in "
                "Tables 2 and 3 is rclrec's default: with SASRec's window instances its positives "
                "also get the recommendation loss; the paper's RCL (without it) is control (4). "
                "The quick profile's report (20 epochs, no search) is docs/REPORT-quick.md.", ""]
    if n_cells == 0:
        r.lines += ["**No cell of the paper profile has been trained yet.** Every table below "
                    "is empty and says so; no number in this report is a result of this "
                    "protocol. The grid needs a GPU: the notes below (results/paper/NOTES.md) "
                    "give the one command and the estimated cost.", ""]
    r.notes()
    r.table1()
    r.table("table2", "Table 2: SASRec backbone")
    r.table("table3", "Table 3: FMLP-Rec backbone")
    r.controls()
    r.grid_check()
    r.search_budgets()
    r.searches()
    r.cost_summary()
    r.provenance()
    return r.write()
