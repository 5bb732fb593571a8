import json

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
