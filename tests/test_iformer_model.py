"""The model beyond the reference: ramp ends, odd and non-square grids, channels-last,
drop-path, gradient checkpointing, torch.compile."""

from __future__ import annotations

import pytest
import torch

import iformer
from iformer.model import LowMixer

TINY = dict(depths=[1, 1, 2, 1], embed_dims=[16, 32, 48, 64], num_heads=[2, 4, 3, 4],
            attention_heads=[1, 2, 1, 2, 3], num_classes=10, img_size=64)


def tiny(**overrides) -> iformer.IFormerConfig:
    return iformer.IFormerConfig(**{**TINY, **overrides})


def seeded_model(config: iformer.IFormerConfig, seed: int = 0) -> iformer.InceptionTransformer:
    torch.manual_seed(seed)
    return iformer.create_model(config)


@pytest.mark.parametrize("ramp", [[0, 0, 0, 0, 0], [2, 4, 3, 3, 4], [0, 4, 3, 0, 2]])
def test_ramp_ends_build_train_and_drop_the_empty_branch(ramp: list[int]) -> None:
    config = tiny(attention_heads=ramp)
    model = seeded_model(config)
    names = [name for name, _ in model.named_parameters()]
    for spec in config.blocks():
        stage_block = f"blocks{spec.stage}.{spec.index - sum(config.depths[:spec.stage - 1])}"
        has_high = any(n.startswith(f"{stage_block}.attn.high_mixer.") for n in names)
        has_low = any(n.startswith(f"{stage_block}.attn.low_mixer.") for n in names)
        assert has_high == (spec.attention_heads < spec.num_heads)
        assert has_low == (spec.attention_heads > 0)
    images = torch.randn(2, 3, 64, 64)
    logits = model(images)
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()
    logits.square().sum().backward()
    unused = [n for n, p in model.named_parameters() if p.grad is None]
    assert unused == []


@pytest.mark.parametrize("size", [(64, 96), (72, 40), (100, 100), (33, 47)])
def test_non_square_and_odd_inputs(size: tuple[int, int]) -> None:
    model = seeded_model(tiny(attention_heads=[1, 2, 3, 0, 4])).eval()
    with torch.no_grad():
        logits = model(torch.randn(2, 3, *size))
        final = model.forward_features(torch.randn(1, 3, *size))
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()
    assert final.shape[1:3] == iformer.stage_grids(*size)[3]


def test_model_built_for_a_non_square_size() -> None:
    model = seeded_model(tiny(img_size=[48, 80])).eval()
    assert model.pos_embed1.shape == (1, 12, 20, 16)
    assert model.pos_embed4.shape == (1, 2, 3, 64)
    assert model(torch.randn(1, 3, 48, 80)).shape == (1, 10)


def test_pooled_attention_on_an_odd_grid_covers_every_token() -> None:
    # A 5x7 grid under 2x2 pooling: windows are 2x2, with partial ones on the last row and
    # column. Every token must reach attention, and tokens of one window share its output.
    torch.manual_seed(0)
    mixer = LowMixer(dim=8, num_heads=2, qkv_bias=True, pool_size=2).eval()
    tokens = torch.randn(1, 5, 7, 8)
    with torch.no_grad():
        out = mixer(tokens)
        for i in range(5):
            for j in range(7):
                assert torch.equal(out[0, i, j], out[0, 2 * (i // 2), 2 * (j // 2)])
        changed = tokens.clone()
        changed[0, 4, 6] += 1.0  # the lone token of the bottom-right partial window
        assert not torch.allclose(mixer(changed)[0, 0, 0], out[0, 0, 0])


def test_fused_and_written_out_attention_agree() -> None:
    # 128x96 px: stage 1 attends over 16x12 pooled tokens of head_dim 8, enough for the
    # fused kernel on CPU (iformer.model.CPU_FUSED_ATTN_MIN_SIZE); later stages are smaller.
    model = seeded_model(tiny()).eval()
    images = torch.randn(2, 3, 128, 96)
    with torch.no_grad():
        fused = model(images)
        written_out = iformer.set_fused_attn(model, False)(images)
    assert all(not m.fused_attn for m in model.modules() if isinstance(m, LowMixer))
    torch.testing.assert_close(fused, written_out, rtol=1e-5, atol=1e-5)


def test_channels_last_input_gives_the_same_output() -> None:
    model = seeded_model(tiny()).eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(images.contiguous(memory_format=torch.channels_last)),
                                   model(images), rtol=1e-5, atol=1e-5)


def test_drop_path_is_random_in_training_and_off_in_eval() -> None:
    model = seeded_model(tiny(drop_path_rate=0.5))
    rates = [block.drop_path.drop_prob for stage in range(1, 5)
             for block in getattr(model, f"blocks{stage}") if hasattr(block.drop_path, "drop_prob")]
    assert rates == pytest.approx([0.125, 0.25, 0.375, 0.5])  # block 0 has rate 0: no module
    images = torch.randn(4, 3, 64, 64)
    model.train()
    assert not torch.allclose(model(images), model(images))
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(images), model(images))


def test_gradient_checkpointing_gives_the_same_gradients() -> None:
    images = torch.randn(2, 3, 64, 64)
    grads = []
    for checkpointing in (False, True):
        model = seeded_model(tiny())
        model.set_grad_checkpointing(checkpointing)
        model(images).square().sum().backward()
        grads.append({n: p.grad for n, p in model.named_parameters()})
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, rtol=1e-5, atol=1e-6, msg=name)


def test_meta_device_build_then_load_gives_the_same_model() -> None:
    # Large models are often built on the meta device and then loaded: nothing the model
    # computes may live outside its state dict.
    source = seeded_model(tiny()).eval()
    with torch.device("meta"):
        model = iformer.create_model(tiny())
    model = model.to_empty(device="cpu")
    model.load_state_dict(source.state_dict(), strict=True)
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model.eval()(images), source(images))


def test_model_keeps_its_own_copy_of_the_config() -> None:
    config = tiny()
    model = iformer.create_model(config)
    model.reset_classifier(3)
    assert model.config.num_classes == 3 and config.num_classes == 10
    assert model.config.attention_heads == config.attention_heads


def test_torch_compile_captures_one_graph_and_matches_eager_gradients() -> None:
    # fullgraph: no graph breaks. aot_eager runs dynamo and AOT autograd without code
    # generation, so this stays fast; the inductor test below covers code generation.
    config = tiny(depths=[1, 1, 1, 1], attention_heads=[1, 0, 3, 4])
    eager, compiled = seeded_model(config), seeded_model(config)
    images = torch.randn(2, 3, 72, 56)
    eager(images).square().sum().backward()
    torch.compile(compiled, backend="aot_eager", fullgraph=True)(images).square().sum().backward()
    for (name, p), q in zip(eager.named_parameters(), compiled.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.slow
def test_torch_compile_inductor_matches_eager() -> None:
    model = seeded_model(tiny(depths=[1, 1, 1, 1], attention_heads=[1, 0, 3, 4])).eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        eager = model(images)
        compiled = torch.compile(model)(images)
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-4)
