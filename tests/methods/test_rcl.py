"""RCL wired into the trainer: every variant and metric trains on synthetic data."""

import numpy as np
import pytest
import torch

from rclrec.config import load_config
from rclrec.data.batches import window_instances
from rclrec.data.registry import load_dataset
from rclrec.data.split import leave_one_out
from rclrec.methods.base import Batch
from rclrec.methods.rcl import RCL, contrast_unit_table
from rclrec.models import build_encoder
from rclrec.run import run_training

SMALL = {"data.dataset": "synthetic", "method": "rcl", "encoder.hidden_dim": "16",
         "encoder.inner_dim": "32", "train.threads": "1", "train.epochs": "1",
         "train.batch_size": "128"}


@pytest.mark.parametrize("variant", ["rcl", "unweight", "weak", "strong", "three_pairs",
                                     "official"])
def test_variants_train(tmp_path, variant):
    score = "dot" if variant == "official" else "cosine"
    cfg = load_config(overrides={**SMALL, "rcl.variant": variant, "rcl.similarity": "jaccard",
                                 "rcl.score": score})
    metrics = run_training(cfg, tmp_path / "r", show_progress=False)
    assert np.isfinite(metrics["history"][0]["rcl"])
    # The terms of Eq. 17 are logged, so a weak term stuck near 0 shows in the history.
    assert {"rcl_l_strong", "rcl_l_weak", "rcl_boundary_active"} <= set(metrics["history"][0])
    assert 0 <= metrics["test"]["NDCG@10"] <= 1


@pytest.mark.parametrize("metric", ["tfidf", "ngram", "levenshtein", "semantic"])
def test_metrics_train(tmp_path, metric):
    cfg = load_config(overrides={**SMALL, "rcl.similarity": metric, "rcl.semantic_every": "1",
                                 "train.epochs": "2"})
    metrics = run_training(cfg, tmp_path / "r", show_progress=False)
    assert all(np.isfinite(h["loss"]) for h in metrics["history"])


def test_index_is_cached(tmp_path, rclrec_cache):
    cfg = load_config(overrides={**SMALL, "rcl.similarity": "jaccard"})
    run_training(cfg, tmp_path / "a", show_progress=False)
    assert any(rclrec_cache.rglob("*.npz"))


def test_positives_are_valid_and_sampled_by_similarity():
    cfg = load_config(overrides={**SMALL, "rcl.similarity": "jaccard", "rcl.alpha": "0.2"})
    split = leave_one_out(load_dataset("synthetic"))
    inst = window_instances(split.train, 50)
    method = RCL(cfg, split, inst, torch.device("cpu"))
    encoder = build_encoder(cfg.encoder, split.num_items)
    method.setup(encoder)
    users = np.arange(split.num_users)
    strong, weak = method.sample(users)
    ok = strong >= 0
    assert ok.any()
    assert np.all(method.targets[strong[ok]] == method.targets[users[ok]])
    assert np.all(strong[ok] != users[ok])
    okw = weak >= 0
    assert okw.mean() > 0.5
    # weak positives come from the centre's neighbour list and never share its target
    for u, b in zip(users[okw][:50], weak[okw][:50], strict=True):
        neigh, _ = method.index.neighbours(u)
        assert b in neigh and method.targets[b] != method.targets[u]

    # the contrast loss of one batch is finite and has gradients
    rows = np.flatnonzero(inst.whole)[:64]
    batch = Batch.of(inst, rows, torch.device("cpu"))
    hidden = encoder(batch.inputs)
    loss, stats = method.extra_loss(batch, hidden, encoder)
    loss.backward()
    assert torch.isfinite(loss) and "rcl" in stats
    assert encoder.item_embedding.weight.grad.abs().sum() > 0


def test_contrast_unit_table_lists_every_prefix_and_each_whole_sequence():
    train = [np.array([5, 6, 7]), np.array([8]), np.array([9, 5])]
    user, end, whole = contrast_unit_table(train, every_prefix=False)
    assert user.tolist() == [0, 1, 2] and end.tolist() == [2, 0, 1] and whole.tolist() == [0, 1, 2]
    user, end, whole = contrast_unit_table(train, every_prefix=True)
    assert list(zip(user.tolist(), end.tolist(), strict=True)) == [(0, 1), (0, 2), (2, 1)]
    assert whole.tolist() == [1, -1, 2]


