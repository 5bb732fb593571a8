"""The data settings added with column recognition and other splits leave earlier runs alone:
their cell hashes and their saved configs read as before."""

from __future__ import annotations

from rclrec.config import DATA_SETTINGS_ADDED, ExperimentConfig, config_from_dict
from rclrec.grid.cells import config_hash


def saved_before(cfg: ExperimentConfig) -> dict:
    """The config as a run folder saved it before these settings existed."""
    d = cfg.to_dict()
    for key in DATA_SETTINGS_ADDED:
        d["data"].pop(key)
    d["data"].update(user_col="user", item_col="item", time_col="timestamp")
    return d


def test_an_old_saved_config_reads_as_auto_columns_and_keeps_its_hash():
    now = ExperimentConfig()
    old = config_from_dict(saved_before(now))
    assert old.data.user_col == old.data.item_col == old.data.time_col == "auto"
    assert old == now
    assert config_hash(old) == config_hash(now)


def test_a_new_split_setting_changes_the_hash():
    base = config_from_dict({"data": {"dataset": "log.csv"}})
    temporal = config_from_dict({"data": {"dataset": "log.csv", "split": "temporal"}})
    renamed = config_from_dict({"data": {"dataset": "log.csv", "user_col": "visitor"}})
    assert len({config_hash(base), config_hash(temporal), config_hash(renamed)}) == 3
