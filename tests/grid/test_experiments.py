import json
import re
from pathlib import Path

import pytest

from rclrec.config import ConfigError, load_config
from rclrec.grid import search as search_mod
from rclrec.grid import suites
from rclrec.grid.cells import config_hash, run_cell
from rclrec.grid.cli import main
from rclrec.grid.report import build_report
from rclrec.grid.search import coordinate_search
from rclrec.grid.suites import LAMBDA, TAU, Group


def test_config_hash_is_stable_and_follows_settings(tiny_cell):
    h = config_hash(load_config(None, tiny_cell))
    assert re.fullmatch(r"[0-9a-f]{16}", h)
    assert config_hash(load_config(None, dict(reversed(list(tiny_cell.items()))))) == h
    # Defaults written out explicitly resolve to the same configuration.
    assert config_hash(load_config(None, {**tiny_cell, "rcl.alpha": 0.05})) == h
    # Where and how fast a cell runs does not change it ...
    assert config_hash(load_config(None, {**tiny_cell, "train.device": "cpu",
                                          "train.threads": 2})) == h
    # ... every setting that changes the result does.
    for key, value in (("rcl.alpha", 0.1), ("train.seed", 1), ("encoder.name", "fmlp"),
                       ("rcl.variant", "weak"), ("train.epochs", 2), ("method", "sasrec")):
        assert config_hash(load_config(None, {**tiny_cell, key: value})) != h, key


def test_finished_cell_is_reused_not_retrained(tmp_path, tiny_cell):
    cfg = load_config(None, {**tiny_cell, "method": "sasrec"})
    results, work = tmp_path / "results", tmp_path / "work"
    cell, reused = run_cell(cfg, results, work, settings={"method": "sasrec"})
    assert not reused
    digest = config_hash(cfg)
    assert cell["hash"] == digest
    saved = json.loads((results / "cells" / digest / "cell.json").read_text())
    for key in ("hash", "method", "dataset", "seed", "settings", "valid", "test", "seconds",
                "git_commit", "device", "config"):
        assert key in saved, key
    assert not list((results / "cells" / digest).glob("*.pt"))  # no checkpoint is committed
    metrics = work / digest / "metrics.json"
    mtime = metrics.stat().st_mtime_ns
    again, reused = run_cell(cfg, results, work)
    assert reused and again["test"] == cell["test"]
    # Without its cell.json (e.g. lost), the finished run folder is still not retrained.
    (results / "cells" / digest / "cell.json").unlink()
    again, _ = run_cell(cfg, results, work)
    assert again["test"] == cell["test"]
    assert metrics.stat().st_mtime_ns == mtime


def _fake_run_cell(calls):
    def fake(cfg, results, work, *, settings=None, show_progress=False, train=True):
        calls.append(dict(settings))
        score = 1.0 - abs(cfg.rcl.weight - 0.3) - abs(cfg.rcl.tau - 0.1)
        m = {"NDCG@10": score}
        return {"hash": config_hash(cfg), "valid": m, "test": {"NDCG@10": -score}}, False
    return fake


def test_search_picks_best_validation_and_records_every_cell(tmp_path, monkeypatch, tiny_cell):
    calls = []
    monkeypatch.setattr(search_mod, "run_cell", _fake_run_cell(calls))
    rec = coordinate_search(tiny_cell, (LAMBDA, TAU), results=tmp_path, work=tmp_path / "w",
                            name="s")
    assert rec["settings"] == {"rcl.weight": 0.3, "rcl.tau": 0.1}
    # start + 5 lambdas + 6 taus, the start configuration counted once in each sweep
    assert len(rec["tried"]) == len(calls) == 1 + 4 + 5
    best = max(rec["tried"], key=lambda t: t["valid"]["NDCG@10"])
    assert rec["chosen"] == best  # chosen on validation, although test says otherwise
    saved = json.loads((tmp_path / "searches" / "s.json").read_text())
    assert saved["chosen"]["hash"] == best["hash"] and len(saved["tried"]) == 10
    assert {t["hash"] for t in saved["tried"]} == {
        config_hash(load_config(None, {**tiny_cell, **c})) for c in calls}