def test_strong_prefixes_have_the_centre_target_and_cover_more_centres():
    split = leave_one_out(load_dataset("synthetic"))
    inst = window_instances(split.train, 50)
    users = np.arange(split.num_users)
    methods = {}
    for mode in ("sequences", "prefixes"):
        cfg = load_config(overrides={**SMALL, "rcl.similarity": "jaccard",
                                     "rcl.strong_positives": mode})
        methods[mode] = RCL(cfg, split, inst, torch.device("cpu"))
        methods[mode].setup(build_encoder(cfg.encoder, split.num_items))
    m = methods["prefixes"]
    assert m.coverage["share_with_strong"] > methods["sequences"].coverage["share_with_strong"]
    strong, weak = m.sample(users)
    ok = strong >= 0
    assert ok.mean() > 0.9
    # A strong prefix: another user's items before a position that holds the centre's target.
    for u, unit in zip(users[ok][:200], strong[ok][:200], strict=True):
        v, t = m.unit_user[unit], m.unit_end[unit]
        assert v != u and t >= 1 and split.train[v][t] == m.targets[u]
    assert (m.unit_end[strong[ok]] < np.array([len(s) - 1 for s in split.train])[
        m.unit_user[strong[ok]]]).any()  # not only whole sequences
    # Weak positives stay whole sequences.
    okw = weak >= 0
    assert np.all(m.unit_is_whole[weak[okw]])

    # The loss of one batch is finite and reaches the encoder.
    encoder = build_encoder(m.cfg.encoder, split.num_items)
    rows = np.flatnonzero(inst.whole)[:64]
    batch = Batch.of(inst, rows, torch.device("cpu"))
    loss, _ = m.extra_loss(batch, encoder(batch.inputs), encoder)
    loss.backward()
    assert torch.isfinite(loss) and encoder.item_embedding.weight.grad.abs().sum() > 0


def test_analyze_writes_figures(tmp_path):
    from rclrec.analysis import analyze_run

    cfg = load_config(overrides={**SMALL, "rcl.similarity": "jaccard", "train.epochs": "2"})
    run_training(cfg, tmp_path / "r", show_progress=False)
    result = analyze_run(tmp_path / "r", centres=100)
    assert set(result["mean_dot"]) == {"strong", "weak", "negative"}
    cos, gap = result["mean_cosine"], result["strong_minus_weak"]
    assert all(-1 <= v <= 1 for v in cos.values())
    # The paired gap's mean is the difference of the means; its s.e. is positive.
    for name, means in (("dot", result["mean_dot"]), ("cosine", cos)):
        assert gap[name]["mean"] == pytest.approx(means["strong"] - means["weak"], abs=1e-4)
        assert gap[name]["se"] > 0 and 0 <= gap[name]["share_positive"] <= 1
    assert result["tsne"]["strong"] + result["tsne"]["weak"] + result["tsne"]["negative"] == 128
    for name in ("analysis.json", "fig6_dot_products.png", "fig5_tsne.png"):
        assert (tmp_path / "r" / name).stat().st_size > 0


def test_rcl_resume_continues_exactly(tmp_path):
    cfg3 = load_config(overrides={**SMALL, "rcl.similarity": "jaccard", "train.epochs": "3"})
    cfg1 = load_config(overrides={**SMALL, "rcl.similarity": "jaccard", "train.epochs": "1"})
    straight = run_training(cfg3, tmp_path / "a", show_progress=False)
    run_training(cfg1, tmp_path / "b", show_progress=False)
    (tmp_path / "b" / "metrics.json").unlink()
    resumed = run_training(cfg3, tmp_path / "b", resume=True, show_progress=False)
    assert resumed["test"] == straight["test"]


