"""The model and the analytic counts against data measured on the reference release."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import iformer


def _load_json(folder: Path, name: str) -> dict:
    return json.loads((folder / name).read_text())


@pytest.mark.parametrize("name", ["iformer_small", "iformer_base", "iformer_large"])
def test_state_dict_schema_matches_reference(reference_dir: Path, name: str) -> None:
    schema = _load_json(reference_dir, "iformer_state_dict_schema.json")[name]
    config = iformer.preset(name)
    with torch.device("meta"):  # shapes only; no memory, no initialisation cost
        model = iformer.create_model(config)
    ours = {key: list(value.shape) for key, value in model.state_dict().items()}
    assert sorted(ours) == sorted(schema)
    assert ours == schema
    assert iformer.count_params(config) == sum(p.numel() for p in model.parameters())


def _reference_config(entry: dict) -> iformer.IFormerConfig:
    """The reference's keyword names to ours (layer scale is on in stages 3 and 4)."""
    fields = dict(entry)
    assert fields.pop("use_layer_scale") is True
    fields["layer_scale_init"] = fields.pop("layer_scale_init_value")
    return iformer.IFormerConfig(**fields)


@pytest.mark.parametrize("name", ["tiny_a", "tiny_b"])
@pytest.mark.parametrize("fused_attn", [True, False])
def test_reference_vectors_reproduced(reference_dir: Path, name: str, fused_attn: bool) -> None:
    config = _reference_config(_load_json(reference_dir, "ref_tiny_configs.json")[name])
    vectors = torch.load(reference_dir / f"ref_{name}.pt", weights_only=True)
    state = {k.removeprefix("state_dict."): v for k, v in vectors.items()
             if k.startswith("state_dict.")}
    model = iformer.set_fused_attn(iformer.create_model(config), fused_attn).eval()
    model.load_state_dict(state, strict=True)
    with torch.no_grad():
        for size in ("same", "other"):  # "other" is 32 px larger: the pos-embed resize
            inputs = vectors[f"input_{size}"]
            error = (model(inputs) - vectors[f"output_{size}"]).abs().max().item()
            assert error < 1e-4, f"{name}/{size}: max abs error {error}"
    assert vectors["input_other"].shape[-1] == vectors["input_same"].shape[-1] + 32


@pytest.mark.parametrize("name", ["iformer_small", "iformer_base", "iformer_large"])
def test_preset_flops_and_params_equal_reference(reference_dir: Path, name: str) -> None:
    entry = _load_json(reference_dir, "iformer_flops_reference.json")["presets"][name]
    config = iformer.preset(name)
    assert config == _reference_config(entry["config"])  # the paper's lists, 224 px
    assert iformer.count_params(config) == entry["params"]
    assert iformer.count_flops(config) == entry["fvcore_flops_224"]
    # The 384 models: the registered _384 preset, and img_size=384 on the 224 preset.
    assert iformer.count_flops(iformer.preset(name + "_384")) == entry["fvcore_flops_384"]
    assert iformer.count_flops(iformer.preset(name, img_size=384)) == entry["fvcore_flops_384"]


def test_random_ramp_flops_and_params_equal_reference(reference_dir: Path) -> None:
    ramps = _load_json(reference_dir, "iformer_flops_reference.json")["random_ramps"]
    assert len(ramps) == 16
    for entry in ramps:
        config = iformer.preset(entry["preset"], attention_heads=entry["attention_heads"],
                                img_size=entry["img_size"])
        assert iformer.count_flops(config) == entry["fvcore_flops"], entry
        assert iformer.count_params(config) == entry["params"], entry
        table = iformer.ramp_cost_table(iformer.preset(entry["preset"],
                                                       img_size=entry["img_size"]))
        assert table.flops(entry["attention_heads"]) == entry["fvcore_flops"]
