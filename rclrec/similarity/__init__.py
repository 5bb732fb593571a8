"""Dual-tiered positive selection of RCL: similarity metrics, the weak-positive index, samplers.

See docs/METHOD.md section 3. Main entry points:

- :func:`build_index` (an :class:`IndexSpec`: which neighbours, :class:`BuildOptions`: how)
  -> :class:`SimilarityIndex` (CSR of the top similar sequences per row);
  :func:`index_for_config`: the index a run's RCL section asks for.
- :class:`StrongSampler` (Eq. 5), :class:`WeakSampler` (Eq. 10), :func:`pair_similarity`.
- :func:`different_target_pair_histogram` (Figure 1), :func:`alpha_cut` (where top-alpha binds),
  both from one scan: :func:`similarity_profile`.
"""

from rclrec.similarity.histogram import (
    alpha_cut,
    different_target_pair_histogram,
    plot_histogram,
    similarity_profile,
    weak_candidate_counts,
)
from rclrec.similarity.index import SimilarityIndex, build_index, index_for_config, sequences_hash
from rclrec.similarity.measures import METRICS, pair_scores, score_blocks
from rclrec.similarity.positives import StrongSampler, WeakSampler, pair_similarity
from rclrec.similarity.spec import BuildOptions, IndexSpec

__all__ = [
    "METRICS",
    "BuildOptions",
    "IndexSpec",
    "SimilarityIndex",
    "StrongSampler",
    "WeakSampler",
    "alpha_cut",
    "build_index",
    "different_target_pair_histogram",
    "index_for_config",
    "pair_scores",
    "pair_similarity",
    "plot_histogram",
    "score_blocks",
    "sequences_hash",
    "similarity_profile",
    "weak_candidate_counts",
]
