"""What particular baselines do beyond the contract (tests/methods/test_contract.py runs every
method of the registry): partners, augmenters, categories, the [mask] row."""

import numpy as np
import pytest
import torch

from rclrec.config import load_config
from rclrec.data.batches import window_instances
from rclrec.methods import METHODS
from rclrec.methods.base import Batch
from rclrec.methods.duorec import SameTargetSampler
from rclrec.methods.hpm import HPM, read_category_file
from rclrec.methods.mclrec import MCLRec
from rclrec.models import build_encoder
from rclrec.run import resolve, run_training


def make_batch(inst, rows):
    return Batch.of(inst, rows, torch.device("cpu"))


def test_same_target_sampler_returns_same_target_or_anchor():
    targets = np.array([5, 7, 5, 9, 5, 7])
    sampler = SameTargetSampler(targets, np.random.default_rng(0))
    rows = np.repeat(np.arange(len(targets)), 50)
    partners = sampler.sample(rows)
    assert np.all(targets[partners] == targets[rows])
    lonely = rows == 3  # the only instance with target 9
    assert np.all(partners[lonely] == 3)
    assert np.all(partners[~lonely] != rows[~lonely])
    assert set(partners[rows == 0]) == {2, 4}  # both others drawn


def test_duorec_partners_of_real_instances(built):
    _, inst, _, method = built("duorec")
    rows = np.arange(len(inst))
    partners = method.sampler.sample(rows)
    last = inst.targets[:, -1]
    assert np.all(last[partners] == last[rows])
    assert (partners != rows).mean() > 0.5


def test_mclrec_augmenters_change_and_are_frozen_for_the_encoder_step(built):
    _, inst, encoder, method = built("mclrec")
    assert isinstance(method, MCLRec) and method.parameters()
    before = [p.detach().clone() for p in method.parameters()]
    batch = make_batch(inst, np.arange(32))
    loss, _ = method.extra_loss(batch, encoder(batch.inputs), encoder)
    changed = [not torch.equal(b, p) for b, p in zip(before, method.parameters(), strict=True)]
    assert all(changed)  # the augmenter step ran inside extra_loss
    loss.backward()
    assert all(p.grad is None for p in method.parameters())  # the trainer's Adam skips them
    assert all(p.requires_grad for p in method.parameters())


def test_hpm_is_marked_approximate_and_reads_a_category_file(built, tmp_path):
    assert HPM.approximate
    path = tmp_path / "cats.txt"
    path.write_text("# item category\n1 Shoes\n2 Books\n3 Shoes\n1 Books\nunknown Toys\n")
    cats = read_category_file(path, {"1": 1, "2": 2, "3": 3, "4": 4}, 4)
    assert cats.tolist() == [0, 1, 2, 1, 3]  # item 4 has no line: its own extra category
    _, _, _, method = built("hpm")
    assert method.item_categories[0] == 0 and method.item_categories[1:].min() >= 1
    assert method.num_categories <= 8


def test_settings_come_from_the_methods_own_section(method_run, split):
    cfg = resolve(load_config(overrides={**method_run, "method": "duorec", "duorec.weight": "0.5",
                                         "cl4srec.tau": "0.3", "mclrec.lmd": "0.2"}))
    inst = window_instances(split.train, cfg.encoder.max_len)
    duorec = METHODS["duorec"](cfg, split, inst, torch.device("cpu"))
    assert duorec.settings.weight == 0.5 and duorec.settings.tau == 1.0  # not cl4srec.tau
    # MCLRec's unset lmd and beta take the scripts' values for the dataset (Beauty's here).
    mclrec = resolve(load_config(overrides={**method_run, "method": "mclrec"})).mclrec
    assert (mclrec.lmd, mclrec.beta) == (0.0, 0.05)
    yelp = resolve(load_config(overrides={**method_run, "method": "mclrec",
                                          "data.dataset": "yelp"}))
    assert (yelp.mclrec.lmd, yelp.mclrec.beta) == (0.03, 0.1)
    assert resolve(load_config(overrides={**method_run, "method": "mclrec", "mclrec.lmd": "0.2"})
                   ).mclrec.lmd == 0.2


def test_hpm_reads_a_category_file_by_the_items_original_ids(method_run, split, tmp_path):
    """The run recipe gives the method the data file's item ids (HPM imports no run code)."""
    path = tmp_path / "cats.txt"
    ids = [f"item{i}" for i in range(1, split.num_items + 1)]
    path.write_text("item1 Shoes\nitem2 Books\n3 Toys\n")  # "3" is no original id
    cfg = resolve(load_config(overrides={**method_run, "method": "hpm",
                                         "hpm.category_file": str(path)}))
    inst = window_instances(split.train, cfg.encoder.max_len)
    method = HPM(cfg, split, inst, torch.device("cpu"), item_ids=ids)
    assert method.item_categories[:4].tolist() == [0, 1, 2, 3]  # item 3: the no-line category
    assert (method.item_categories[3:] == 3).all()
    internal = HPM(cfg, split, inst, torch.device("cpu"))  # no ids given: the internal ids
    assert internal.item_categories[3] == 1 and (internal.item_categories[[1, 2, 4]] == 2).all()