def test_rcl_semantic_resume_keeps_the_index_of_the_last_rebuild(tmp_path):
    # Rebuilt at epochs 1 and 3: epoch 2 of a run resumed after epoch 1 must use the index
    # built from the initial weights, as the uninterrupted run does.
    common = {**SMALL, "rcl.similarity": "semantic", "rcl.semantic_every": "2"}
    cfg3 = load_config(overrides={**common, "train.epochs": "3"})
    cfg1 = load_config(overrides={**common, "train.epochs": "1"})
    straight = run_training(cfg3, tmp_path / "a", show_progress=False)
    run_training(cfg1, tmp_path / "b", show_progress=False)
    (tmp_path / "b" / "metrics.json").unlink()
    resumed = run_training(cfg3, tmp_path / "b", resume=True, show_progress=False)
    assert resumed["test"] == straight["test"]


def test_positives_get_the_rec_loss_with_windows_and_not_with_prefixes():
    from rclrec.data.batches import prefix_instances
    from rclrec.run import resolve

    for encoder_name, expected in (("sasrec", True), ("fmlp", False)):
        cfg = resolve(load_config(overrides={**SMALL, "encoder.name": encoder_name}))
        assert cfg.rcl.rec_loss_on_positives is expected  # recorded in the cell's config
    forced = {**SMALL, "encoder.name": "fmlp", "rcl.rec_loss_on_positives": "true"}
    assert resolve(load_config(overrides=forced)).rcl.rec_loss_on_positives is True

    # The method resolves an unresolved config the same way; with lambda 0 what is left of its
    # loss is the positives' rec. loss, present with windows and absent with prefixes.
    split = leave_one_out(load_dataset("synthetic"))
    for build, expected in ((window_instances, True), (prefix_instances, False)):
        cfg = load_config(overrides={**SMALL, "rcl.similarity": "jaccard", "rcl.weight": "0"})
        inst = build(split.train, 20)
        method = RCL(cfg, split, inst, torch.device("cpu"))
        assert method.rec_on_positives is expected
        encoder = build_encoder(cfg.encoder, split.num_items)
        method.setup(encoder)
        rows = np.flatnonzero(inst.whole)[:64]
        batch = Batch.of(inst, rows, torch.device("cpu"))
        loss, _ = method.extra_loss(batch, encoder(batch.inputs), encoder)
        assert (float(loss.detach()) > 0) is expected


def test_positives_are_encoded_in_chunks_but_returned_in_their_own_order():
    cfg = load_config(overrides={**SMALL, "rcl.similarity": "jaccard"})
    split = leave_one_out(load_dataset("synthetic"))
    method = RCL(cfg, split, window_instances(split.train, 50), torch.device("cpu"))
    encoder = build_encoder(cfg.encoder, split.num_items).eval()  # no dropout: comparable
    units = np.random.default_rng(0).permutation(len(method.unit_end))[:50]
    with torch.no_grad():
        together = method.encode(encoder, units, chunk=7)  # lengths mixed across chunks
        alone = torch.cat([method.encode(encoder, units[i:i + 1]) for i in range(len(units))])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)


def test_the_strong_variant_builds_no_similarity_index(tmp_path):
    cfg = load_config(overrides={**SMALL, "rcl.variant": "strong",
                                 "rcl.similarity": "semantic"})
    split = leave_one_out(load_dataset("synthetic"))
    method = RCL(cfg, split, window_instances(split.train, 50), torch.device("cpu"))
    encoder = build_encoder(cfg.encoder, split.num_items)
    method.setup(encoder)
    method.on_epoch_start(6, encoder)  # a semantic rebuild epoch
    assert method.index is None and method.coverage["share_with_weak"] == 0.0
    strong, weak = method.sample(np.arange(split.num_users))
    assert (weak == -1).all() and (strong >= 0).any()


