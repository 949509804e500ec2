"""timm integration: registration, overrides, pretrained metadata, feature extraction,
classifier reset, checkpoint loading."""

from __future__ import annotations

import pytest
import timm
import timm.optim
import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

import iformer

# A small network through timm's overrides, so building and running it is quick.
SMALL_AND_NARROW = dict(embed_dims=[24, 48, 80, 96], img_size=64, num_classes=10)
PAPER_NAMES = ["iformer_small", "iformer_base", "iformer_large"]


def test_registered_names() -> None:
    names = set(timm.list_models("iformer_*"))
    for name in PAPER_NAMES:
        assert {name, name + "_384"} <= names
    assert timm.is_model("iformer_small") and timm.is_model("iformer_large_384")


def test_create_model_with_a_ramp_and_overrides() -> None:
    ramp = [0, 1, 2, 3, 0, 6, 10, 5, 5, 5, 5, 5, 5, 5, 5, 12, 0, 1]
    model = timm.create_model("iformer_small", num_classes=10, attention_heads=ramp,
                              img_size=64, embed_dims=[24, 48, 80, 96], drop_path_rate=0.1)
    config = model.config
    assert isinstance(config, iformer.IFormerConfig)
    assert config == iformer.preset("small", attention_heads=ramp, num_classes=10, img_size=64,
                                    embed_dims=[24, 48, 80, 96], drop_path_rate=0.1)
    assert model.pos_embed1.shape == (1, 16, 16, 24)
    assert model.get_classifier().out_features == 10
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 10)


def test_create_model_rejects_a_bad_ramp_with_the_config_message() -> None:
    with pytest.raises(iformer.ConfigError, match="attention_heads has 3 entries but depths "
                                                  "sum to 18"):
        timm.create_model("iformer_small", attention_heads=[1, 2, 3])


@pytest.mark.parametrize("name", PAPER_NAMES)
def test_pretrained_cfg_metadata(name: str) -> None:
    for variant, size, crop_pct in ((name, 224, 0.9), (name + "_384", 384, 1.0)):
        with torch.device("meta"):
            model = timm.create_model(variant)
        cfg = model.pretrained_cfg
        assert cfg["url"].endswith(f"/{variant}.pth") and cfg["url"].startswith("https://")
        assert cfg["input_size"] == (3, size, size)
        assert cfg["crop_pct"] == crop_pct
        assert cfg["interpolation"] == "bicubic"
        assert tuple(cfg["mean"]) == IMAGENET_DEFAULT_MEAN
        assert tuple(cfg["std"]) == IMAGENET_DEFAULT_STD
        assert cfg["num_classes"] == 1000
        assert model.get_parameter(cfg["first_conv"] + ".weight").shape[1] == 3
        assert model.get_submodule(cfg["classifier"]) is model.get_classifier()
        assert model.config.input_size == (size, size)
        assert model.pos_embed1.shape[1:3] == (size // 4, size // 4)


def test_features_only_returns_four_nchw_maps() -> None:
    model = timm.create_model("iformer_small", features_only=True, **SMALL_AND_NARROW).eval()
    assert model.feature_info.channels() == [24, 48, 80, 96]
    assert model.feature_info.reduction() == [4, 8, 16, 32]
    with torch.no_grad():
        maps = model(torch.randn(2, 3, 64, 96))
    assert [tuple(m.shape) for m in maps] == [(2, 24, 16, 24), (2, 48, 8, 12), (2, 80, 4, 6),
                                              (2, 96, 2, 3)]
    assert all(m.is_contiguous() for m in maps)


def test_features_only_with_out_indices_prunes_later_stages() -> None:
    model = timm.create_model("iformer_small", features_only=True, out_indices=(0, 2),
                              **SMALL_AND_NARROW).eval()
    assert model.feature_info.channels() == [24, 80]
    names = [n for n, _ in model.named_parameters()]
    assert not any("blocks4" in n or "pos_embed4" in n or n.startswith("model.head") for n in names)
    with torch.no_grad():
        maps = model(torch.randn(1, 3, 64, 64))
    assert [tuple(m.shape) for m in maps] == [(1, 24, 16, 16), (1, 80, 4, 4)]


def test_forward_intermediates() -> None:
    model = timm.create_model("iformer_small", **SMALL_AND_NARROW).eval()
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        final, maps = model.forward_intermediates(images)
        assert [m.shape[1] for m in maps] == [24, 48, 80, 96]
        torch.testing.assert_close(final, model.forward_features(images))
        torch.testing.assert_close(maps[-1], final.permute(0, 3, 1, 2))
        torch.testing.assert_close(model.forward_head(final), model(images))
        last_two = model.forward_intermediates(images, indices=2, intermediates_only=True)
        assert [m.shape[1] for m in last_two] == [80, 96]
        nhwc = model.forward_intermediates(images, indices=[1], output_fmt="NHWC",
                                           intermediates_only=True)
        assert nhwc[0].shape == (1, 8, 8, 48)
        normed = model.forward_intermediates(images, indices=[3], norm=True,
                                             intermediates_only=True)
        torch.testing.assert_close(normed[0], model.norm(final).permute(0, 3, 1, 2))


def test_reset_and_get_classifier() -> None:
    model = timm.create_model("iformer_small", **SMALL_AND_NARROW).eval()
    model.reset_classifier(5)
    assert model.get_classifier().out_features == 5 and model.num_classes == 5
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 5)
    model.reset_classifier(0)
    assert isinstance(model.get_classifier(), torch.nn.Identity)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 96)  # pooled features
    with pytest.raises(ValueError, match="global_pool"):
        model.reset_classifier(5, global_pool="max")


