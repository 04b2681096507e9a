import pytest

from training.config import TrainConfig


def test_defaults_are_the_real_recipe():
    config = TrainConfig()
    assert config.max_length == 128
    assert config.labels == ("welcoming", "curious", "hostile")
    assert config.base_model == "models/base/multilingual-e5-small"


def test_unknown_key_is_an_error_naming_it():
    with pytest.raises(ValueError, match=r"unknown config keys: \['epoch'\]"):
        TrainConfig.from_dict({"epoch": 3})


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("epochs", 0, "epochs must be in [1, 100], got 0"),
        ("learning_rate", 2.0, "learning_rate must be in (0, 1), got 2.0"),
        ("pooling", "max", "pooling must be 'mean' or 'cls', got 'max'"),
        ("max_length", 4, "max_length must be in [8, 512], got 4"),
        ("device", "tpu", "device must be auto, cpu or cuda, got 'tpu'"),
    ],
)
def test_bad_ranges_are_reported(field, value, message):
    with pytest.raises(ValueError) as error:
        TrainConfig(**{field: value})
    assert message in str(error.value)


def test_toml_with_overrides(tmp_path):
    path = tmp_path / "train.toml"
    path.write_text("[train]\nepochs = 7\nbatch_size = 4\n")
    config = TrainConfig.from_toml(path, {"batch_size": 32, "seed": None})
    assert (config.epochs, config.batch_size, config.seed) == (7, 32, 13)


def test_digest_changes_with_any_setting():
    assert TrainConfig().digest() == TrainConfig().digest()
    assert TrainConfig().digest() != TrainConfig(seed=14).digest()
