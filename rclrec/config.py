"""Typed configuration: one frozen dataclass per concern, loaded from TOML plus overrides.

Precedence: --set key=value  >  --config FILE.toml  >  defaults below.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rclrec.errors import ConfigError  # defined there; rclrec.config.ConfigError for callers


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "beauty"  # (str) dataset name or file path
    data_dir: str | None = None  # (str) where dataset names are looked up first
    max_len: int | None = None  # (int) input length; None = 200 for MovieLens, 50 otherwise
    user_col: str = "auto"  # (str) raw logs: user column; auto = the usual names (docs/DATA.md)
    item_col: str = "auto"  # (str) raw logs: item column; auto = the usual names
    time_col: str = "auto"  # (str) raw logs: time column; auto = usual names; none = file order
    k_core: int = 5  # (int) raw logs: iterated k-core filter
    drop_repeats: bool = False  # (bool) raw logs: drop immediate repeats of an item
    bad_times: str = "error"  # (str) raw logs: error | drop rows with a missing or bad time
    split: str = "leave_one_out"  # (str) leave_one_out | temporal | files (docs/DATA.md)
    test_cutoff: str | None = None  # (str) temporal: first test time (number or ISO 8601)
    valid_cutoff: str | None = None  # (str) temporal: first validation time
    test_fraction: float = 0.1  # (float) temporal, no test_cutoff: latest share of interactions
    valid_fraction: float = 0.1  # (float) temporal, no valid_cutoff: the share before it
    valid_file: str | None = None  # (str) split=files: validation interactions (train = dataset)
    test_file: str | None = None  # (str) split=files: test interactions

    def __post_init__(self) -> None:
        _check_finite(self, "data")
        if self.max_len is not None and self.max_len < 1:
            raise ConfigError(f"data.max_len must be >= 1, got {self.max_len}")
        _choice("data.bad_times", self.bad_times, ("error", "drop"))
        _choice("data.split", self.split, ("leave_one_out", "temporal", "files"))
        for key in ("test_fraction", "valid_fraction"):
            if not 0.0 < getattr(self, key) < 1.0:
                raise ConfigError(f"data.{key} must be in (0, 1), got {getattr(self, key)}")
        if self.test_fraction + self.valid_fraction >= 1.0:
            raise ConfigError("data.test_fraction + data.valid_fraction must be below 1")
        if self.split == "files" and not (self.valid_file and self.test_file):
            raise ConfigError("data.split=files needs data.valid_file and data.test_file (the "
                              "training file is data.dataset)")


# Data settings added after the first benchmark cells, with the defaults the column settings
# had then: cells.py hashes a config as before when these are at their defaults, and
# config_from_dict reads a config saved before them as "auto" columns.
DATA_SETTINGS_ADDED = ("bad_times", "split", "test_cutoff", "valid_cutoff", "test_fraction",
                       "valid_fraction", "valid_file", "test_file")
DATA_COLUMNS_BEFORE_AUTO = {"user_col": "user", "item_col": "item", "time_col": "timestamp"}


# Every setting added after the first benchmark cells, per section: a hash leaves each out
# while it is at its default, so the cells made before it keep their names.
# The train settings that only some losses read.
LOSS_SETTINGS = {"negatives": ("sampled", "gbce"), "gbce_t": ("gbce",)}
SETTINGS_ADDED = {"data": DATA_SETTINGS_ADDED, "train": ("precision", "negatives", "gbce_t")}


def settings_as_hashed(config: dict[str, Any]) -> dict[str, Any]:
    """A config dict as cells were hashed before the settings of SETTINGS_ADDED existed.

    "auto" columns read the same column as the old default name whenever both read the file.
    """
    defaults = {"data": dataclasses.asdict(DataConfig()),
                "train": dataclasses.asdict(TrainConfig())}
    out = dict(config)
    for section, added in SETTINGS_ADDED.items():
        out[section] = {k: v for k, v in config[section].items()
                        if k not in added or v != defaults[section][k]}
    for key, old in DATA_COLUMNS_BEFORE_AUTO.items():
        if out["data"].get(key) == "auto":
            out["data"][key] = old
    return out


@dataclass(frozen=True)
class EncoderConfig:
    name: str = "sasrec"  # (str) sasrec | fmlp
    hidden_dim: int = 64  # (int) d
    num_blocks: int = 2  # (int) encoder blocks
    num_heads: int = 2  # (int) attention heads (sasrec)
    inner_dim: int = 256  # (int) feed-forward width
    dropout: float = 0.5  # (float) hidden and embedding dropout
    attn_dropout: float = 0.5  # (float) attention-probability dropout (sasrec)
    max_len: int = 50  # (int) maximum input length (filled from data.max_len)
    norm_first: bool = False  # (bool) pre-LN blocks (original SASRec) instead of post-LN (RecBole)

    def __post_init__(self) -> None:
        _check_finite(self, "encoder")
        for key in ("hidden_dim", "num_heads", "inner_dim", "max_len"):
            if getattr(self, key) < 1:
                raise ConfigError(f"encoder.{key} must be >= 1, got {getattr(self, key)}")
        if self.num_blocks < 0:
            raise ConfigError(f"encoder.num_blocks must be >= 0, got {self.num_blocks}")
        if self.hidden_dim % max(self.num_heads, 1):
            raise ConfigError(f"encoder.hidden_dim={self.hidden_dim} is not divisible by "
                              f"encoder.num_heads={self.num_heads}")
        for key in ("dropout", "attn_dropout"):
            if not 0.0 <= getattr(self, key) < 1.0:
                raise ConfigError(f"encoder.{key} must be in [0, 1)")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 200  # (int) maximum epochs
    batch_size: int = 256  # (int) training instances per step
    lr: float = 1e-3  # (float) Adam learning rate
    weight_decay: float = 0.0  # (float) Adam weight decay
    patience: int = 10  # (int) epochs without a better validation NDCG@10 before stopping
    # (str) ce = full softmax over all items | bce = one sampled negative | sampled = softmax over
    # in-batch and uniform negatives, log-Q corrected | gbce = gSASRec's gBCE (docs/LOSSES.md)
    loss: str = "ce"
    negatives: int = 256  # (int) uniform negatives: sampled = per step, shared; gbce = per position
    gbce_t: float = 0.75  # (float) gbce: calibration t in [0, 1] (0 = BCE, 1 = fully calibrated)
    instances: str = "auto"  # (str) windows | prefixes | auto (windows for causal encoders)
    max_steps: int | None = None  # (int) cap on steps per epoch (smoke runs)
    seed: int = 0  # (int) seeds torch and numpy
    device: str = "auto"  # (str) auto | cpu | cuda | cuda:N
    eval_batch_size: int = 1024  # (int) users per evaluation batch
    threads: int | None = None  # (int) torch CPU threads; None = torch default
    precision: str = "fp32"  # (str) fp32 | bf16 = bf16 autocast of the forward pass (CE in fp32)
    track: str = "none"  # (str) none | tensorboard | mlflow: also log each epoch (tracking.py)

    def __post_init__(self) -> None:
        from rclrec.tracking import TRACKERS  # here: tracking imports this module

        _check_finite(self, "train")
        _choice("train.loss", self.loss, ("ce", "bce", "sampled", "gbce"))
        _choice("train.track", self.track, tuple(TRACKERS))
        _choice("train.instances", self.instances, ("auto", "windows", "prefixes"))
        _choice("train.precision", self.precision, ("fp32", "bf16"))
        for key in ("epochs", "batch_size", "patience", "eval_batch_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"train.{key} must be >= 1, got {getattr(self, key)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError("train.max_steps must be >= 1")
        if self.lr <= 0:
            raise ConfigError("train.lr must be > 0")
        if self.negatives < (1 if self.loss == "gbce" else 0):
            raise ConfigError(f"train.negatives must be >= {1 if self.loss == 'gbce' else 0}, "
                              f"got {self.negatives}")
        if not 0.0 <= self.gbce_t <= 1.0:
            raise ConfigError(f"train.gbce_t must be in [0, 1], got {self.gbce_t}")
        # A setting the chosen loss does not read would be ignored yet give the run a new hash.
        for key, losses in LOSS_SETTINGS.items():
            default = type(self).__dataclass_fields__[key].default
            if self.loss not in losses and getattr(self, key) != default:
                raise ConfigError(f"train.{key} is read only by train.loss = "
                                  f"{' or '.join(losses)}, not {self.loss!r}")


@dataclass(frozen=True)
class EvalConfig:
    exclude_history: bool = True  # (bool) rank only items not in the input (the target stays)
    ks: tuple[int, ...] = (5, 10, 20)  # (list) cut-offs of HR@K and NDCG@K
    select_metric: str = "NDCG@10"  # (str) validation metric for early stopping

    def __post_init__(self) -> None:
        if not self.ks or min(self.ks) < 1:
            raise ConfigError(f"eval.ks must be cut-offs >= 1, got {list(self.ks)}")
        _choice("eval.select_metric", self.select_metric,
                tuple(f"{m}@{k}" for m in ("HR", "NDCG", "MRR") for k in self.ks))


# The methods' own sections ([rcl], [duorec], ...), each a frozen dataclass defined beside its
# method: rclrec/methods/__init__.py registers them (this module cannot import the methods,
# which import it).
METHOD_SECTIONS: dict[str, type] = {}  # section name -> its dataclass
SECTION_OF_METHOD: dict[str, str] = {}  # method name -> the section it reads ("" = none)


def register_methods(section_of: dict[str, str], sections: dict[str, type]) -> None:
    """Declare the methods' sections (called by the method registry, rclrec/methods/)."""
    SECTION_OF_METHOD.update(section_of)
    METHOD_SECTIONS.update(sections)