def test_no_weight_decay_names_real_parameters() -> None:
    model = timm.create_model("iformer_small", **SMALL_AND_NARROW)
    names = dict(model.named_parameters())
    assert model.no_weight_decay() == {"pos_embed1", "pos_embed2", "pos_embed3", "pos_embed4"}
    assert model.no_weight_decay() <= set(names)
    # timm's optimizer factory turns the names into a no-decay group.
    optimizer = timm.optim.create_optimizer_v2(model, "adamw", weight_decay=0.05)
    no_decay = next(g for g in optimizer.param_groups if g["weight_decay"] == 0.0)
    assert any(p is names["pos_embed1"] for p in no_decay["params"])


def test_group_matcher_covers_every_parameter_for_layer_decay() -> None:
    model = timm.create_model("iformer_small", **SMALL_AND_NARROW)
    optimizer = timm.optim.create_optimizer_v2(model, "adamw", layer_decay=0.8)
    grouped = sum(len(g["params"]) for g in optimizer.param_groups)
    assert grouped == len(list(model.parameters()))
    assert len({g["lr_scale"] for g in optimizer.param_groups}) > 4


def test_checkpoint_wrapped_in_model_key_loads_strictly(tmp_path) -> None:
    source = timm.create_model("iformer_small", **SMALL_AND_NARROW).eval()
    path = tmp_path / "checkpoint.pth"
    torch.save({"model": source.state_dict(), "epoch": 3}, path)
    state = iformer.checkpoint_filter_fn(torch.load(path, weights_only=True), source)
    target = iformer.create_model(source.config)
    target.load_state_dict(state, strict=True)
    # The same through timm's own pretrained loading from a file.
    loaded = timm.create_model("iformer_small", pretrained=True, **SMALL_AND_NARROW,
                               pretrained_cfg_overlay=dict(file=str(path), num_classes=10)).eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), source(images))


def test_checkpoint_filter_resizes_position_embeddings(tmp_path) -> None:
    source = timm.create_model("iformer_small", **SMALL_AND_NARROW).eval()
    wrapped = {"state_dict": {"module." + k: v for k, v in source.state_dict().items()}}
    target = timm.create_model("iformer_small_384", **{**SMALL_AND_NARROW, "img_size": 96})
    state = iformer.checkpoint_filter_fn(wrapped, target)
    target.load_state_dict(state, strict=True)
    assert target.pos_embed1.shape == (1, 24, 24, 24)
    # Resizing the embeddings once equals the model resizing them on the fly.
    images = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(target.eval()(images), source(images), rtol=1e-5, atol=1e-5)