def test_a_search_that_only_reuses_keeps_its_record(tmp_path, monkeypatch, tiny_cell):
    calls = []
    monkeypatch.setattr(search_mod, "run_cell", _fake_run_cell(calls))
    coordinate_search(tiny_cell, (LAMBDA,), results=tmp_path, work=tmp_path / "w", name="r")
    path = tmp_path / "searches" / "r.json"
    first = path.read_text()

    def reused(cfg, results, work, *, settings=None, show_progress=False, train=True):
        cell, _ = _fake_run_cell([])(cfg, results, work, settings=settings)
        return cell, True

    monkeypatch.setattr(search_mod, "run_cell", reused)
    rec = coordinate_search(tiny_cell, (LAMBDA,), results=tmp_path, work=tmp_path / "w", name="r")
    assert all(t["reused"] for t in rec["tried"])
    assert path.read_text() == first  # still says which call trained the cells


def test_search_budget_caps_tried_cells(tmp_path, monkeypatch, tiny_cell):
    calls = []
    monkeypatch.setattr(search_mod, "run_cell", _fake_run_cell(calls))
    rec = coordinate_search(tiny_cell, (LAMBDA, TAU), results=tmp_path, work=tmp_path / "w",
                            budget=3, name="b")
    assert len(rec["tried"]) == len(calls) == 3 and rec["exhausted"]
    assert rec["settings"]["rcl.weight"] == 0.3  # best of 0.1 (start), 0.2, 0.3


@pytest.mark.slow
def test_smoke_benchmark_and_report(tmp_path, monkeypatch, capsys):
    from rclrec.methods import METHODS

    monkeypatch.delitem(METHODS, "hpm")  # a method not written yet is skipped, not a crash
    # Two columns of the ablation and two alphas keep the test short; the report still
    # shows the whole grid, with the other columns missing.
    monkeypatch.setitem(suites.SUITES, "ablation", (Group(
        "ablation", "ablation", ("rcl",), ("beauty",),
        variants=({"rcl.variant": "rcl", "rcl.similarity": "ngram"},
                  {"rcl.variant": "weak", "rcl.similarity": "jaccard"})),))
    monkeypatch.setitem(suites.SUITES, "alpha", (Group(
        "alpha", "alpha", ("rcl",), ("beauty",),
        variants=({"rcl.alpha": 0.05}, {"rcl.alpha": 0.1})),))
    results, work = tmp_path / "results", tmp_path / "work"
    common = ["--profile", "smoke", "--results", str(results), "--work", str(work),
              "--budget", "1"]
    assert main(["benchmark", "--suite", "table3", *common]) == 0
    assert main(["benchmark", "--suite", "table2", "--methods", "sasrec", "rcl", "--datasets",
                 "synthetic", "nosuchdata", *common]) == 0
    for suite in ("ablation", "alpha", "analysis"):
        assert main(["benchmark", "--suite", suite, *common]) == 0
    printed = capsys.readouterr().out
    assert "missing" in printed and "hpm" in printed

    manifest = json.loads((results / "suites" / "table3.json").read_text())
    hpm = [e for e in manifest["entries"] if e["method"] == "hpm"][0]
    assert not hpm["cells"] and "missing method" in hpm["missing"][0]["reason"]
    assert len(list((results / "analysis").glob("*/analysis.json"))) == 1

    cells = sorted((results / "cells").glob("*/cell.json"))
    mtimes = {p: p.stat().st_mtime_ns for p in cells}
    # A second run of a suite reuses every cell.
    assert main(["benchmark", "--suite", "table3", *common]) == 0
    assert {p: p.stat().st_mtime_ns for p in cells} == mtimes

    out = tmp_path / "docs" / "REPORT.md"
    assert main(["report", "--results", str(results), "--out", str(out)]) == 0
    text = out.read_text()
    for heading in ("# rclrec benchmark report", "## Table 1", "## Figure 1", "## Table 2",
                    "## Table 3", "## Figure 3", "## Figure 4", "## Figures 5 and 6",
                    "## Hyper-parameter searches", "## Missing cells"):
        assert heading in text, heading
    assert ("| method | seeds | HR@5 | HR@10 | NDCG@5 | NDCG@10 | s/epoch | best epoch | "
            "s to best | machine |") in text
    assert re.search(r"\| \d+ \| CPU \|", text)  # the smoke cells' seconds come from the CPU
    assert "Improv. (RCL vs best other)" in text and "(paper " in text
    # The analysis suite records where the alpha grid cuts the weak candidates, per metric.
    cut_table = text.split("**Where top-alpha cuts on synthetic.**")[1].split("\n\n")[1]
    assert "| jaccard |" in cut_table and "| ngram |" in cut_table and "alpha 0.025" in cut_table
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert {Path(x).name.split("_")[0] for x in links} >= {"fig1", "fig3", "fig4", "fig5",
                                                          "fig6"}
    for link in links:
        png = out.parent / link
        assert png.exists() and png.read_bytes()[:4] == b"\x89PNG", link
    missing = text.split("## Missing cells")[1]
    assert "missing method: 'hpm'" in missing
    assert "dataset not found: 'nosuchdata'" in missing
    # Planned cells no process reached are listed too (table2 ran only sasrec and rcl).
    assert "table2 / synthetic / CL4SRec: not run" in missing
    assert "table2 / synthetic / SASRec: not run" not in missing

    # The report is rebuilt from the committed JSON alone: no run folders needed.
    import shutil

    shutil.rmtree(work)
    again = tmp_path / "again" / "REPORT.md"
    build_report(results, again)
    assert again.read_text().replace("again", "docs") == text.replace("again", "docs")


