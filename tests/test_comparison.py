"""`rclrec compare`: runs' test rows beside the paper's (the end of `make run`)."""

import json

from rclrec.cli import main
from rclrec.grid import paper


def write_run(path, method, encoder="sasrec", ndcg10=0.05):
    test = {"HR@5": 0.061, "HR@10": 0.092, "NDCG@5": 0.041, "NDCG@10": ndcg10}
    path.mkdir()
    (path / "metrics.json").write_text(json.dumps({
        "method": method, "encoder": encoder, "dataset": "beauty", "seed": 0, "best_epoch": 17,
        "epochs_run": 22, "test": test, "config": {"train": {"loss": "ce"}}}))
    return str(path)


def test_runs_then_the_papers_rows(tmp_path, capsys):
    runs = [write_run(tmp_path / "s", "sasrec", ndcg10=0.0488),
            write_run(tmp_path / "r", "rcl", ndcg10=0.0550)]
    assert main(["compare", *runs]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[-4:] == ["HR@5", "HR@10", "NDCG@5", "NDCG@10"]
    assert lines[1].startswith("SASRec, beauty, ours (seed 0, epoch 17/22)")
    assert lines[1].split()[-1] == "0.0488" and lines[2].split()[-1] == "0.0550"
    assert lines[3].startswith("SASRec, beauty, paper (Table 2)")
    assert [float(v) for v in lines[3].split()[-4:]] == list(paper.TABLE2["beauty"]["sasrec"])
    assert [float(v) for v in lines[4].split()[-4:]] == list(paper.TABLE2["beauty"]["rcl"])
    assert "BCE model" in lines[5] and len(lines) == 6


def test_a_row_the_paper_lacks_is_left_out_and_a_missing_run_is_an_error(tmp_path, capsys):
    run = write_run(tmp_path / "f", "rcl", encoder="fmlp")  # Table 3 has Yelp only
    assert main(["compare", run]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("FMLP-Rec + RCL, beauty, ours") and len(out) == 2
    assert main(["compare", run, str(tmp_path / "nothing")]) == 2
    assert "nothing/metrics.json does not exist" in capsys.readouterr().err
    (tmp_path / "f" / "metrics.json").write_text('{"method": "rc')
    assert main(["compare", run]) == 2
    assert "metrics.json" in capsys.readouterr().err
