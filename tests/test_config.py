import pytest

from rclrec.config import ConfigError, config_from_dict, load_config, parse_overrides


def test_defaults_and_overrides_are_typed(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('method = "sasrec"\n[train]\nlr = 0.01\nepochs = 3\n')
    cfg = load_config(toml, {"train.epochs": "5", "eval.ks": "5,10", "rcl.mask_same_target": "1"})
    assert cfg.train.lr == 0.01 and cfg.train.epochs == 5
    assert cfg.eval.ks == (5, 10) and cfg.rcl.mask_same_target is True
    assert config_from_dict(cfg.to_dict()) == cfg


def test_unknown_key_suggests_the_closest():
    with pytest.raises(ConfigError, match="train.lr"):
        load_config(overrides={"train.lrr": "1"})
    with pytest.raises(ConfigError, match="train.patience"):
        parse_overrides(["patience=3"])


def test_unknown_key_in_toml(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text("[train]\nbatchsize = 3\n")
    with pytest.raises(ConfigError, match="train.batch_size"):
        load_config(toml)


def test_bad_values():
    with pytest.raises(ConfigError, match="train.epochs"):
        load_config(overrides={"train.epochs": "many"})
    with pytest.raises(ConfigError, match="train.loss"):
        load_config(overrides={"train.loss": "mse"})
    with pytest.raises(ConfigError, match="num_heads"):
        load_config(overrides={"encoder.hidden_dim": "10", "encoder.num_heads": "3"})
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("/nonexistent.toml")


def test_rcl_settings_are_checked():
    with pytest.raises(ConfigError, match="rcl.variant"):
        load_config(overrides={"rcl.variant": "best"})
    with pytest.raises(ConfigError, match="rcl.alpha"):
        load_config(overrides={"rcl.alpha": "1.5"})
    with pytest.raises(ConfigError, match="rcl.similarity"):
        load_config(overrides={"rcl.similarity": "cosine"})


def test_the_model_file_reader_registers_the_method_sections():
    """`rclrec analyze` reads a saved config through rclrec.model_file before anything else
    imported rclrec.methods: the sections (and old saved `[baseline]` values) must be known."""
    import subprocess
    import sys

    code = ("import rclrec.model_file\n"
            "from rclrec.config import config_from_dict\n"
            "cfg = config_from_dict({'method': 'duorec', 'baseline': {'tau': 0.2}})\n"
            "print(cfg.settings.tau)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "0.2"


@pytest.mark.parametrize("loss, key, value", [("ce", "negatives", "64"), ("bce", "gbce_t", "0.5"),
                                              ("sampled", "gbce_t", "0.5")])
def test_a_loss_setting_the_chosen_loss_does_not_read_is_an_error(loss, key, value):
    with pytest.raises(ConfigError, match=f"train.{key} is read only by"):
        load_config(overrides={"train.loss": loss, f"train.{key}": value})
    assert load_config(overrides={"train.loss": "gbce", f"train.{key}": value}).train.loss == "gbce"