@pytest.mark.parametrize("suite", list(suites.SUITES))
def test_suites_list_known_settings(suite, tiny_cell):
    for group in suites.SUITES[suite]:
        for variant in group.variants:
            load_config(None, {**tiny_cell, **variant, "encoder.name": group.encoder})
    for space in (*suites.SEARCH_SPACES.values(), suites.DEFAULT_SPACE):
        for p in space:
            for value in p.values:
                load_config(None, {**tiny_cell, **{k: value for k in p.keys}})


@pytest.mark.slow
def test_interrupted_benchmark_keeps_finished_entries(tmp_path, monkeypatch):
    real_run_cell = search_mod.run_cell

    def interrupted_at_rcl(cfg, *args, **kwargs):
        if cfg.method == "rcl":
            raise KeyboardInterrupt
        return real_run_cell(cfg, *args, **kwargs)

    monkeypatch.setattr(search_mod, "run_cell", interrupted_at_rcl)
    results, work = tmp_path / "results", tmp_path / "work"
    common = ["--profile", "smoke", "--results", str(results), "--work", str(work),
              "--budget", "1", "--methods", "sasrec", "rcl"]
    with pytest.raises(KeyboardInterrupt):
        main(["benchmark", "--suite", "table2", *common, "--threads", "1"])
    manifest = json.loads((results / "suites" / "table2.json").read_text())
    assert [e["method"] for e in manifest["entries"]] == ["sasrec"]
    assert manifest["entries"][0]["cells"]["0"]

    # Resumed with other threads (not part of a cell's hash): sasrec is reused, rcl trained.
    monkeypatch.setattr(search_mod, "run_cell", real_run_cell)
    cells_before = set((results / "cells").iterdir())
    assert main(["benchmark", "--suite", "table2", *common, "--threads", "2"]) == 0
    manifest = json.loads((results / "suites" / "table2.json").read_text())
    assert sorted(e["method"] for e in manifest["entries"]) == ["rcl", "sasrec"]
    assert len(set((results / "cells").iterdir()) - cells_before) == 1


def test_benchmark_rejects_bad_threads(capsys):
    assert main(["benchmark", "--suite", "table2", "--threads", "0"]) == 2
    assert "--threads must be >= 1" in capsys.readouterr().err


