"""IFormerConfig: presets, validation messages, serialisation, width scaling."""

from __future__ import annotations

import json

import pytest
import yaml

import iformer
from iformer import ConfigError, IFormerConfig


def test_presets_hold_the_paper_lists() -> None:
    small = iformer.preset("small")
    assert small.depths == [3, 3, 9, 3]
    assert small.embed_dims == [96, 192, 320, 384]
    assert small.num_heads == [3, 6, 10, 12]
    assert small.attention_heads == [1] * 3 + [3] * 3 + [7] * 4 + [9] * 5 + [11] * 3
    assert iformer.preset("base").attention_heads == [1] * 4 + [3] * 6 + [8] * 7 + [10] * 7 \
        + [15] * 6
    assert iformer.preset("large").attention_heads == [1] * 4 + [3] * 6 + [10] * 9 \
        + [12] * 9 + [19] * 8
    for name in iformer.PRESET_NAMES:
        config = iformer.preset(name)
        assert config.head_dims == [32] * 4
        assert config.pool_sizes == [2, 2, 1, 1]
        assert config.layer_scale_stages == [3, 4]
        assert iformer.preset(name + "_384").img_size == 384


@pytest.mark.parametrize("alias", ["small", "iformer_small", "iFormer-S", "S", "iformer_small_384"])
def test_preset_names_accept_common_spellings(alias: str) -> None:
    assert iformer.preset_name(alias) == "small"


def test_preset_returns_a_fresh_config_each_time() -> None:
    first = iformer.preset("small")
    first.attention_heads[0] = 2
    assert iformer.preset("small").attention_heads[0] == 1


@pytest.mark.parametrize(("overrides", "message"), [
    (dict(attention_heads=[1] * 17), "attention_heads has 17 entries but depths sum to 18"),
    (dict(attention_heads=[1] * 5 + [7] + [1] * 12),
     "block 5 asks for 7 attention heads but stage 2 has 6 heads"),
    (dict(attention_heads=[-1] + [1] * 17), "block 0 asks for -1 attention heads"),
    (dict(depths=[3, 3, 9]), "depths has 3 entries but iFormer has 4 stages"),
    (dict(depths=[3, 3, 0, 3], attention_heads=[1] * 9), "stage 3 has depth 0"),
    (dict(embed_dims=[96, 192, 321, 384]), "stage 3 has embed_dim 321, which is not a positive "
                                           "multiple of its 10 heads"),
    (dict(num_heads=[3, 6, 0, 12]), "stage 3 has 0 heads"),
    (dict(pool_sizes=[2, 0, 1, 1]), "stage 2 has pool size 0"),
    (dict(layer_scale_stages=[5]), "layer_scale_stages names stage 5"),
    (dict(mlp_ratio=0), "mlp_ratio is 0"),
    (dict(drop_path_rate=1.0), "drop_path_rate is 1.0"),
    (dict(img_size=[224, 224, 3]), "img_size [224, 224, 3] must be one int or [height, width]"),
    (dict(img_size=0), "img_size 0 is not a positive size"),
    (dict(num_classes=-1), "num_classes is -1"),
    (dict(depths="3,3,9,3"), "depths must be a list of integers"),
    (dict(embed_dims=[3, 192, 320, 384], attention_heads=[2] + [1] * 17),
     "block 0 leaves 1 channel to the high-frequency mixer"),
    (dict(embed_dims=[96, 192.5, 320, 384]), "embed_dims must hold integers, got 192.5"),
])
def test_invalid_configs_say_what_is_wrong(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        iformer.preset("small", **overrides)
    assert message in str(error.value)


def test_unknown_names_are_rejected_with_the_choices() -> None:
    with pytest.raises(ConfigError, match="unknown iFormer preset 'tiny'; choose one of "
                                          "iformer_small, iformer_base, iformer_large"):
        iformer.preset("tiny")
    with pytest.raises(ConfigError, match="unknown iFormer option"):
        iformer.preset("small", attention_head=[1] * 18)
    with pytest.raises(ConfigError, match="unknown config key.*ramp"):
        IFormerConfig.from_dict({**iformer.preset("small").to_dict(), "ramp": [1]})
    with pytest.raises(ConfigError, match="config is missing attention_heads"):
        IFormerConfig.from_dict({"depths": [1] * 4, "embed_dims": [8] * 4, "num_heads": [1] * 4})
    with pytest.raises(ConfigError, match="mapping"):
        IFormerConfig.from_dict([1, 2, 3])


def test_dict_json_and_yaml_round_trips() -> None:
    config = iformer.preset("base", attention_heads=list(range(4)) + [0] * 26, img_size=[192, 256],
                            drop_path_rate=0.4, num_classes=10)
    assert IFormerConfig.from_dict(config.to_dict()) == config
    assert IFormerConfig.from_json(config.to_json()) == config
    assert IFormerConfig.from_yaml(config.to_yaml()) == config
    assert json.loads(config.to_json())["img_size"] == [192, 256]
    # Tuples (from callers) and a nesting under `model:` (a training config) are accepted.
    assert IFormerConfig(**{**config.to_dict(), "depths": (4, 6, 14, 6)}) == config
    nested = yaml.safe_dump({"model": config.to_dict(), "epochs": 3})
    assert IFormerConfig.from_yaml(nested) == config


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".json"])
def test_save_and_load(tmp_path, suffix: str) -> None:
    config = iformer.preset("small").scaled(0.25)
    path = config.save(tmp_path / f"model{suffix}")
    assert IFormerConfig.load(path) == config
    assert iformer.create_model_from_file(str(path)).config == config


