"""`rclrec report`: a Markdown report rebuilt from the committed JSON of a results folder.

Every number of ours sits beside the paper's and the gap (ours - paper); every figure is a PNG
beside the report (``<out dir>/report/*.png``); cells a suite expected but does not have are
listed with their reason.
"""

from __future__ import annotations

import os
import statistics
from pathlib import Path
from typing import Any

from rclrec.files import read_json, write_text_atomic
from rclrec.grid import paper
from rclrec.grid.cells import load_cell
from rclrec.grid.formatting import beside, markdown_table, mean_std
from rclrec.grid.suites import ALPHAS, PROFILES, SIMILARITIES, VARIANTS, group_of

METRICS = paper.METRICS


# ---------------------------------------------------------------- loading


def _read_json_dir(path: Path) -> dict[str, Any]:
    if not path.is_dir():
        return {}
    return {p.stem: read_json(p) for p in sorted(path.glob("*.json"))}


def load_results(results: str | os.PathLike) -> dict[str, Any]:
    """Everything the report reads: manifests, their cells, searches, datasets, analyses."""
    results = Path(results)
    manifests = _read_json_dir(results / "suites")
    cells: dict[str, dict[str, Any]] = {}
    for manifest in manifests.values():
        for entry in manifest["entries"]:
            for digest in entry["cells"].values():
                cell = load_cell(results, digest)
                if cell is not None:
                    cells[digest] = cell
    return {"root": results, "manifests": manifests, "cells": cells,
            "searches": _read_json_dir(results / "searches"),
            "datasets": _read_json_dir(results / "datasets")}


def entry_cells(res: dict[str, Any], entry: dict[str, Any]) -> list[dict[str, Any]]:
    return [res["cells"][h] for h in entry["cells"].values() if h in res["cells"]]


def aggregate(cells: list[dict[str, Any]], split: str = "test") -> dict[str, tuple[float, float]]:
    """metric -> (mean, std over seeds; 0 for one seed)."""
    out = {}
    for metric in cells[0][split] if cells else ():
        values = [c[split][metric] for c in cells]
        out[metric] = (statistics.fmean(values),
                       statistics.stdev(values) if len(values) > 1 else 0.0)
    return out


# ---------------------------------------------------------------- formatting


def _f(x: float | None, digits: int = 4) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:+.2f}%"


def _speed(cells: list[dict[str, Any]]) -> list[str]:
    """Mean training seconds per epoch, best epoch, seconds (with validation) to the best, and
    the machine they were taken on (seconds from a CPU and a GPU do not compare)."""
    if not cells:
        return ["—", "—", "—", "—"]
    best = statistics.fmean(c["best_epoch"] for c in cells)
    # Best at the last allowed epoch: still improving when the epoch cap stopped it.
    capped = sum(c["best_epoch"] == c["config"]["train"]["epochs"] for c in cells)
    flag = f" (cap hit in {capped}/{len(cells)})" if capped else ""
    # Seconds are averaged per machine: a CPU's and a GPU's do not mix into one number.
    by_machine: dict[str, list[dict[str, Any]]] = {}
    for c in cells:
        name = "CPU" if c["device"] == "cpu" else str(c["device"]).removeprefix("NVIDIA ")
        by_machine.setdefault(name.split()[0], []).append(c)
    machines = sorted(by_machine)

    def mean(key: str, fmt: str) -> str:
        return " / ".join(format(statistics.fmean(c[key] for c in by_machine[m]), fmt)
                          for m in machines)

    return [mean("seconds_per_epoch", ".1f"), f"{best:.1f}{flag}", mean("seconds_to_best", ".0f"),
            " / ".join(machines)]


def improvement(ours: dict[str, float], method: str = "rcl") -> dict[str, float | None]:
    """The paper's "Improv.": (method - best other) / best other, per metric.

    Args:
        ours: {method: value} for one metric, all methods of the table row.
    """
    others = [v for m, v in ours.items() if m != method and v is not None]
    if ours.get(method) is None or not others or max(others) <= 0:
        return None  # type: ignore[return-value]
    best = max(others)
    return (ours[method] - best) / best  # type: ignore[return-value]