def test_cell_hash_ignores_sections_the_method_does_not_read(tiny_cell):
    sasrec = {**tiny_cell, "method": "sasrec"}
    assert config_hash(load_config(None, sasrec)) == config_hash(
        load_config(None, {**sasrec, "rcl.rec_loss_on_positives": False, "duorec.tau": 0.3}))
    rcl = {**tiny_cell, "method": "rcl"}
    assert config_hash(load_config(None, rcl)) != config_hash(
        load_config(None, {**rcl, "rcl.weight": 0.3}))
    assert config_hash(load_config(None, rcl)) == config_hash(
        load_config(None, {**rcl, "duorec.tau": 0.3}))
    # The strong variant reads no weak-positive setting: one cell for every similarity.
    strong = {**rcl, "rcl.variant": "strong"}
    assert config_hash(load_config(None, strong)) == config_hash(
        load_config(None, {**strong, "rcl.similarity": "tfidf", "rcl.alpha": 0.2}))
    assert config_hash(load_config(None, {**strong, "rcl.weight": 0.3})) != config_hash(
        load_config(None, strong))
    assert config_hash(load_config(None, rcl)) != config_hash(
        load_config(None, {**rcl, "rcl.similarity": "tfidf"}))


def test_cell_hash_follows_a_methods_own_settings_only(tiny_cell):
    cl4srec, duorec = ({**tiny_cell, "method": m} for m in ("cl4srec", "duorec"))
    before = {m: config_hash(load_config(None, c)) for m, c in
              (("cl4srec", cl4srec), ("duorec", duorec))}
    # A default written out is the same cell.
    assert config_hash(load_config(None, {**cl4srec, "cl4srec.mask_token": "row"})) == \
        before["cl4srec"]
    # A setting of no method is an error, not silently ignored.
    with pytest.raises(ConfigError, match="unknown setting 'cl4srec.mask_same_target'"):
        load_config(None, {**cl4srec, "cl4srec.mask_same_target": False})
    # A changed setting of one method re-keys that method's cells only.
    assert config_hash(load_config(None, {**cl4srec, "cl4srec.crop": 0.5})) != before["cl4srec"]
    assert config_hash(load_config(None, {**duorec, "cl4srec.crop": 0.5})) == before["duorec"]


def test_settings_once_constants_in_the_code_are_part_of_the_cell(tiny_cell):
    configs = {m: load_config(None, {**tiny_cell, "method": m})
               for m in ("sasrec", "rcl", "cl4srec", "ct4rec", "duorec", "mclrec")}
    before = {m: config_hash(c) for m, c in configs.items()}
    for key, value in (("cl4srec.crop", 0.5), ("ct4rec.rd_negatives", 10),
                       ("mclrec.rl_weight", 0.2), ("mclrec.reorder", 0.6),
                       ("rcl.official_weight_power", 0.2)):
        method = key.split(".")[0]
        changed = {m: config_hash(load_config(None, {**tiny_cell, "method": m, key: value}))
                   for m in configs}
        assert changed[method] != before[method]
        assert {m: h for m, h in changed.items() if m != method} == \
            {m: h for m, h in before.items() if m != method}


def test_no_train_reuses_finished_cells_and_records_the_rest(tmp_path):
    results, work = tmp_path / "results", tmp_path / "work"
    common = ["--profile", "smoke", "--results", str(results), "--work", str(work),
              "--budget", "1", "--suite", "table2"]
    assert main(["benchmark", *common, "--methods", "sasrec"]) == 0
    assert main(["benchmark", *common, "--methods", "sasrec", "rcl", "--no-train"]) == 0
    assert len([p for p in work.iterdir() if p.is_dir()]) == 1  # sasrec's; rcl not trained
    entries = {e["method"]: e for e in
               json.loads((results / "suites" / "table2.json").read_text())["entries"]}
    assert entries["sasrec"]["cells"]["0"] and not entries["sasrec"]["missing"]
    assert not entries["rcl"]["cells"]
    assert "not trained: --no-train" in entries["rcl"]["missing"][0]["reason"]


def test_manifest_drops_entries_of_settings_the_group_no_longer_has(tmp_path, monkeypatch):
    results, work = tmp_path / "results", tmp_path / "work"
    common = ["--profile", "smoke", "--results", str(results), "--work", str(work),
              "--budget", "1", "--suite", "alpha", "--no-train"]

    def alpha_group(*variants):
        monkeypatch.setitem(suites.SUITES, "alpha", (Group(
            "alpha", "alpha", ("rcl",), ("synthetic",), variants=variants),))

    alpha_group({"rcl.alpha": 0.05}, {"rcl.alpha": 0.1})
    assert main(["benchmark", *common]) == 0
    alpha_group({"rcl.alpha": 0.1, "rcl.similarity": "jaccard"})  # the grid changed
    assert main(["benchmark", *common]) == 0
    manifest = json.loads((results / "suites" / "alpha.json").read_text())
    assert [e["variant"] for e in manifest["entries"]] == [
        {"rcl.alpha": 0.1, "rcl.similarity": "jaccard"}]