def test_load_reports_unreadable_and_malformed_files(tmp_path) -> None:
    with pytest.raises(ConfigError, match="cannot read model config"):
        IFormerConfig.load(tmp_path / "missing.yaml")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="is not valid JSON"):
        IFormerConfig.load(tmp_path / "bad.json")
    (tmp_path / "bad.yaml").write_text("depths: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        IFormerConfig.load(tmp_path / "bad.yaml")


@pytest.mark.parametrize("width", [0.25, 0.5, 0.3, 1.5])
def test_scaled_keeps_heads_and_the_ramp(width: float) -> None:
    config = iformer.preset("small")
    proxy = config.scaled(width)
    assert proxy.num_heads == config.num_heads
    assert proxy.attention_heads == config.attention_heads
    assert proxy.high_ratios() == config.high_ratios()
    assert proxy.head_dims == [round(32 * width)] * 4
    assert proxy.depths == config.depths
    assert config.embed_dims == [96, 192, 320, 384]  # the original is untouched


def test_quarter_width_proxy_dims() -> None:
    assert iformer.preset("small").scaled(0.25).embed_dims == [24, 48, 80, 96]


def test_scaled_rejects_useless_widths() -> None:
    with pytest.raises(ConfigError, match="must be positive"):
        iformer.preset("small").scaled(0)


def test_blocks_describe_every_block() -> None:
    config = iformer.preset("small", drop_path_rate=0.2)
    blocks = config.blocks()
    assert [b.stage for b in blocks] == [1] * 3 + [2] * 3 + [3] * 9 + [4] * 3
    assert blocks[0].drop_path == 0.0 and blocks[-1].drop_path == pytest.approx(0.2)
    assert [b.layer_scale for b in blocks] == [False] * 6 + [True] * 12
    assert blocks[6].low_dim == 7 * 32 and blocks[6].high_dim == 320 - 7 * 32
    assert config.high_ratios()[0] == pytest.approx(2 / 3)
    assert config.with_ramp([0] * 18).high_ratios() == [1.0] * 18


def test_load_config_from_a_preset_name_or_a_file(tmp_path) -> None:
    assert iformer.load_config("iformer_base") == iformer.preset("base")
    assert iformer.load_config("iformer_small_384").img_size == 384
    path = iformer.preset("small").scaled(0.5).save(tmp_path / "proxy.json")
    assert iformer.load_config(str(path)) == iformer.preset("small").scaled(0.5)
    with pytest.raises(ConfigError, match="unknown iFormer preset"):
        iformer.load_config("iformer_huge")


@pytest.mark.parametrize(("text", "size"), [("224", (224, 224)), ("224x320", (224, 320)),
                                            ("192*256", (192, 256)), (64, (64, 64))])
def test_parse_image_size(text, size: tuple[int, int]) -> None:
    assert iformer.parse_image_size(text) == size


@pytest.mark.parametrize("text", ["abc", "0", "224x", "1x2x3", "-5"])
def test_parse_image_size_rejects_non_sizes(text: str) -> None:
    with pytest.raises(ConfigError, match="is not an image size"):
        iformer.parse_image_size(text, option="--size")