def test_the_layout_of_the_positives_passes_changes_neither_loss_nor_gradients():
    """The positives' rows in one padded pass, one row per pass, or the cost-balanced chunks
    (the default): with dropout off, the same loss (contrast + the positives' rec. loss) and
    the same gradients, up to float rounding."""
    from rclrec.data.batches import length_sorted_chunks

    cfg = load_config(overrides={**SMALL, "rcl.similarity": "jaccard"})
    split = leave_one_out(load_dataset("synthetic"))
    inst = window_instances(split.train, 50)
    method = RCL(cfg, split, inst, torch.device("cpu"))
    assert method.rec_on_positives
    torch.manual_seed(0)
    encoder = build_encoder(cfg.encoder, split.num_items).eval()  # no dropout: comparable
    method.setup(encoder)
    rows = np.flatnonzero(inst.whole)[:96]
    batch = Batch.of(inst, rows, torch.device("cpu"))
    drawn = method.rng.bit_generator.state
    layouts = {"cost-balanced": method.chunk_plan,
               "one pass": lambda lengths: length_sorted_chunks(lengths, len(lengths)),
               "one row per pass, in the units' order": lambda lengths: [
                   np.array([i]) for i in range(len(lengths))]}
    results = {}
    for name, plan in layouts.items():
        method.rng.bit_generator.state = drawn  # the same positives for every layout
        method.chunk_plan = plan
        loss, stats = method.extra_loss(batch, encoder(batch.inputs), encoder)
        grads = torch.autograd.grad(loss, list(encoder.parameters()), allow_unused=True)
        results[name] = loss.detach(), grads, stats["extra_positions"]
    reference, ref_grads, positions = results["one row per pass, in the units' order"]
    assert positions > 1  # the positives' rec. loss is part of the loss compared
    for name, (loss, grads, _) in results.items():
        torch.testing.assert_close(loss, reference, rtol=1e-5, atol=1e-6, msg=name)
        for g, r in zip(grads, ref_grads, strict=True):
            if r is None:
                assert g is None
            else:
                torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("instances", ["windows", "prefixes"])
def test_the_positives_go_through_the_one_chunked_loop_bit_for_bit(instances):
    """RCL.encode (through rclrec/models/encode.py ``chunk_windows``) gives, bit for bit, what
    its own loop gave: the chunks of ``chunk_plan``, each trimmed by ``trim_padding``, encoded
    with dropout in that order, the rows put back in the units' order."""
    from rclrec.data.batches import prefix_arrays, prefix_instances, trim_padding
    from rclrec.losses.recommendation import select_target_positions

    cfg = load_config(overrides={**SMALL, "rcl.similarity": "jaccard"})
    split = leave_one_out(load_dataset("synthetic"))
    make = window_instances if instances == "windows" else prefix_instances
    method = RCL(cfg, split, make(split.train, 50), torch.device("cpu"))
    torch.manual_seed(0)
    encoder = build_encoder(cfg.encoder, split.num_items).train()  # with dropout
    units = np.random.default_rng(1).choice(np.flatnonzero(method.unit_end >= 1), 200)
    torch.manual_seed(5)
    last, states, targets = method.encode(encoder, units, with_targets=True)

    inputs, unit_targets = prefix_arrays(split.train, method.unit_user[units],
                                         method.unit_end[units], 50, method.every_position)
    chunks = method.chunk_plan(np.minimum(method.unit_end[units], 50))
    assert len(chunks) > 1
    torch.manual_seed(5)
    parts = []
    for part in chunks:
        x, y = trim_padding(inputs[part], unit_targets[part])
        hidden = encoder(torch.from_numpy(x))
        parts.append((hidden[:, -1], *select_target_positions(hidden, y)))
    ref_last, ref_states, ref_targets = (torch.cat(p) for p in zip(*parts, strict=True))
    order = torch.from_numpy(np.argsort(np.concatenate(chunks)))
    assert torch.equal(last, ref_last[order])
    assert torch.equal(states, ref_states) and torch.equal(targets, ref_targets)


def test_a_cached_index_with_a_negative_score_stops_training_with_its_file(
        tmp_path, rclrec_cache, capsys):
    """The weighted loss checks its weights only on the CPU (on a GPU the check would wait for
    the device): a cached index with a negative score is refused when it is read."""
    from rclrec.cli import main
    from rclrec.similarity.index import SimilarityIndex

    flags = ["train", "--dataset", "synthetic", "--method", "rcl", "--epochs", "1",
             "--max-steps", "2", "--set", "encoder.hidden_dim=16", "--set",
             "encoder.inner_dim=32", "--set", "rcl.similarity=jaccard", "--quiet"]
    assert main([*flags, "--out", str(tmp_path / "a")]) == 0
    (path,) = rclrec_cache.rglob("*.npz")
    index = SimilarityIndex.load(path)
    index.scores[1] = -index.scores[1]
    index.save(path)
    capsys.readouterr()
    assert main([*flags, "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"rclrec train: error: {path}: ") and "> 0" in err, err
    assert len(err.splitlines()) == 1

