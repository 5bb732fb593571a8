"""Typed configuration: one frozen dataclass per concern, loaded from TOML plus overrides.

Precedence: --set key=value  >  --config FILE.toml  >  defaults below.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from rclrec.errors import InputError


class ConfigError(InputError):
    """An unknown or badly typed setting; the message names the key and suggests a valid one."""


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


@dataclass(frozen=True)
class ExperimentConfig:
    method: str = "sasrec"  # (str) training method, see `rclrec train --help`
    data: DataConfig = field(default_factory=DataConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    rcl: RCLConfig = field(default_factory=lambda: RCLConfig())
    baseline: BaselineConfig = field(default_factory=lambda: BaselineConfig())

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _check_finite(section: Any, name: str) -> None:
    """NaN passes every range check (all its comparisons are false): refuse it, and infinity."""
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"setting '{name}.{f.name}' must be a finite number, got {value}")


def _choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{key}={value!r} is not one of {', '.join(choices)}")


# The settings that choose and weight weak positives: the "strong" variant (Eq. 12 alone) reads
# none of them, so its cells do not depend on them (rclrec/grid/cells.py).
WEAK_POSITIVE_SETTINGS = ("similarity", "ngram", "alpha", "selection", "max_neighbours",
                          "semantic_every", "weight_floor")


@dataclass(frozen=True)
class RCLConfig:
    variant: str = "rcl"  # (str) rcl | unweight | weak | strong | three_pairs
    similarity: str = "ngram"  # (str) jaccard | tfidf | ngram | levenshtein | semantic
    ngram: int = 2  # (int) n of the n-gram metric
    alpha: float = 0.05  # (float) weak positives = top alpha fraction of sequences
    selection: str = "row"  # (str) row (paper text) | global (official code) top-alpha
    max_neighbours: int = 256  # (int) cap on weak candidates per sequence
    weight: float = 0.1  # (float) lambda of Eq. 18
    # Defaults picked on validation NDCG@10 (docs/RESULTS.md, "RCL pilot"): raw dot products
    # at tau 1 (the paper's reading) let the contrast swamp the recommendation loss early on.
    tau: float = 0.5  # (float) temperature of Eq. 12 and 16
    score: str = "cosine"  # (str) cosine | dot (paper)
    mask_same_target: bool = False  # (bool) mask in-batch same-target false negatives
    weight_floor: float = 0.0  # (float) eps added to similarities in Eq. 16 (0 = paper)
    semantic_every: int = 5  # (int) epochs between rebuilds of the semantic index
    # None: on with window instances (SASRec), off with prefix instances (FMLP-Rec), each
    # picked on validation (docs/RESULTS.md, "Recommendation loss on the positives"; Beauty,
    # quick profile, seed 0): windows .0682 on vs .0604 off, prefixes .0560 on vs .0702 off.
    # The lambda-0 controls do as well: the gain or loss is the training on the positives.
    rec_loss_on_positives: bool | None = None  # (bool) positives also get the rec. loss
    # sequences: other users' whole training sequences with the centre's target (the paper);
    # prefixes: also any prefix of another user's sequence followed by that target (docs/METHOD.md
    # section 5): on Beauty the share of centres with a strong positive rises from 83.2% to 99.7%.
    strong_positives: str = "sequences"  # (str) sequences | prefixes

    def positives_get_rec_loss(self, instances: str) -> bool:
        """rec_loss_on_positives, with None resolved by the kind of training instances."""
        if self.rec_loss_on_positives is None:
            return instances == "windows"
        return self.rec_loss_on_positives

    def __post_init__(self) -> None:
        _check_finite(self, "rcl")
        _choice("rcl.variant", self.variant, ("rcl", "unweight", "weak", "strong", "three_pairs",
                                              "official"))
        _choice("rcl.similarity", self.similarity,
                ("jaccard", "tfidf", "ngram", "levenshtein", "semantic"))
        _choice("rcl.selection", self.selection, ("row", "global"))
        _choice("rcl.score", self.score, ("cosine", "dot"))
        _choice("rcl.strong_positives", self.strong_positives, ("sequences", "prefixes"))
        if self.variant == "official" and (self.score != "dot" or self.mask_same_target
                                           or self.weight_floor):
            raise ConfigError("rcl.variant=official (the authors' loss) needs rcl.score=dot, "
                              "rcl.mask_same_target=false and rcl.weight_floor=0")
        if not 0 < self.alpha <= 1:
            raise ConfigError(f"rcl.alpha must be in (0, 1], got {self.alpha}")
        if self.tau <= 0:
            raise ConfigError(f"rcl.tau must be > 0, got {self.tau}")
        for key in ("ngram", "max_neighbours", "semantic_every"):
            if getattr(self, key) < 1:
                raise ConfigError(f"rcl.{key} must be >= 1")


@dataclass(frozen=True)
class BaselineConfig:
    """Contrastive baselines (rclrec/methods/*.py); None = the method's own default."""

    weight: float | None = None  # (float) loss weight (cl4srec, duorec, contrarec, hpm)
    tau: float | None = None  # (float) temperature (cl4srec, duorec, mclrec, hpm)
    similarity: str | None = None  # (str) dot | cos (cl4srec, duorec)
    ratios: str | None = None  # (str) duorec | mclrec | iclrec view ratios (cl4srec)
    mask_token: str | None = None  # (str) row ([mask] row) | pad (cl4srec, mclrec, contrarec)
    mask_same_target: bool | None = None  # (bool) duorec: drop same-target negatives
    rd_weight: float | None = None  # (float) ct4rec output-consistency weight
    ur_weight: float | None = None  # (float) ct4rec representation-consistency weight
    ur_tau: float | None = None  # (float) ct4rec
    clip: float | None = None  # (float) ct4rec logit clip
    ur_positions: str | None = None  # (str) ct4rec: last | all
    lmd: float | None = None  # (float) mclrec (None = per dataset)
    beta: float | None = None  # (float) mclrec (None = per dataset)
    use_rl: bool | None = None  # (bool) mclrec margin regulariser
    aug_lr: float | None = None  # (float) mclrec augmenter learning rate
    ccc_tau: float | None = None  # (float) contrarec context-context temperature
    beta_a: int | None = None  # (int) contrarec Beta(a, b) mask/reorder ratio
    beta_b: int | None = None  # (int) contrarec
    cross_weight: float | None = None  # (float) hpm item/category cross term
    normalize: bool | None = None  # (bool) hpm cosine instead of dot
    category_file: str | None = None  # (str) hpm: lines "item category"
    num_clusters: int | None = None  # (int) hpm stand-in categories (co-occurrence clusters)

    def __post_init__(self) -> None:
        _check_finite(self, "baseline")
        if self.mask_token is not None:
            _choice("baseline.mask_token", self.mask_token, ("row", "pad"))
        if self.similarity is not None:
            _choice("baseline.similarity", self.similarity, ("dot", "cos"))


# ---------------------------------------------------------------- loading and overrides


def _fields(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


def _all_keys(cls: type = ExperimentConfig, prefix: str = "") -> list[str]:
    keys = []
    hints = typing.get_type_hints(cls)
    for name in _fields(cls):
        if dataclasses.is_dataclass(hints[name]):
            keys += _all_keys(hints[name], f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


def _unknown(key: str) -> ConfigError:
    close = difflib.get_close_matches(key, _all_keys(), n=1, cutoff=0.5)
    if not close:  # try the last part alone: "lr" -> "train.lr"
        tail = key.rsplit(".", 1)[-1]
        close = [k for k in _all_keys() if k.rsplit(".", 1)[-1] == tail][:1]
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ConfigError(f"unknown setting {key!r}{hint}")


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
    kwargs = {}
    for name, value in values.items():
        key = prefix + name
        if name not in fields:
            raise _unknown(key)
        if dataclasses.is_dataclass(hints[name]):
            if not isinstance(value, dict):
                raise ConfigError(f"setting {key!r} is a section; use {key}.<name> = value")
            kwargs[name] = _build(hints[name], value, key + ".")
        else:
            kwargs[name] = _coerce(key, value, hints[name])
    return cls(**kwargs)


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
    return _build(ExperimentConfig, values)
