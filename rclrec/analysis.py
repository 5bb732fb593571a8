"""Embedding analysis of a trained run (the paper's Figures 5 and 6).

Figure 6: mean dot product (and cosine) of centre representations with their strong positives,
their weak positives and random negatives; RCL expects strong > weak > negative.
Figure 5: a t-SNE picture of one centre with 128 sequences coloured by role.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rclrec.config import ConfigError
from rclrec.data.dataset import DataError
from rclrec.data.split import contrast_units, leave_one_out
from rclrec.files import write_json_atomic
from rclrec.model_file import load_model_and_data
from rclrec.models.encode import encode_histories
from rclrec.similarity.index import index_for_config
from rclrec.similarity.positives import StrongSampler, WeakSampler


def analyze_run(run_dir: str | Path, *, centres: int = 2000, seed: int = 0,
                device: str = "cpu") -> dict[str, Any]:
    """Write ``analysis.json``, ``fig6_dot_products.png`` and ``fig5_tsne.png`` into run_dir."""
    if centres < 1:  # checked before the minutes of loading and indexing
        raise ConfigError(f"--centres must be >= 1, got {centres}")
    run_dir = Path(run_dir)
    encoder, cfg, dataset = load_model_and_data(run_dir, device)
    inputs, targets = contrast_units(leave_one_out(dataset).train)
    metric = cfg.rcl.similarity
    reps = encode_histories(encoder, inputs, cfg.encoder.max_len, device=device)
    reps = reps.float().cpu().numpy()
    index = index_for_config(inputs, targets, cfg.rcl, representations=reps)
    rng = np.random.default_rng(seed)
    usable = np.array([len(s) > 0 for s in inputs])
    strong_s = StrongSampler(targets, rng=rng)
    weak_s = WeakSampler(index, rng=rng)
    eligible = np.flatnonzero(usable & (strong_s.counts() > 0) & (index.degrees() > 0))
    if len(eligible) == 0:
        raise DataError(f"{run_dir}: no sequence has both a strong and a weak positive")
    chosen = rng.choice(eligible, size=min(centres, len(eligible)), replace=False)
    strong = strong_s.sample(chosen)
    weak = weak_s.sample(chosen)
    negative = rng.choice(np.flatnonzero(usable), size=len(chosen))
    unit = reps / np.maximum(np.linalg.norm(reps, axis=1, keepdims=True), 1e-12)
    result = {"run": str(run_dir), "similarity": metric, "centres": int(len(chosen)),
              "seed": seed}
    # Dot products as the paper's Figure 6; cosines as RCL's loss scores pairs by default. The
    # strong - weak gap is paired per centre, with its standard error, because the means of
    # strong and weak differ little and need an uncertainty to be read (docs/RESULTS.md,
    # "Figure 6 across the variants").
    for name, r in (("dot", reps), ("cosine", unit)):
        h = r[chosen]
        scores = {role: (h * r[rows]).sum(1) for role, rows in
                  (("strong", strong), ("weak", weak), ("negative", negative))}
        result[f"mean_{name}"] = {role: float(v.mean()) for role, v in scores.items()}
        gap = scores["strong"] - scores["weak"]
        result.setdefault("strong_minus_weak", {})[name] = {
            "mean": float(gap.mean()), "se": float(gap.std(ddof=1) / np.sqrt(len(gap))),
            "share_positive": float((gap > 0).mean())}
    d = result["mean_dot"]
    result["order_strong_weak_negative"] = bool(d["strong"] > d["weak"] > d["negative"])
    _plot_dots(d, run_dir / "fig6_dot_products.png")
    result["tsne"] = _tsne_picture(reps, chosen[0], strong_s, index, usable, rng,
                                   run_dir / "fig5_tsne.png")
    write_json_atomic(run_dir / "analysis.json", result)
    return result


def _plot_dots(mean_dot: dict[str, float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 3))
    names = list(mean_dot)
    ax.bar(names, [mean_dot[n] for n in names], color=["tab:red", "tab:orange", "tab:gray"])
    ax.set_ylabel("mean dot product with centre")
    ax.set_title("Figure 6: centre vs. positives")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _tsne_picture(reps: np.ndarray, centre: int, strong_s: StrongSampler, index, usable,
                  rng: np.random.Generator, path: Path, total: int = 128) -> dict[str, int]:
    """t-SNE of one centre, its strong and weak positives and random negatives (Figure 5)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE

    group = strong_s.order[strong_s.group_start[centre]:
                           strong_s.group_start[centre] + strong_s.group_size[centre]]
    strong = [int(x) for x in group if x != centre][: total // 4]
    weak = [int(x) for x in index.neighbours(centre)[0][: total // 4]]
    taken = {centre, *strong, *weak}
    pool = np.setdiff1d(np.flatnonzero(usable), np.fromiter(taken, dtype=np.int64))
    negative = rng.choice(pool, size=total - len(strong) - len(weak), replace=False).tolist()
    ids = [centre, *strong, *weak, *negative]
    roles = ["centre"] + ["strong"] * len(strong) + ["weak"] * len(weak) + \
        ["negative"] * len(negative)
    xy = TSNE(n_components=2, perplexity=20, random_state=0, init="pca").fit_transform(
        reps[ids])
    fig, ax = plt.subplots(figsize=(5, 4))
    colours = {"negative": "tab:gray", "weak": "tab:orange", "strong": "tab:red",
               "centre": "black"}
    for role in ("negative", "weak", "strong", "centre"):
        sel = [i for i, r in enumerate(roles) if r == role]
        ax.scatter(xy[sel, 0], xy[sel, 1], s=60 if role == "centre" else 14,
                   marker="*" if role == "centre" else "o", c=colours[role], label=role)
    ax.legend(fontsize=8)
    ax.set_title("Figure 5: t-SNE of one centre and 128 sequences")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return {"centre": int(centre), "strong": len(strong), "weak": len(weak),
            "negative": len(negative)}