def test_rekey_renames_cells_after_a_new_setting_so_they_are_reused(tmp_path, monkeypatch,
                                                                      capsys, tiny_cell):
    from rclrec.grid import cells as cells_mod

    results, work = tmp_path / "results", tmp_path / "work"
    common = ["--profile", "smoke", "--results", str(results), "--work", str(work),
              "--budget", "1"]
    assert main(["benchmark", "--suite", "analysis", *common]) == 0
    assert main(["benchmark", "--suite", "table2", "--methods", "sasrec", *common]) == 0
    (work / "0123456789abcdef").mkdir()  # an unfinished run of another cell
    (work / "0123456789abcdef" / "config.json").write_text(json.dumps(
        load_config(None, {**tiny_cell, "method": "sasrec", "train.seed": 7}).to_dict()))
    before = sorted(p.name for p in (results / "cells").iterdir())

    # A new train setting whose default keeps the old behaviour: every hash changes.
    real = cells_mod.hashed_config
    monkeypatch.setattr(cells_mod, "hashed_config",
                        lambda cfg: {**real(cfg), "new_setting": 1})
    assert main(["benchmark", "--suite", "table2", "--methods", "sasrec", *common,
                 "--no-train"]) == 0
    assert "not trained: --no-train" in capsys.readouterr().out  # not found under its new hash

    # A cell another process is training is left for a later rekey.
    import fcntl

    with open(work / f"{before[0]}.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert main(["rekey", "--results", str(results), "--work", str(work)]) == 0
        out = capsys.readouterr().out
    assert f"{len(before)} cells renamed" in out and "left as they are" in out
    assert (results / "cells" / before[0]).exists()
    assert main(["rekey", "--results", str(results), "--work", str(work)]) == 0
    assert "1 cells renamed" in capsys.readouterr().out
    after = sorted(p.name for p in (results / "cells").iterdir())
    assert len(after) == len(before) and not set(after) & set(before)
    for name in after:
        assert json.loads((results / "cells" / name / "cell.json").read_text())["hash"] == name
        assert (work / name / "model.pt").exists()
    assert not (work / "0123456789abcdef").exists()
    text = "".join(p.read_text() for p in results.rglob("*.json"))
    assert not any(old in text for old in before)
    assert list((results / "analysis").iterdir())[0].name in after
    # Every cell is found again: nothing is missing, nothing is trained.
    for suite in (["analysis"], ["table2", "--methods", "sasrec"]):
        assert main(["benchmark", "--suite", *suite, *common, "--no-train"]) == 0
        assert "0 missing" in capsys.readouterr().out.splitlines()[-1]
    assert main(["rekey", "--results", str(results), "--work", str(work)]) == 0
    assert "0 cells renamed" in capsys.readouterr().out


def test_two_reports_in_one_folder_keep_their_own_figures():
    from rclrec.grid.report import figure_dir

    assert figure_dir(Path("docs/REPORT.md")) == Path("docs/report")
    assert figure_dir(Path("docs/REPORT-full.md")) == Path("docs/report-full")


def test_speed_columns_keep_cpu_and_gpu_seconds_apart():
    from rclrec.grid.report import _speed

    def cell(device, seconds):
        return {"device": device, "seconds_per_epoch": seconds, "seconds_to_best": 10 * seconds,
                "best_epoch": 20, "config": {"train": {"epochs": 20}}}

    cells = [cell("cpu", 30.0), cell("NVIDIA H100 80GB HBM3", 3.0), cell("cpu", 34.0)]
    assert _speed(cells) == ["32.0 / 3.0", "20.0 (cap hit in 3/3)", "320 / 30", "CPU / H100"]