@pytest.mark.parametrize("name", ["sasrec", "fmlp"])
def test_encode_last_in_sorted_chunks_equals_one_padded_batch(method_run, name):
    from rclrec.methods.augmentation import encode_last

    cfg = load_config(overrides={**method_run, "encoder.name": name})
    encoder = build_encoder(resolve(cfg).encoder, 30).eval()
    gen = torch.Generator().manual_seed(0)
    a = torch.randint(1, 31, (7, 12), generator=gen)
    b = torch.randint(1, 31, (5, 20), generator=gen)
    for row, length in enumerate([1, 3, 12, 5, 8, 2, 12]):  # left-padded, mixed lengths
        a[row, : 12 - length] = 0
    for row, length in enumerate([20, 4, 1, 9, 13]):
        b[row, : 20 - length] = 0
    with torch.no_grad():
        za, zb = encode_last(encoder, a, b, chunk=3)
        wide = torch.cat([torch.nn.functional.pad(a, (8, 0)), b])
        reference = encoder(wide)[:, -1]
    assert za.shape == (7, 16) and zb.shape == (5, 16)
    torch.testing.assert_close(torch.cat([za, zb]), reference, atol=1e-5, rtol=1e-5)


def test_ct4rec_without_dropout_is_the_plain_rec_loss(built):
    # Without dropout both passes agree: RD and UR vanish, and the half-weighted trainer loss
    # plus the method's half of the second pass is the plain cross-entropy.
    from rclrec.losses.recommendation import cross_entropy_loss, select_target_positions

    _, inst, encoder, method = built("ct4rec")
    encoder.eval()
    batch = make_batch(inst, np.arange(32))
    hidden = encoder(batch.inputs)
    states, targets = select_target_positions(hidden, batch.targets)
    rec = cross_entropy_loss(states, targets, encoder.item_embedding.weight)
    extra, stats = method.extra_loss(batch, hidden, encoder)
    assert stats["rd"] == pytest.approx(0.0, abs=1e-6)
    assert stats["ur"] == pytest.approx(0.0, abs=1e-6)
    total = method.rec_loss_weight * rec + extra
    assert total.item() == pytest.approx(rec.item(), rel=1e-6)
    assert method.rec_loss_weight == 0.5


@pytest.mark.parametrize("name", ["cl4srec", "mclrec", "contrarec"])
def test_masking_methods_train_a_mask_row_that_is_never_scored(built, method_run, split, tmp_path,
                                                               name):
    _, inst, encoder, method = built(name)
    mask_id = split.num_items + 1
    assert method.extra_tokens == 1 and method.mask_id(encoder) == mask_id
    assert encoder.item_embedding.num_embeddings == split.num_items + 2
    assert encoder.item_table.shape[0] == split.num_items + 1  # scores: padding and items only
    # The views use the row, so the contrast reaches it (with id 0 it would stay at zero).
    torch.manual_seed(1)
    batch = make_batch(inst, np.arange(64))
    loss, _ = method.extra_loss(batch, encoder(batch.inputs), encoder)
    loss.backward()
    assert encoder.item_embedding.weight.grad[mask_id].abs().sum() > 0
    # A trained run saves the extra row and scores num_items items.
    cfg = load_config(overrides={**method_run, "method": name})
    run_training(cfg, tmp_path / "r", show_progress=False)
    from rclrec.eval.saved import evaluate_run
    from rclrec.model_file import load_model
    loaded, _ = load_model(tmp_path / "r")
    assert loaded.item_embedding.num_embeddings == split.num_items + 2
    assert 0 <= evaluate_run(tmp_path / "r", device="cpu")["test"]["NDCG@10"] <= 1


def test_mask_token_pad_builds_no_extra_row_and_bad_values_name_the_option(built, method_run,
                                                                          split):
    from rclrec.config import ConfigError

    cfg = resolve(load_config(overrides={**method_run, "method": "cl4srec",
                                         "cl4srec.mask_token": "pad"}))
    method = METHODS["cl4srec"](cfg, split, window_instances(split.train, cfg.encoder.max_len),
                                torch.device("cpu"))
    assert method.extra_tokens == 0
    assert method.mask_id(build_encoder(cfg.encoder, split.num_items)) == 0
    # No masking, no row.
    assert built("duorec")[3].extra_tokens == 0
    with pytest.raises(ConfigError, match="cl4srec.mask_token"):
        load_config(overrides={**method_run, "cl4srec.mask_token": "auto"})