# ---------------------------------------------------------------- plots


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    from rclrec.files import atomic_write

    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    _plt().close(fig)


# ---------------------------------------------------------------- sections


def figure_dir(out: Path) -> Path:
    """Where a report's PNGs go: report/ beside REPORT.md, report-full/ beside REPORT-full.md
    (two reports in one folder do not overwrite each other's figures)."""
    return out.parent / out.stem.lower()


class Report:
    def __init__(self, res: dict[str, Any], out: Path) -> None:
        self.res = res
        self.out = out
        self.fig_dir = figure_dir(out)
        self.lines: list[str] = []
        self.missing: list[str] = []

    def write(self) -> str:
        """Close with the missing cells and write the report (atomically); return its text."""
        self.lines += ["## Missing cells", ""]
        self.lines += [f"- {m}" for m in self.missing] or ["None."]
        text = "\n".join(self.lines) + "\n"
        write_text_atomic(self.out, text)
        return text

    def link(self, path: Path, alt: str) -> None:
        rel = os.path.relpath(path, self.out.parent)
        self.lines += [f"![{alt}]({rel})", ""]

    def entries(self, group: str) -> list[dict[str, Any]]:
        manifest = self.res["manifests"].get(group)
        if manifest is None:
            self.missing.append(f"suite `{group}`: not run (no suites/{group}.json in "
                                f"{self.res['root']})")
            return []
        entries = manifest["entries"]
        self.not_run(group, manifest)
        for e in entries:
            for m in e["missing"]:
                seed = "all seeds" if m["seed"] is None else f"seed {m['seed']}"
                variant = ", ".join(f"{k}={v}" for k, v in e["variant"].items())
                self.missing.append(f"{group} / {e['dataset']} / {e['label']}"
                                    f"{' / ' + variant if variant else ''} / {seed}: "
                                    f"{m['reason']}")
            for seed, digest in e["cells"].items():
                if digest not in self.res["cells"]:
                    self.missing.append(f"{group} / {e['dataset']} / {e['label']} / seed {seed}:"
                                        f" cells/{digest}/cell.json is not in the results")
        return entries

    def not_run(self, group: str, manifest: dict[str, Any]) -> None:
        """Cells the group plans (its datasets x methods x variants) that no process reached."""
        g = group_of(manifest.get("profile", ""), group)
        prof = PROFILES.get(manifest.get("profile", ""))
        datasets = (prof.datasets if prof and prof.datasets else None) or g.datasets
        from rclrec.grid.runner import dataset_key, variant_id

        have = {(e["dataset"], e["method"], variant_id(e["variant"]))
                for e in manifest["entries"]}
        for dataset in datasets:
            for method in g.methods:
                for variant in g.variants:
                    if (dataset_key(dataset), method, variant_id(variant)) not in have:
                        label = g.labels.get(method, method)
                        v = ", ".join(f"{k}={x}" for k, x in variant.items())
                        self.missing.append(f"{group} / {dataset_key(dataset)} / {label}"
                                            f"{' / ' + v if v else ''}: not run (no entry in "
                                            f"suites/{group}.json)")

    def notes(self) -> None:
        """``NOTES.md`` of the results folder (why cells are missing, the machine), verbatim."""
        path = self.res["root"] / "NOTES.md"
        if path.exists():
            self.lines += ["## Notes on this results folder", "", path.read_text().strip(), ""]

    # Table 1 and Figure 1
    def datasets(self) -> None:
        self.table1()
        self.figure1()

    def table1(self) -> None:
        self.lines += ["## Table 1: dataset statistics", ""]
        rows = []
        for key, rec in self.res["datasets"].items():
            s = rec.get("stats", {})
            p = paper.TABLE1.get(key)
            share = paper.NO_SAME_TARGET.get(key)
            cols = []
            for i, name in enumerate(("users", "items", "interactions")):
                ours = s.get(name)
                cols.append(f"{ours:,} (paper {p[i]:,}, gap {ours - p[i]:+,})" if p and ours
                            is not None else f"{ours:,} (paper —)")
            sh = s.get("share_without_same_target")
            cols.append(f"{sh:.3f} (paper {share:.3f}, gap {sh - share:+.3f})" if share else
                        f"{_f(sh, 3)} (paper —)")
            rows.append([key, *cols, f"{s.get('avg_length', float('nan')):.2f}",
                         f"{s.get('sparsity', float('nan')):.4f}"])
        if rows:
            self.lines += markdown_table(["dataset", "users", "items", "interactions",
                                  "share without same-target", "avg length", "sparsity"], rows)
        else:
            self.lines.append("No dataset statistics in the results.")
            self.missing.append("Table 1: no datasets/*.json in the results")
        self.lines.append("")

    def figure1(self) -> None:
        self.lines += ["## Figure 1: different-target pairs by similarity", ""]
        any_hist = False
        for key, rec in self.res["datasets"].items():
            hist = rec.get("similarity_histogram") or {}
            if not hist:
                continue
            any_hist = True
            from rclrec.similarity.histogram import plot_histogram

            path = self.fig_dir / f"fig1_{key}.png"
            plot_histogram(hist, path)
            first = next(iter(hist.values()))
            bins = [f"{lo:.1f}-{hi:.1f}" for lo, hi in first["bins"]]
            rows = [[m, *[f"{c:,}" for c in h["counts"]], f"{h['pairs_different_target']:,}"]
                    for m, h in hist.items()]
            self.lines += [f"**{key}** (the paper shows bars only; no numbers to compare)", ""]
            self.lines += markdown_table(["metric", *bins, "all different-target pairs"], rows)
            self.lines.append("")
            self.link(path, f"Figure 1 {key}")
        if not any_hist:
            self.lines += ["No histograms (they are computed by the `analysis` suite).", ""]
            self.missing.append("Figure 1: no similarity histograms in datasets/*.json")

    # Tables 2 and 3
    def main_table(self, group: str, title: str) -> None:
        self.lines += [f"## {title}", ""]
        entries = [e for e in self.entries(group) if not e["variant"]]
        if not entries:
            self.lines += ["No results.", ""]
            return
        encoder = entries[0]["encoder"]
        order = group_of(entries[0]["profile"], group).methods
        for dataset in dict.fromkeys(e["dataset"] for e in entries):
            rows_e = sorted([e for e in entries if e["dataset"] == dataset],
                            key=lambda e: order.index(e["method"]) if e["method"] in order
                            else len(order))
            means: dict[str, dict[str, float | None]] = {m: {} for m in METRICS}
            rows = []
            for e in rows_e:
                cells = entry_cells(self.res, e)
                agg = aggregate(cells) if cells else {}
                row = [e["label"], str(len(cells))]
                for metric in METRICS:
                    mean, std = agg.get(metric, (None, None))
                    means[metric][e["method"]] = mean
                    row.append(beside(mean, std,
                                       paper.table2_value(dataset, e["method"], metric, encoder)))
                row += _speed(cells)
                rows.append(row)
            imp = ["Improv. (RCL vs best other)", ""]
            for metric in METRICS:
                ours = improvement(means[metric])
                table = paper.TABLE3 if encoder == "fmlp" else paper.TABLE2
                theirs_row = {m: v[METRICS.index(metric)]
                              for m, v in table.get(dataset, {}).items()}
                theirs = improvement(theirs_row) if theirs_row else None
                gap = (f"{100 * (ours - theirs):+.2f} pp" if ours is not None and theirs
                       is not None else "—")
                imp.append(f"{_pct(ours)} (paper {_pct(theirs)}, gap {gap})")
            rows.append(imp + ["", "", "", ""])
            self.lines += [f"### {dataset} ({encoder} encoder; test, mean ± std over seeds)", ""]
            self.lines += markdown_table(["method", "seeds", *METRICS, "s/epoch", "best epoch",
                                  "s to best", "machine"], rows)
            self.lines += ["", "s/epoch: training seconds per epoch (validation excluded); s "
                               "to best: seconds up to the best epoch, validation included; on "
                               "the machine named (CPU or the GPU; Provenance has the details, "
                               "and whether other jobs shared it); \"cap hit\": the best "
                               "validation score came at the last allowed epoch, so that run "
                               "was still improving when the epoch cap stopped it.", ""]

    # Figure 3
    def ablation(self) -> None:
        self.lines += ["## Figure 3: ablation (RCL variants x weak-positive similarity)", ""]
        entries = self.entries("ablation")
        if not entries:
            self.lines += ["No results.", ""]
            return
        self.lines += ["The paper gives Figure 3 as bars only: there is no number to put ours "
                       "beside (paper —); its expected order is 3-Pairs lowest, RCL highest.", ""]
        for dataset in dict.fromkeys(e["dataset"] for e in entries):
            value: dict[tuple[str, str], tuple[float, float]] = {}
            for e in entries:
                if e["dataset"] != dataset:
                    continue
                cells = entry_cells(self.res, e)
                if cells:
                    value[(e["variant"]["rcl.variant"], e["variant"]["rcl.similarity"])] = \
                        aggregate(cells)["NDCG@10"]
            rows = [[v, *[(mean_std(*value[(v, s)]) if (v, s) in value else "missing")
                          for s in SIMILARITIES]]
                    for v in VARIANTS]
            self.lines += [f"### {dataset}: test NDCG@10 (paper —)", ""]
            self.lines += markdown_table(["variant", *SIMILARITIES], rows)
            self.lines.append("")
            plt = _plt()
            fig, ax = plt.subplots(figsize=(8, 3.5))
            width = 0.8 / len(VARIANTS)
            for j, v in enumerate(VARIANTS):
                xs = [i + (j - (len(VARIANTS) - 1) / 2) * width for i in range(len(SIMILARITIES))]
                ax.bar(xs, [value.get((v, s), (0.0, 0.0))[0] for s in SIMILARITIES], width,
                       yerr=[value.get((v, s), (0.0, 0.0))[1] for s in SIMILARITIES], label=v)
            ax.set_xticks(range(len(SIMILARITIES)), SIMILARITIES)
            ax.set_ylabel("test NDCG@10")
            ax.set_title(f"Figure 3: ablation on {dataset}")
            ax.legend(fontsize=7, ncol=5)
            fig.tight_layout()
            path = self.fig_dir / f"fig3_ablation_{dataset}.png"
            _save(fig, path)
            self.link(path, f"Figure 3 {dataset}")

    # Figure 4
    def alpha(self) -> None:
        self.lines += ["## Figure 4: RCL with alpha (share of weak positives)", ""]
        self.alpha_cut()
        entries = self.entries("alpha")
        if not entries:
            self.lines += ["No trained sweep.", ""]
            return
        self.lines += ["The paper gives Figure 4 as a line plot only (paper —).", ""]
        for dataset in dict.fromkeys(e["dataset"] for e in entries):
            points = {}
            for e in entries:
                cells = entry_cells(self.res, e)
                if e["dataset"] == dataset and cells:
                    points[float(e["variant"]["rcl.alpha"])] = aggregate(cells)
            rows = [[f"{a:g}", *[(mean_std(*points[a][m]) if a in points else "missing")
                                 for m in ("HR@10", "NDCG@10")]]
                    for a in ALPHAS]
            self.lines += [f"### {dataset} (test, paper —)", ""]
            self.lines += markdown_table(["alpha", "HR@10", "NDCG@10"], rows)
            self.lines.append("")
            plt = _plt()
            fig, ax = plt.subplots(figsize=(5, 3.2))
            xs = sorted(points)
            for metric in ("HR@10", "NDCG@10"):
                ax.errorbar(xs, [points[a][metric][0] for a in xs],
                            yerr=[points[a][metric][1] for a in xs], marker="o", label=metric)
            ax.set_xlabel("alpha")
            ax.set_ylabel("test metric")
            ax.set_title(f"Figure 4: alpha on {dataset}")
            ax.legend()
            fig.tight_layout()
            path = self.fig_dir / f"fig4_alpha_{dataset}.png"
            _save(fig, path)
            self.link(path, f"Figure 4 {dataset}")

    def alpha_cut(self) -> None:
        """Where the top-alpha cut binds: rows with more weak candidates than k."""
        for key, rec in self.res["datasets"].items():
            cuts = rec.get("alpha_cut") or {}
            if not cuts:
                continue
            first = next(iter(cuts.values()))
            self.lines += [
                f"**Where top-alpha cuts on {key}.** Share of sequences with more weak candidates "
                "(different-target sequences of non-zero similarity) than k = ceil(alpha (N - 1)), "
                "i.e. whose weak set alpha makes smaller; no neighbour cap applied. Where a "
                "column is 0, every alpha of the grid keeps the same weak positives.", ""]
            header = ["metric", *[f"alpha {a:g} (k {k:,})" for a, k in
                                  zip(first["alphas"], first["k"], strict=True)],
                      "no candidate", "median / max candidates"]
            rows = [[metric, *[f"{c:.2%}" for c in cut["share_cut"]],
                     f"{cut['candidates']['share_none']:.1%}",
                     f"{cut['candidates']['median']:g} / {cut['candidates']['max']:,}"]
                    for metric, cut in cuts.items()]
            self.lines += markdown_table(header, rows)
            self.lines.append("")

    # Figures 5 and 6
    def analysis(self) -> None:
        self.lines += ["## Figures 5 and 6: representations of a trained RCL model", ""]
        entries = self.entries("analysis")
        done = False
        for e in entries:
            if "analysis" not in e:
                continue
            path = self.res["root"] / e["analysis"]
            if not path.exists():
                self.missing.append(f"analysis / {e['dataset']}: {e['analysis']} is not in the "
                                    f"results")
                continue
            done = True
            a = read_json(path)
            d = a["mean_dot"]
            self.lines += [f"### {e['dataset']} (cell {e['cells']['0']}, {a['centres']} centres, "
                           f"{a['similarity']} weak positives)", ""]
            cos = a.get("mean_cosine")
            self.lines += markdown_table(["pair", "mean dot product with centre",
                                  *(["mean cosine"] if cos else [])],
                                 [[k, f"{v:.3f}", *([f"{cos[k]:.4f}"] if cos else [])]
                                  for k, v in d.items()])
            order = "holds" if a["order_strong_weak_negative"] else "does not hold"
            self.lines += ["", f"The paper's Figure 6 (bars only, paper —) expects strong > weak > "
                               f"negative; here it {order}."]
            for name, gap in a.get("strong_minus_weak", {}).items():
                self.lines.append(f"Strong - weak ({name}), paired over centres: "
                                  f"{gap['mean']:.4f} ± {gap['se']:.4f} (s.e.), positive for "
                                  f"{gap['share_positive']:.1%} of centres.")
            self.lines.append("")
            plt = _plt()
            fig, ax = plt.subplots(figsize=(4, 3))
            ax.bar(list(d), list(d.values()), color=["tab:red", "tab:orange", "tab:gray"])
            ax.set_ylabel("mean dot product with centre")
            ax.set_title(f"Figure 6: {e['dataset']}")
            fig.tight_layout()
            fig6 = self.fig_dir / f"fig6_dot_products_{e['dataset']}.png"
            _save(fig, fig6)
            self.link(fig6, f"Figure 6 {e['dataset']}")
            tsne = path.parent / "fig5_tsne.png"
            if tsne.exists():
                fig5 = self.fig_dir / f"fig5_tsne_{e['dataset']}.png"
                fig5.parent.mkdir(parents=True, exist_ok=True)
                fig5.write_bytes(tsne.read_bytes())
                self.lines += ["Figure 5: t-SNE of one centre, its strong and weak positives and "
                               "random negatives (picture saved with the analysis).", ""]
                self.link(fig5, f"Figure 5 {e['dataset']}")
            else:
                self.missing.append(f"Figure 5 / {e['dataset']}: no fig5_tsne.png beside "
                                    f"{e['analysis']}")
        if not done:
            self.lines += ["No analysis in the results.", ""]

    def searches(self) -> None:
        self.lines += ["## Hyper-parameter searches (validation NDCG@10 only)", ""]
        rows = []
        for name, s in self.res["searches"].items():
            chosen = s["chosen"]
            rows.append([f"`{name}`", str(len(s["tried"])), str(s["budget"] or "none"),
                         "yes" if s["exhausted"] else "no",
                         ", ".join(f"{k}={v}" for k, v in s["settings"].items()),
                         f"{chosen['valid']['NDCG@10']:.4f}"])
        if rows:
            self.lines += ["Coordinate search over the paper's grids from the defaults; every "
                           "tried cell is in `searches/<name>.json`.", ""]
            self.lines += markdown_table(["search", "cells tried", "budget", "stopped by budget",
                                  "chosen", "valid NDCG@10"], rows)
        else:
            self.lines.append("No searches in the results.")
        self.lines.append("")

    def provenance(self) -> None:
        cells = list(self.res["cells"].values())
        commits = sorted({str(c["git_commit"]) for c in cells})
        devices = sorted({str(c["device"]) for c in cells})
        seconds = sum(c["seconds"] for c in cells)
        profiles = sorted({m["profile"] for m in self.res["manifests"].values()})
        self.lines += ["## Provenance", "",
                       f"- profile(s): {', '.join(profiles) or '—'}",
                       f"- cells: {len(cells)}, training time {seconds:.0f} s",
                       f"- git commits: {', '.join(commits) or '—'}",
                       f"- devices: {', '.join(devices) or '—'}", ""]