def _method_sections() -> dict[str, type]:
    if not METHOD_SECTIONS:
        raise RuntimeError("no method sections are registered: import rclrec.methods (rclrec.run "
                           "and rclrec.model_file do) before building a configuration")
    return METHOD_SECTIONS


def _default_sections() -> dict[str, Any]:
    return {name: section() for name, section in _method_sections().items()}


@dataclass(frozen=True)
class ExperimentConfig:
    method: str = "sasrec"  # (str) training method, see `rclrec train --help`
    data: DataConfig = field(default_factory=DataConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    # Every method's own section by name (cfg.rcl, cfg.duorec, ...); saved as top-level sections.
    sections: dict[str, Any] = field(default_factory=_default_sections)

    def __getattr__(self, name: str) -> Any:
        sections = self.__dict__.get("sections")
        if sections is not None and name in sections:
            return sections[name]
        raise AttributeError(f"{type(self).__name__} has no attribute or section {name!r}")

    @property
    def settings(self) -> Any:
        """The chosen method's own section (None for a method without settings)."""
        return self.sections.get(SECTION_OF_METHOD.get(self.method, ""))

    def with_section(self, name: str, section: Any) -> ExperimentConfig:
        """A copy with one method section replaced."""
        return dataclasses.replace(self, sections={**self.sections, name: section})

    def to_dict(self) -> dict[str, Any]:
        """Every section, the methods' ones at the top level (the layout of saved configs)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.name != "sections"}
        out = {k: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v
               for k, v in out.items()}
        return {**out, **{name: dataclasses.asdict(s) for name, s in self.sections.items()}}

    def read_settings(self) -> dict[str, Any]:
        """``to_dict`` restricted to what a run of this config reads: the shared sections and
        the chosen method's own (what a cell's hash covers)."""
        own = SECTION_OF_METHOD.get(self.method, "")
        return {k: v for k, v in self.to_dict().items() if k not in self.sections or k == own}


def _check_finite(section: Any, name: str) -> None:
    """NaN passes every range check (all its comparisons are false): refuse it, and infinity."""
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"setting '{name}.{f.name}' must be a finite number, got {value}")


def _choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{key}={value!r} is not one of {', '.join(choices)}")


# For the method sections defined beside each method (rclrec/methods/).
check_finite = _check_finite
check_choice = _choice


# ---------------------------------------------------------------- loading and overrides


def _fields(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


def _all_keys(cls: type = ExperimentConfig, prefix: str = "") -> list[str]:
    keys = []
    hints = typing.get_type_hints(cls)
    for name in _fields(cls):
        if cls is ExperimentConfig and name == "sections":  # the methods' sections, by name
            for section, section_cls in _method_sections().items():
                keys += _all_keys(section_cls, f"{section}.")
        elif dataclasses.is_dataclass(hints[name]):
            keys += _all_keys(hints[name], f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


def _unknown(key: str) -> ConfigError:
    if key.split(".")[0] == "baseline":
        return _moved_baseline_setting(key)
    close = difflib.get_close_matches(key, _all_keys(), n=1, cutoff=0.5)
    if not close:  # try the last part alone: "lr" -> "train.lr"
        tail = key.rsplit(".", 1)[-1]
        close = [k for k in _all_keys() if k.rsplit(".", 1)[-1] == tail][:1]
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ConfigError(f"unknown setting {key!r}{hint}")


def _moved_baseline_setting(key: str) -> ConfigError:
    """The one [baseline] section shared by six methods became a section per method."""
    name = key.split(".", 1)[1] if "." in key else ""
    owners = [f"{section}.{name}" for section, cls in _method_sections().items()
              if name in _fields(cls)]
    where = (f"use {' or '.join(owners)}" if owners else
             f"the sections are {', '.join(f'[{s}]' for s in _method_sections())}")
    return ConfigError(f"setting {key!r}: the [baseline] section is gone, each method has a "
                       f"section of its own (e.g. [duorec] tau = 0.2); {where}")


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Convert a TOML value or a --set string to the field's type."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(key, value, inner[0])
    if origin is tuple:
        if isinstance(value, str):
            value = [v for v in value.strip("[]() ").split(",") if v.strip()]
        return tuple(_coerce(key, v, args[0]) for v in value)
    try:
        if hint is bool:
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("true", "1", "yes", "on"):
                return True
            if str(value).lower() in ("false", "0", "no", "off"):
                return False
            raise ValueError
        if hint is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if hint is float:
            return float(value)  # non-finite values are refused by each section (_check_finite)
        if hint is str:
            return str(value)
    except (TypeError, ValueError):
        pass
    else:
        return value
    raise ConfigError(f"setting {key!r} expects {getattr(hint, '__name__', hint)}, got {value!r}")


def _build(cls: type, values: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    fields = _fields(cls)
    kwargs: dict[str, Any] = {}
    sections: dict[str, Any] = {}  # the methods' own (ExperimentConfig only)
    for name, value in values.items():
        key = prefix + name
        if cls is ExperimentConfig and name in _method_sections():
            sections[name] = _build(_method_sections()[name], _section_values(key, value),
                                    key + ".")
        elif name not in fields or (cls is ExperimentConfig and name == "sections"):
            raise _unknown(f"{key}.{next(iter(value))}" if key == "baseline"
                           and isinstance(value, dict) and value else key)
        elif dataclasses.is_dataclass(hints[name]):
            kwargs[name] = _build(hints[name], _section_values(key, value), key + ".")
        else:
            kwargs[name] = _coerce(key, value, hints[name])
    if sections:
        kwargs["sections"] = {**_default_sections(), **sections}
    return cls(**kwargs)


def _section_values(key: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"setting {key!r} is a section; use {key}.<name> = value")
    return value


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        parts = key.split(".")
        node = nested
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise _unknown(key)
        node[parts[-1]] = value
    return nested


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """Parse ``key=value`` strings (from --set) into a flat dict, validating each key."""
    flat = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        key = key.strip()
        if key not in _all_keys():
            raise _unknown(key)
        flat[key] = value.strip()
    return flat


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None,
                base: dict[str, Any] | None = None) -> ExperimentConfig:
    """Resolve the configuration: defaults < ``base`` < TOML file < overrides (flat dotted keys).

    Raises:
        ConfigError: unknown key (with the closest valid key), wrong type, bad value.
    """
    values: dict[str, Any] = _nest(base or {})
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"--config: {path} does not exist")
        try:
            with open(path, "rb") as f:
                values = _merge(values, tomllib.load(f))
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: {e}") from e
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: not UTF-8 text, so not a TOML file") from None
    values = _merge(values, _nest(overrides or {}))
    return _build(ExperimentConfig, values)


def config_from_dict(values: dict[str, Any]) -> ExperimentConfig:
    """Rebuild a config saved with ``to_dict`` (run folders, checkpoints)."""
    data = values.get("data")
    if isinstance(data, dict) and "split" not in data:  # saved before column recognition
        data = {**data, **{key: "auto" for key, old in DATA_COLUMNS_BEFORE_AUTO.items()
                           if data.get(key) == old}}
        values = {**values, "data": data}
    if "baseline" in values:  # saved before the methods had sections of their own
        values = _from_baseline_section(values)
    return _build(ExperimentConfig, values)


def _from_baseline_section(values: dict[str, Any]) -> dict[str, Any]:
    """A saved config with the old shared [baseline] section: its set values (None meant "the
    method's default") move to the saved method's own section. A method's section class may
    map an old preset to its settings (``BASELINE_PRESETS``: old name -> value -> settings).

    Raises:
        ConfigError: a set value that the method's section has no place for.
    """
    values = dict(values)
    old = {k: v for k, v in (values.pop("baseline") or {}).items() if v is not None}
    _method_sections()
    section = SECTION_OF_METHOD.get(str(values.get("method", "sasrec")), "")
    if not old or not section or section in values:
        return values
    cls = _method_sections()[section]
    presets = getattr(cls, "BASELINE_PRESETS", {})
    moved: dict[str, Any] = {}
    for name, value in old.items():
        if name in _fields(cls):
            moved[name] = value
        elif value in presets.get(name, {}):
            moved.update(presets[name][value])
        else:
            raise ConfigError(f"baseline.{name} = {value!r} has no counterpart in [{section}]")
    return {**values, section: moved}
