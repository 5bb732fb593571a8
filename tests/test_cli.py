import json

import pytest

from rclrec.cli import main


def test_train_then_evaluate(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--dataset", "synthetic", "--epochs", "1", "--max-steps", "3",
                 "--set", "encoder.hidden_dim=16", "--set", "train.threads=1",
                 "--out", str(out), "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "NDCG@10" in printed and "test" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["train"]["max_steps"] == 3
    assert main(["evaluate", "--run", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert abs(result["test"]["NDCG@10"] - metrics["test"]["NDCG@10"]) < 1e-9


def test_unknown_dataset_lists_places(tmp_path, capsys):
    code = main(["train", "--dataset", "nosuchdata", "--out", str(tmp_path / "r"), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "nosuchdata" in err and "RCLREC_DATA" in err


def test_unknown_setting_suggests(tmp_path, capsys):
    code = main(["train", "--set", "train.epoch=3", "--out", str(tmp_path / "r")])
    assert code == 2
    assert "train.epochs" in capsys.readouterr().err


def test_stats_json(capsys):
    assert main(["stats", "--dataset", "synthetic", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"users", "items", "interactions", "avg_length", "sparsity",
            "share_without_same_target"} <= set(stats)


def test_train_help_lists_every_method_and_rcl_variant(capsys):
    """`rclrec train --help` names what --method and --variant accept: the registry's methods
    and the RCL loss's variants (the help is written out so as not to import torch)."""
    from rclrec.losses.contrastive import VARIANTS
    from rclrec.methods import METHODS

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    method_help = text.split("--method METHOD")[-1].split("--encoder")[0]
    variant_help = text.split("--variant VARIANT")[-1].split("--similarity")[0]
    assert [m for m in METHODS if m not in method_help] == []
    assert [v for v in VARIANTS if v not in variant_help] == []