def report_profile(results: str | os.PathLike) -> str:
    """The profile a results folder was filled with: its manifests', else the folder's name."""
    profiles = {read_json(p).get("profile")
                for p in (Path(results) / "suites").glob("*.json")}
    if len(profiles) == 1:
        return str(profiles.pop())
    return "paper" if "paper" in profiles or Path(results).name == "paper" else "quick"


def default_report_path(profile: str) -> Path:
    """docs/REPORT.md is the paper protocol's report; other profiles' are REPORT-<profile>.md."""
    return Path("docs") / ("REPORT.md" if profile == "paper" else f"REPORT-{profile}.md")


def build_report(results: str | os.PathLike, out: str | os.PathLike) -> str:
    """Write the Markdown report of a quick or full grid to ``out`` and its PNGs to
    ``figure_dir(out)`` (the paper profile's report: rclrec/grid/paper_report.py)."""
    out = Path(out)
    res = load_results(results)
    r = Report(res, out)
    r.fig_dir.mkdir(parents=True, exist_ok=True)
    r.lines += ["# rclrec benchmark report", "",
                f"Rebuilt by `rclrec report --results {results}` from the committed JSON only. "
                "Each of our numbers is followed by the paper's and the gap (ours - paper); "
                "`—` where the paper gives no number.", ""]
    r.notes()
    r.datasets()
    r.main_table("table2", "Table 2: SASRec backbone")
    r.main_table("table3", "Table 3: FMLP-Rec backbone")
    r.ablation()
    r.alpha()
    r.analysis()
    r.searches()
    r.provenance()
    return r.write()
