"""Every failure caused by a file, a setting or the machine is one line
``rclrec CMD: error: ...`` naming the file or setting, with exit code 2 and no traceback
(issue 14); generic method flags follow the chosen method (issue 17)."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import shutil
import typing
from pathlib import Path

import pytest
import torch

from rclrec import files
from rclrec.cli import main
from rclrec.config import ConfigError, ExperimentConfig, load_config
from rclrec.files import WriteFailed, write_json_atomic


def fails_with_line(capsys, argv: list[str], *names: str) -> str:
    """Run the CLI; it must exit 2 with one error line naming each of ``names``."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"rclrec {argv[0]}: error: "), err
    for name in names:
        assert str(name) in lines[0], (name, err)
    return lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_flags) -> Path:
    run = tmp_path_factory.mktemp("trained") / "run"
    assert main(["train", *tiny_flags, "--epochs", "1", "--out", str(run)]) == 0
    return run


@pytest.fixture
def run_copy(trained, tmp_path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    return run


def damage(path: Path, kind: str) -> None:
    data = path.read_bytes()
    path.write_bytes({"empty": b"", "truncated": data[: len(data) // 2],
                      "random": os.urandom(len(data))}[kind])


# ---------------------------------------------------------------- damaged files


@pytest.mark.parametrize("kind", ["empty", "truncated", "random"])
def test_damaged_model_file(run_copy, capsys, kind):
    model = run_copy / "model.pt"
    damage(model, kind)
    fails_with_line(capsys, ["evaluate", "--run", str(run_copy)], model)
    fails_with_line(capsys, ["recommend", "--run", str(run_copy), "--input", os.devnull], model)


@pytest.mark.parametrize("kind", ["empty", "truncated", "random"])
def test_damaged_checkpoint_on_resume(run_copy, capsys, kind, tiny_flags):
    (run_copy / "metrics.json").unlink()  # an interrupted run
    checkpoint = run_copy / "checkpoint.pt"
    damage(checkpoint, kind)
    line = fails_with_line(capsys, ["train", *tiny_flags, "--epochs", "2", "--out", str(run_copy),
                                    "--resume"], checkpoint)
    assert "remove it" in line


@pytest.fixture
def resume_fails(capsys, tiny_flags):
    """``resume_fails(run, *names, epochs=2)``: the error line of resuming ``run``."""
    def fails(run: Path, *names, epochs: int = 2) -> str:
        return fails_with_line(capsys, ["train", *tiny_flags, "--epochs", str(epochs), "--out",
                                        str(run), "--resume"], *names)
    return fails


@pytest.mark.parametrize("content", ["{}", "[1, 2]", '{"method": "sasrec"}', "null"])
def test_metrics_of_valid_json_but_wrong_contents_on_resume(run_copy, capsys, content,
                                                            resume_fails):
    (run_copy / "metrics.json").write_text(content)
    resume_fails(run_copy, run_copy / "metrics.json")


@pytest.mark.parametrize("content", ["[1, 2]", '{"train": 3}', '{"nosuch": 1}'])
def test_config_json_of_wrong_contents_on_resume(run_copy, capsys, content, resume_fails):
    (run_copy / "metrics.json").unlink()  # an interrupted run: its config.json is compared
    (run_copy / "config.json").write_text(content)
    resume_fails(run_copy, run_copy / "config.json")


def test_model_file_copied_over_the_checkpoint(run_copy, capsys, resume_fails):
    (run_copy / "metrics.json").unlink()
    shutil.copy(run_copy / "model.pt", run_copy / "checkpoint.pt")
    line = resume_fails(run_copy, run_copy / "checkpoint.pt")
    assert "remove it" in line


def test_checkpoint_of_another_model_size(run_copy, capsys, resume_fails):
    (run_copy / "metrics.json").unlink()
    path = run_copy / "checkpoint.pt"
    saved = torch.load(path, weights_only=True)
    saved["encoder"]["embed.item_embedding.weight"] = torch.zeros(3, 16)
    torch.save(saved, path)
    resume_fails(run_copy, path, "embed.item_embedding.weight")
    saved = torch.load(run_copy / "checkpoint.pt", weights_only=True)
    saved["state"] = {"epoch": 1, "nosuch": 2}
    saved["encoder"] = torch.load(run_copy / "model.pt", weights_only=True)["state_dict"]
    torch.save(saved, path)
    resume_fails(run_copy, path)


@pytest.mark.parametrize("content", ["model", "list"])
def test_best_weights_of_wrong_contents(run_copy, capsys, content, resume_fails):
    """A run whose best.pt was overwritten: found when the best epoch's weights are loaded at
    the end, named, no traceback."""
    (run_copy / "metrics.json").unlink()
    best = run_copy / "best.pt"
    if content == "model":
        shutil.copy(run_copy / "model.pt", best)
    else:
        torch.save([1, 2], best)
    resume_fails(run_copy, best, epochs=1)  # no epoch left: straight to best.pt


def test_read_error_of_a_good_checkpoint_is_not_called_damaged(run_copy, monkeypatch, capsys,
                                                               resume_fails):
    """EIO (a failing disk, a network folder) says nothing about the file: no advice to remove
    a checkpoint that may be good."""
    from rclrec.train import checkpoint

    (run_copy / "metrics.json").unlink()

    def failing_load(*args, **kwargs):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(checkpoint.torch, "load", failing_load)
    line = resume_fails(run_copy, run_copy / "checkpoint.pt", os.strerror(errno.EIO))
    assert "remove" not in line and "damaged" not in line

    def out_of_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(checkpoint.torch, "load", out_of_memory)
    with pytest.raises(MemoryError):
        checkpoint.load_torch(run_copy / "checkpoint.pt")


@pytest.mark.parametrize("kind", ["empty", "truncated", "random"])
def test_damaged_metrics_on_resume(run_copy, capsys, kind, tiny_flags):
    metrics = run_copy / "metrics.json"
    damage(metrics, kind)
    fails_with_line(capsys, ["train", *tiny_flags, "--epochs", "1", "--out", str(run_copy),
                             "--resume"], metrics)


def test_damaged_results_record_in_report(tmp_path, capsys):
    manifest = tmp_path / "results" / "suites" / "table2.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text('{"group": "table2", "entries": [')
    fails_with_line(capsys, ["report", "--results", str(tmp_path / "results"), "--out",
                             str(tmp_path / "REPORT.md")], manifest)


class Payload:
    """Unpickling this calls a function: what a malicious model file would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickle_payload_is_refused_not_run(run_copy, tmp_path, capsys):
    marker = tmp_path / "payload_ran"
    saved = torch.load(run_copy / "model.pt", weights_only=True)
    saved["item_ids"] = Payload(marker)
    torch.save(saved, run_copy / "model.pt")
    line = fails_with_line(capsys, ["evaluate", "--run", str(run_copy)], run_copy / "model.pt")
    assert "refused" in line
    assert not marker.exists()


def test_every_torch_load_is_weights_only():
    """Files are read through rclrec.train.checkpoint.load_torch only, which is weights_only."""
    package = Path(__file__).resolve().parent.parent / "rclrec"
    calls = {str(p.relative_to(package)): p.read_text().count("torch.load(")
             for p in package.rglob("*.py") if "torch.load(" in p.read_text()}
    assert calls == {"train/checkpoint.py": 1}
    source = (package / "train" / "checkpoint.py").read_text()
    assert "weights_only=True" in source


# ---------------------------------------------------------------- forged model files


def forge(run: Path, change) -> Path:
    path = run / "model.pt"
    saved = torch.load(path, weights_only=True)
    change(saved)
    torch.save(saved, path)
    return path


def test_forged_item_count_is_refused_before_allocating(run_copy, capsys):
    # 10**12 items x 16 floats would be 64 TB: building the model first cannot succeed.
    path = forge(run_copy, lambda s: s.update(num_items=10**12, item_ids=None))
    line = fails_with_line(capsys, ["evaluate", "--run", str(run_copy)], path)
    assert "(1000000000001, 16)" in line  # the size its config would need


@pytest.mark.parametrize("encoder", ["sasrec", "fmlp"])
def test_model_file_check_accepts_every_encoders_real_sizes(encoder, tmp_path):
    from rclrec.model_file import check_model_file
    from rclrec.models import ENCODERS, build_encoder

    assert encoder in ENCODERS
    cfg = load_config(overrides={"encoder.name": encoder, "encoder.hidden_dim": "8",
                                 "encoder.max_len": "7"})
    state = build_encoder(cfg.encoder, 5, 1).state_dict()
    saved = {"config": cfg.to_dict(), "num_items": 5, "extra_tokens": 1, "state_dict": state}
    check_model_file(saved, tmp_path / "model.pt")  # no error
    saved["extra_tokens"] = 0
    with pytest.raises(ValueError, match="item_embedding"):
        check_model_file(saved, tmp_path / "model.pt")


def test_model_config_naming_a_private_file_does_not_echo_it(run_copy, tmp_path, capsys):
    secret = tmp_path / "secret.txt"
    secret.write_text("hunter2 is the password\n")

    def point_at_secret(saved):
        saved["config"]["data"]["dataset"] = str(secret)

    path = forge(run_copy, point_at_secret)
    for command in ("evaluate", "analyze"):
        line = fails_with_line(capsys, [command, "--run", str(run_copy)], path, secret)
        assert "hunter2" not in line


def test_serving_a_model_without_item_ids_does_not_echo_its_dataset(run_copy, tmp_path, capsys):
    secret = tmp_path / "secret.txt"
    secret.write_text("hunter2 is the password\n")
    histories = tmp_path / "histories.txt"
    histories.write_text("1 2 3\n")

    def point_at_secret(saved):  # an older model file: no item ids, so the dataset is read
        saved["config"]["data"]["dataset"] = str(secret)
        saved["item_ids"] = None

    path = forge(run_copy, point_at_secret)
    line = fails_with_line(capsys, ["recommend", "--run", str(run_copy), "--input",
                                    str(histories)], path, secret)
    assert "hunter2" not in line


def test_model_of_a_changed_dataset(run_copy, capsys):
    def drop_last_item(saved):  # a consistent model of one item fewer than its dataset
        table = saved["state_dict"]["embed.item_embedding.weight"]
        saved["state_dict"]["embed.item_embedding.weight"] = torch.cat([table[:-2], table[-1:]])
        saved["num_items"] -= 1
        saved["item_ids"] = saved["item_ids"] and saved["item_ids"][:-1]

    path = forge(run_copy, drop_last_item)
    line = fails_with_line(capsys, ["evaluate", "--run", str(run_copy)], path)
    assert "changed" in line


def test_model_scoring_nan_names_the_run(run_copy, capsys):
    forge(run_copy, lambda s: s["state_dict"]["embed.item_embedding.weight"].fill_(float("nan")))
    line = fails_with_line(capsys, ["evaluate", "--run", str(run_copy)], run_copy)
    assert "NaN" in line


# ---------------------------------------------------------------- writing


class FullDiskFile:
    """A file whose every write fails as on a full disk."""

    def __init__(self, f) -> None:
        self.f = f

    def write(self, data) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.f.close()


def fill_disk(monkeypatch, suffix: str) -> None:
    """From now on, writing the temporary file of a name ending in ``suffix`` hits a full disk
    (atomic_write's temporary files are named ``.NAME.XXXX.tmp``)."""
    def full_open(file, mode="r", *args, **kwargs):
        f = open(file, mode, *args, **kwargs)
        name = Path(file).name
        if "w" in mode and name.endswith(".tmp") and f"{suffix}." in name:
            return FullDiskFile(f)
        return f

    monkeypatch.setattr(files, "open", full_open, raising=False)


def test_disk_full_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    write_json_atomic(path, {"ndcg": 0.5})
    fill_disk(monkeypatch, ".json")
    with pytest.raises(WriteFailed) as info:
        write_json_atomic(path, {"ndcg": 0.7})
    assert info.value.errno == errno.ENOSPC
    assert str(path) in str(info.value) and "disk is full" in str(info.value)
    assert json.loads(path.read_text()) == {"ndcg": 0.5}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_written_files_get_the_usual_mode(tmp_path):
    """Not the owner-only mode of the temporary file: a shared results folder stays readable."""
    umask = os.umask(0o022)
    os.umask(umask)
    path = write_json_atomic(tmp_path / "cell.json", {})
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_disk_full_while_training_keeps_the_last_checkpoint(run_copy, monkeypatch, capsys,
                                                            tiny_flags):
    for name in ("metrics.json", "model.pt"):  # interrupted after epoch 1
        (run_copy / name).unlink()
    checkpoint = (run_copy / "checkpoint.pt").read_bytes()
    fill_disk(monkeypatch, ".pt")
    resume = ["train", *tiny_flags, "--epochs", "2", "--out", str(run_copy), "--resume"]
    line = fails_with_line(capsys, resume, run_copy)
    assert "disk is full" in line and "--resume" in line
    assert (run_copy / "checkpoint.pt").read_bytes() == checkpoint
    assert not [p for p in run_copy.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.undo()  # space freed: the run continues from the kept checkpoint
    assert main(resume) == 0
    assert json.loads((run_copy / "metrics.json").read_text())["epochs_run"] == 2


def test_read_only_output_folder(tmp_path, monkeypatch, capsys, tiny_flags):
    out = tmp_path / "run"
    out.mkdir()
    out.chmod(0o500)
    if os.access(out, os.W_OK):  # root ignores the mode: refuse as the kernel would
        real_mkstemp = files.tempfile.mkstemp

        def read_only(*args, dir=None, **kwargs):
            if Path(dir) == out:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(dir))
            return real_mkstemp(*args, dir=dir, **kwargs)

        monkeypatch.setattr(files.tempfile, "mkstemp", read_only)
    try:
        line = fails_with_line(capsys, ["train", *tiny_flags, "--epochs", "1", "--out", str(out)],
                               out)
    finally:
        out.chmod(0o700)
    assert "permission" in line.lower()


# ---------------------------------------------------------------- settings


def float_settings(cls: type = ExperimentConfig, prefix: str = "") -> list[str]:
    from rclrec.config import METHOD_SECTIONS

    keys = []
    for f in dataclasses.fields(cls):
        hint = typing.get_type_hints(cls)[f.name]
        if cls is ExperimentConfig and f.name == "sections":
            for section, section_cls in METHOD_SECTIONS.items():
                keys += float_settings(section_cls, f"{section}.")
        elif dataclasses.is_dataclass(hint):
            keys += float_settings(hint, f"{prefix}{f.name}.")
        elif float in (hint, *typing.get_args(hint)):
            keys.append(prefix + f.name)
    return keys


def test_every_float_setting_refuses_non_finite_values():
    keys = float_settings()
    assert {"train.lr", "rcl.tau", "encoder.dropout", "duorec.tau", "mclrec.lmd"} <= set(keys)
    for key in keys:
        for value in ("nan", "inf", "-inf"):
            with pytest.raises(ConfigError, match=f"{key}.*finite"):
                load_config(overrides={key: value})


def test_non_finite_settings_through_the_python_api():
    """The dataclasses check themselves: no --set or TOML parsing involved."""
    from rclrec.config import DataConfig, TrainConfig
    from rclrec.methods.duorec import DuoRecConfig
    from rclrec.methods.rcl import RCLConfig

    for make, key in ((lambda v: TrainConfig(lr=v), "train.lr"),
                      (lambda v: DataConfig(test_fraction=v), "data.test_fraction"),
                      (lambda v: RCLConfig(tau=v), "rcl.tau"),
                      (lambda v: DuoRecConfig(tau=v), "duorec.tau")):
        for value in (float("nan"), float("inf")):
            with pytest.raises(ConfigError, match=f"{key}.*finite"):
                make(value)


def test_non_finite_learning_rate_on_the_command_line(tmp_path, capsys, tiny_flags):
    out = tmp_path / "run"
    fails_with_line(capsys, ["train", *tiny_flags, "--set", "train.lr=nan", "--out", str(out)],
                    "train.lr")
    fails_with_line(capsys, ["train", *tiny_flags, "--method", "rcl", "--tau", "inf", "--out",
                             str(out)], "rcl.tau")
    assert not out.exists()


def test_config_file_of_random_bytes(tmp_path, capsys):
    toml = tmp_path / "c.toml"
    toml.write_bytes(bytes(range(128, 256)))
    fails_with_line(capsys, ["train", "--config", str(toml), "--out", str(tmp_path / "r")], toml)


@pytest.mark.parametrize("setting", ["eval.ks=0", "encoder.hidden_dim=0", "data.max_len=0"])
def test_sizes_below_one_are_refused(tmp_path, capsys, setting, tiny_flags):
    fails_with_line(capsys, ["train", *tiny_flags, "--set", setting, "--out", str(tmp_path / "r")],
                    setting.split("=")[0])


def test_unknown_method_is_an_error_line(tmp_path, capsys, tiny_flags):
    fails_with_line(capsys, ["train", *tiny_flags, "--method", "nosuch", "--out",
                             str(tmp_path / "r")], "nosuch")


def test_generic_flags_set_the_chosen_methods_setting(tmp_path, monkeypatch, capsys, tiny_flags):
    """Issue 17: `--method duorec --tau 0.2` trains DuoRec at tau 0.2 (once silently 1.0)."""
    from rclrec.methods import duorec

    used = []
    real_loss = duorec.duorec_loss

    def spy(*args, **kwargs):
        used.append((kwargs["tau"], kwargs["similarity"]))
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(duorec, "duorec_loss", spy)
    out = tmp_path / "duorec"
    assert main(["train", *tiny_flags, "--epochs", "1", "--method", "duorec", "--tau", "0.2",
                 "--similarity", "cos", "--out", str(out)]) == 0
    assert used and set(used) == {(0.2, "cos")}
    recorded = json.loads((out / "metrics.json").read_text())["config"]
    assert recorded["duorec"]["tau"] == 0.2 and recorded["rcl"]["tau"] == 0.5
    capsys.readouterr()
    fails_with_line(capsys, ["train", *tiny_flags, "--method", "duorec", "--alpha", "0.1", "--out",
                             str(tmp_path / "a")], "--alpha", "duorec")
    fails_with_line(capsys, ["train", *tiny_flags, "--tau", "0.1", "--out", str(tmp_path / "b")],
                    "--tau", "sasrec")


def test_generic_flags_for_rcl():
    from argparse import Namespace

    from rclrec.cli import method_flag_settings

    args = Namespace(variant="weak", similarity="jaccard", alpha=0.1, lambda_=0.3, tau=0.2)
    assert method_flag_settings(args, "rcl") == {
        "rcl.variant": "weak", "rcl.similarity": "jaccard", "rcl.alpha": 0.1,
        "rcl.weight": 0.3, "rcl.tau": 0.2}


# ---------------------------------------------------------------- the safety net


def test_a_bug_keeps_its_traceback_and_names_the_command(monkeypatch, capsys):
    from rclrec import cli

    def buggy(args):
        return None + 1

    monkeypatch.setitem(cli.COMMANDS, "stats", buggy)
    code = main(["stats", "--dataset", "synthetic"])
    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback" in err and "rclrec stats: internal error (TypeError)" in err


def test_an_internal_check_of_rclrec_is_a_bug_not_an_input_error(tmp_path, monkeypatch, capsys,
                                                                 tiny_flags):
    """A broken invariant (here: a similarity matrix one column short, caught by the loss's
    shape check, a `raise ValueError` of rclrec) keeps its traceback: it is not the user's."""
    from rclrec.methods import rcl

    real = rcl.pair_similarity
    monkeypatch.setattr(rcl, "pair_similarity", lambda *a, **k: real(*a, **k)[:, :-1])
    code = main(["train", *tiny_flags, "--method", "rcl", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "Traceback" in err and "similarity has shape" in err
    assert "rclrec train: internal error (ValueError)" in err


def test_the_verdict_does_not_read_the_source_on_disk(monkeypatch, capsys):
    """Input or bug is decided by the exception's class alone: a source file edited (or gone)
    while a long process runs cannot change it, nor can a library ValueError raised while a
    `raise` statement of rclrec formats its message."""
    import linecache

    from rclrec import cli
    from rclrec.config import ConfigError

    def raises_while_formatting(args):
        raise ConfigError(f"{int('not a number')}")  # int() fails first: a bug

    monkeypatch.setitem(cli.COMMANDS, "stats", raises_while_formatting)
    assert main(["stats", "--dataset", "synthetic"]) == 1
    assert "internal error (ValueError)" in capsys.readouterr().err

    def setting_error(args):
        raise ConfigError("setting 'x' is bad")

    monkeypatch.setattr(linecache, "getline", lambda *a, **k: "")  # as if the file changed
    monkeypatch.setitem(cli.COMMANDS, "stats", setting_error)
    fails_with_line(capsys, ["stats", "--dataset", "synthetic"], "setting 'x'")


def test_every_input_error_class_derives_from_input_error():
    from rclrec.data.dataset import DataError
    from rclrec.errors import InputError
    from rclrec.eval.ranking import NonFiniteScores
    from rclrec.files import CorruptFile
    from rclrec.locks import LockBusy
    from rclrec.run import RunDiverged

    for cls in (ConfigError, DataError, NonFiniteScores, RunDiverged, CorruptFile, LockBusy):
        assert issubclass(cls, InputError) and issubclass(cls, ValueError), cls


@pytest.mark.parametrize("argv, name", [
    (["similarity", "--dataset", "synthetic", "--n", "0"], "n-gram size"),
    (["similarity", "--dataset", "synthetic", "--alpha", "2"], "alpha"),
])
def test_similarity_settings_are_setting_errors(tmp_path, capsys, argv, name):
    fails_with_line(capsys, [*argv, "--out", str(tmp_path / "s.npz")], name)


def test_analyze_with_no_centres_is_a_setting_error(trained, capsys):
    fails_with_line(capsys, ["analyze", "--run", str(trained), "--centres", "0"], "--centres")


def test_value_error_from_python_itself_is_a_bug(monkeypatch, capsys):
    from rclrec import cli

    # int("x") raises inside rclrec's own function, but not by a raise statement of rclrec.
    monkeypatch.setitem(cli.COMMANDS, "stats", lambda args: cli.positive_int("x"))
    assert main(["stats", "--dataset", "synthetic"]) == 1
    assert "internal error (ValueError)" in capsys.readouterr().err


def test_value_error_from_a_library_is_a_bug_not_an_input_error(monkeypatch, capsys):
    import numpy as np

    from rclrec import cli

    monkeypatch.setitem(cli.COMMANDS, "stats", lambda args: np.zeros(2).reshape(3))
    assert main(["stats", "--dataset", "synthetic"]) == 1
    assert "internal error (ValueError)" in capsys.readouterr().err
