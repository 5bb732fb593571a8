"""The controls of issue 16: random positives and SASRec with RCL's extra sequences per step."""

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from rclrec.config import load_config
from rclrec.data.batches import window_instances
from rclrec.data.registry import load_dataset
from rclrec.data.split import leave_one_out
from rclrec.grid.cells import config_hash
from rclrec.methods.base import Batch
from rclrec.methods.controls import RandomPositives, RepeatedCentres, UniformOtherSampler
from rclrec.methods.rcl import RCL
from rclrec.models import build_encoder
from rclrec.run import run_training

SMALL = {"data.dataset": "synthetic", "encoder.hidden_dim": "16", "encoder.inner_dim": "32",
         "train.threads": "1", "train.epochs": "1", "train.batch_size": "128",
         "rcl.similarity": "jaccard"}


def test_uniform_other_sampler_is_uniform_and_never_returns_the_centre():
    pool = np.array([7, 3, 11, 5, 2, 9, 4, 8])  # unsorted on purpose
    sampler = UniformOtherSampler(pool, np.random.default_rng(0))
    draws = sampler.sample(np.full(70_000, 5))
    assert not (draws == 5).any()
    others = np.array([u for u in sorted(pool) if u != 5])
    counts = np.array([(draws == u).sum() for u in others])
    assert counts.sum() == len(draws)  # every draw is another member of the pool
    # 7 others, 10,000 expected each: a uniform draw passes the chi-square test.
    assert chisquare(counts).pvalue > 0.01
    # Mixed centres (each in the pool): never itself; a centre outside the pool draws from all.
    centres = np.tile(pool, 5000)
    mixed = sampler.sample(centres)
    assert not (mixed == centres).any() and np.isin(mixed, pool).all()
    outside = sampler.sample(np.full(16_000, 100))
    assert chisquare([(outside == u).sum() for u in pool]).pvalue > 0.01
    with pytest.raises(ValueError):
        UniformOtherSampler(np.array([4]), np.random.default_rng(0))


def _method(cls, method_name):
    cfg = load_config(overrides={**SMALL, "method": method_name})
    split = leave_one_out(load_dataset("synthetic"))
    inst = window_instances(split.train, 50)
    method = cls(cfg, split, inst, torch.device("cpu"))
    encoder = build_encoder(cfg.encoder, split.num_items)
    method.setup(encoder)
    rows = np.flatnonzero(inst.whole)[:96]
    batch = Batch.of(inst, rows, torch.device("cpu"))
    return method, encoder, batch


def _encoded_units(method, encoder, batch, monkeypatch):
    """The units a step sends through the recommendation loss beside the batch."""
    seen = []
    real = method.encode

    def recording(enc, units, with_targets=False, **kw):
        if with_targets:
            seen.append(np.array(units))
        return real(enc, units, with_targets=with_targets, **kw)

    monkeypatch.setattr(method, "encode", recording)
    loss, stats = method.extra_loss(batch, encoder(batch.inputs), encoder)
    assert loss is not None and torch.isfinite(loss)
    return np.concatenate(seen), stats


def test_controls_see_rcls_number_of_ce_instances_per_step(monkeypatch):
    rcl, encoder, batch = _method(RCL, "rcl")
    assert rcl.rec_on_positives  # SASRec windows: RCL's positives get the rec. loss
    rcl_units, _ = _encoded_units(rcl, encoder, batch, monkeypatch)
    users = batch.users[np.flatnonzero(batch.whole)]

    repeat, enc_r, _ = _method(RepeatedCentres, "repeated_centres")
    rep_units, stats = _encoded_units(repeat, enc_r, batch, monkeypatch)
    # Same seed, same samplers: the same count per centre as RCL's positives, so the step's
    # CE sequences are the batch's plus exactly as many sequences as RCL's step encodes.
    assert len(rep_units) == len(rcl_units) > len(users) // 2
    assert stats["extra_sequences"] == pytest.approx(len(rcl_units) / len(users))
    # ... and each is the centre itself, repeated as often as RCL draws positives for it.
    counts = dict(zip(*np.unique(rep_units, return_counts=True), strict=True))
    assert set(counts) <= set(repeat.whole_unit[users]) and max(counts.values()) <= 2

    rand, enc_x, _ = _method(RandomPositives, "random_positives")
    rand_units, _ = _encoded_units(rand, enc_x, batch, monkeypatch)
    assert len(rand_units) == len(rcl_units)
    # Drawn from every usable training sequence, not from this batch's centres.
    assert np.isin(rand_units, rand.whole_unit[rand.usable]).all()
    assert len(set(rand_units) - set(rand.whole_unit[users])) > len(rand_units) // 2


