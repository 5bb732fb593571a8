"""The method contract, for every method of the registry (a new method is tested by adding it).

Each method trains on a tiny run, its extra loss reaches the encoder, its section is a frozen
dataclass whose fields say where their default comes from, the generic flags set its settings
or are refused, and its cell hash is its resolved section and nothing else.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import typing
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest
import torch

from rclrec.cli import METHOD_FLAGS, method_flag_settings
from rclrec.config import ConfigError, load_config
from rclrec.grid.cells import config_hash, hashed_config
from rclrec.methods import METHODS
from rclrec.methods.base import Batch
from rclrec.run import run_training

WITH_SECTION = sorted(name for name, cls in METHODS.items() if cls.section)
WITH_EXTRA_LOSS = sorted(name for name in METHODS if name != "sasrec")


@pytest.mark.slow
@pytest.mark.parametrize("encoder_name", ["sasrec", "fmlp"])
@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_trains_a_tiny_run_or_names_the_setting_it_refuses(tmp_path, method_run,
                                                                        name, encoder_name):
    cfg = load_config(overrides={**method_run, "method": name, "encoder.name": encoder_name})
    try:
        metrics = run_training(cfg, tmp_path / "r", show_progress=False)
    except ConfigError as e:  # the controls need window instances (rcl.rec_loss_on_positives)
        assert encoder_name == "fmlp" and "rcl.rec_loss_on_positives" in str(e)
        return
    history = metrics["history"][0]
    assert np.isfinite(history["loss"]) and np.isfinite(history["rec"])
    own = set(history) - {"loss", "rec", "epoch", "train_seconds", "valid", "lr"}
    assert name == "sasrec" or any(isinstance(history[k], float) for k in own)
    assert 0 <= metrics["test"]["NDCG@10"] <= 1
    assert metrics["config"]["method"] == name


@pytest.mark.parametrize("encoder_name", ["sasrec", "fmlp"])  # windows, prefixes
@pytest.mark.parametrize("name", WITH_EXTRA_LOSS)
def test_the_extra_loss_reaches_the_encoder(built, name, encoder_name):
    try:
        _, inst, encoder, method = built(name, encoder_name)
    except ConfigError as e:  # the controls need window instances (rcl.rec_loss_on_positives)
        assert encoder_name == "fmlp" and "rcl.rec_loss_on_positives" in str(e)
        return
    rows = np.flatnonzero(inst.whole)[:32]
    batch = Batch.of(inst, rows, torch.device("cpu"))
    loss, stats = method.extra_loss(batch, encoder(batch.inputs), encoder)
    assert loss is not None and torch.isfinite(loss)
    assert all(np.isfinite(float(v)) for v in stats.values())  # floats or 0-d tensors
    loss.backward()
    assert encoder.item_embedding.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", WITH_SECTION)
def test_a_section_is_a_frozen_dataclass_whose_fields_say_where_their_default_comes_from(name):
    cls = METHODS[name].Config
    assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen
    source = inspect.getsource(cls)
    tree = ast.parse(source.lstrip())
    lines = source.lstrip().splitlines()
    fields = {f.name for f in dataclasses.fields(cls)}
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign) and node.target.id in fields:
            line = lines[node.lineno - 1]
            assert "#" in line, f"{cls.__name__}.{node.target.id} has no comment"
    # Loaded without settings, the section holds the class defaults (written once, there).
    assert load_config(overrides={"method": name}).sections[METHODS[name].section] == cls()


@pytest.mark.parametrize("name", sorted(METHODS))
def test_a_generic_flag_sets_the_methods_own_setting_or_is_an_error(name):
    cls = METHODS[name]
    for dest, setting in METHOD_FLAGS.items():
        value = {"similarity": "cos", "variant": "weak"}.get(dest, 0.25)
        if setting in cls.reads():
            settings = method_flag_settings(Namespace(**{dest: value}), name)
            assert settings == {f"{cls.section}.{setting}": value}
        else:
            with pytest.raises(ConfigError, match=f"--{dest.rstrip('_')} is not a setting of "
                                                  f"method {name}"):
                method_flag_settings(Namespace(**{dest: value}), name)


def _another_value(hint, value):
    """A different valid value of a number or flag setting (None for other kinds)."""
    kinds = set(typing.get_args(hint)) or {hint}
    if bool in kinds:
        return not value
    if float in kinds:
        return 0.25 if value in (None, 0.5) else value / 2 if value else 0.5
    if int in kinds:
        return (value or 1) + 1
    return None


@pytest.mark.parametrize("name", WITH_SECTION)
def test_the_cell_hash_is_the_resolved_section_the_method_reads(method_run, name):
    cls = METHODS[name]
    base = {**method_run, "method": name}
    digest = config_hash(load_config(overrides=base))
    hashed = hashed_config(load_config(overrides=base))
    # The shared sections and the method's own, nothing of another method.
    assert set(hashed) == {"method", "data", "encoder", "train", "eval", cls.section}
    others = [n for n, c in METHODS.items() if c.section not in ("", cls.section)]
    for other in others:
        field = dataclasses.fields(METHODS[other].Config)[0]
        new = _another_value(typing.get_type_hints(METHODS[other].Config)[field.name],
                             field.default)
        if new is not None:
            key = f"{METHODS[other].section}.{field.name}"
            assert config_hash(load_config(overrides={**base, key: str(new)})) == digest
    # Each number or flag it reads is part of its cell; one it does not read is not.
    hints = typing.get_type_hints(cls.Config)
    for field in dataclasses.fields(cls.Config):
        new = _another_value(hints[field.name], hashed[cls.section][field.name])
        if new is None:
            continue
        changed = config_hash(load_config(overrides={**base, f"{cls.section}.{field.name}":
                                                     str(new)}))
        assert (changed != digest) == (field.name in cls.reads()), field.name


def test_the_old_baseline_section_is_an_error_naming_the_new_one(tmp_path):
    with pytest.raises(ConfigError, match="duorec.tau"):
        load_config(overrides={"method": "duorec", "baseline.tau": "0.2"})
    toml = tmp_path / "c.toml"
    toml.write_text('method = "ct4rec"\n[baseline]\nur_weight = 1.0\n')
    with pytest.raises(ConfigError, match=r"\[baseline\] section is gone.*ct4rec.ur_weight"):
        load_config(toml)


def test_a_config_saved_with_the_baseline_section_reads_into_the_methods_own():
    from rclrec.config import config_from_dict

    now = load_config(overrides={"method": "cl4srec", "cl4srec.tau": "0.5"}).to_dict()
    saved = {k: v for k, v in now.items() if k not in {c.section for c in METHODS.values()}}
    saved["baseline"] = {"weight": None, "tau": 0.5, "ratios": "duorec", "mask_token": "row",
                         "lmd": None}
    assert config_from_dict(saved) == config_from_dict(now)
    saved["baseline"]["ratios"] = "mclrec"
    assert config_from_dict(saved).cl4srec.crop == 0.5  # MCLRec's ratios
    saved["baseline"]["rd_weight"] = 2.0
    with pytest.raises(ConfigError, match="baseline.rd_weight"):
        config_from_dict(saved)


def _imports(path: Path, package: Path) -> set[str]:
    """The rclrec modules a file imports, at any depth (function-level imports count)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return {n for n in names if n.startswith("rclrec")}


def test_no_method_imports_the_run_recipe_and_no_import_cycle_passes_through_the_methods():
    package = Path(__import__("rclrec").__file__).parent
    modules = {}
    for path in package.rglob("*.py"):
        name = ".".join(("rclrec", *path.relative_to(package).with_suffix("").parts))
        modules[name.removesuffix(".__init__")] = path
    graph = {m: _imports(p, package) & set(modules) - {m} for m, p in modules.items()}

    def reaches(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        return seen

    methods = [m for m in modules if m.startswith("rclrec.methods")]
    for module in [*methods, "rclrec.run", "rclrec.config", "rclrec.grid.cells"]:
        assert module not in reaches(module), f"{module} is part of an import cycle"
    assert not any("rclrec.run" in graph[m] for m in methods)