@pytest.mark.parametrize("method", ["random_positives", "repeated_centres"])
def test_controls_train_and_hash_the_rcl_settings_they_read(tmp_path, method):
    cfg = load_config(overrides={**SMALL, "method": method})
    metrics = run_training(cfg, tmp_path / "r", show_progress=False)
    assert np.isfinite(metrics["history"][0]["loss"]) and metrics["history"][0]["extra_sequences"]
    # The similarity decides how many extra sequences a centre gets: it is part of the cell.
    other = load_config(overrides={**SMALL, "method": method, "rcl.similarity": "ngram"})
    assert config_hash(other) != config_hash(cfg)
    # The contrast's settings are unread: a tuned lambda/tau/score does not re-key the control.
    tuned = load_config(overrides={**SMALL, "method": method, "rcl.weight": "0.3",
                                   "rcl.tau": "0.2", "rcl.score": "dot",
                                   "rcl.mask_same_target": "true", "rcl.weight_floor": "0.1"})
    assert config_hash(tuned) == config_hash(cfg)
    # ... but they still key RCL's cells.
    rcl = load_config(overrides={**SMALL, "method": "rcl"})
    assert config_hash(load_config(overrides={**SMALL, "method": "rcl", "rcl.tau": "0.2"})) \
        != config_hash(rcl)


@pytest.mark.parametrize("method", ["random_positives", "repeated_centres"])
def test_controls_refuse_a_setting_where_rcl_trains_no_positive_with_the_rec_loss(method):
    from rclrec.config import ConfigError

    cfg = load_config(overrides={**SMALL, "method": method, "rcl.rec_loss_on_positives": "false"})
    split = leave_one_out(load_dataset("synthetic"))
    with pytest.raises(ConfigError, match="rcl.rec_loss_on_positives"):
        RandomPositives(cfg, split, window_instances(split.train, 50), torch.device("cpu"))


def test_controls_log_their_extra_ce_positions(monkeypatch):
    rand, encoder, batch = _method(RandomPositives, "random_positives")
    units, stats = _encoded_units(rand, encoder, batch, monkeypatch)
    # Window instances: each extra sequence adds one CE position per target it holds.
    assert stats["extra_positions"] > stats["extra_sequences"] > 0


@pytest.mark.parametrize("method", ["random_positives", "repeated_centres"])
def test_generic_contrast_flags_are_an_error_for_the_controls(method, tmp_path, capsys):
    from argparse import Namespace

    from rclrec.cli import main, method_flag_settings
    from rclrec.config import ConfigError

    for flag, dest in (("--tau", "tau"), ("--lambda", "lambda_")):
        with pytest.raises(ConfigError, match=f"{flag} is not a setting of method {method}"):
            method_flag_settings(Namespace(**{dest: 0.2}), method)
    # The settings that decide the draws stay flags of the controls.
    assert method_flag_settings(Namespace(alpha=0.1, similarity="jaccard"), method) == {
        "rcl.alpha": 0.1, "rcl.similarity": "jaccard"}
    assert main(["train", "--dataset", "synthetic", "--method", method, "--tau", "0.2",
                 "--lambda", "0.3", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "--" in err and not (tmp_path / "r" / "metrics.json").exists()


def test_rcl_and_a_control_record_extra_sequences_and_positions_in_their_cells(tmp_path):
    from rclrec.grid.cells import cell_summary

    for method in ("rcl", "random_positives"):
        cfg = load_config(overrides={**SMALL, "method": method})
        metrics = run_training(cfg, tmp_path / method, show_progress=False)
        first = metrics["history"][0]
        assert first["extra_positions"] >= first["extra_sequences"] > 0
        summary = cell_summary("h", metrics, {}, 1.0)["extra_per_centre"]
        assert summary["extra_sequences"] == pytest.approx(first["extra_sequences"], abs=1e-4)
    sasrec = run_training(load_config(overrides={**SMALL, "method": "sasrec"}), tmp_path / "s",
                          show_progress=False)
    assert "extra_per_centre" not in cell_summary("h", sasrec, {}, 1.0)


def test_a_control_resumes_under_other_contrast_settings_rcl_does_not(tmp_path):
    """Same cell hash, same work folder: an unread setting must not block the resume."""
    from rclrec.config import ConfigError

    out = tmp_path / "c"
    run_training(load_config(overrides={**SMALL, "method": "repeated_centres"}), out,
                 show_progress=False)
    more = load_config(overrides={**SMALL, "method": "repeated_centres",
                                  "rcl.tau": "0.2", "rcl.weight": "0.3"})
    assert len(run_training(more, out, resume=True, show_progress=False)["history"]) == 1
    run_training(load_config(overrides={**SMALL, "method": "rcl"}), tmp_path / "r",
                 show_progress=False)
    with pytest.raises(ConfigError, match="rcl.tau"):
        run_training(load_config(overrides={**SMALL, "method": "rcl", "rcl.tau": "0.2"}),
                     tmp_path / "r",
                     resume=True, show_progress=False)
