"""The weight-sharing supernet: a subnet with inherited weights is the stand-alone model of
its ramp (outputs and gradients), weights are tied to channel positions, stand-alone weights
load back into their slots, invalid ramps are refused."""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator

import pytest
import timm
import torch

import iformer
from iformer.config import BlockSpec
from iformer.model import Mixer
from iformer.supernet import SupernetLowMixer, SupernetMixer

# iformer_small's depths and heads at head_dim 8 (dims 24/48/80/96) and 64 px: quick to run.
NARROW = dict(embed_dims=[24, 48, 80, 96], img_size=64, num_classes=10)
SMALL_HEADS = [3] * 3 + [6] * 3 + [10] * 9 + [12] * 3  # num_heads of every block
PAPER_RAMP = iformer.preset("small").attention_heads


def random_ramp(seed: int) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(0, n) for n in SMALL_HEADS]


RAMPS = {
    "all_conv": [0] * len(SMALL_HEADS),
    "all_attention": list(SMALL_HEADS),
    "paper": PAPER_RAMP,
    "ends_alternating": [n if block % 2 else 0 for block, n in enumerate(SMALL_HEADS)],
    "random_1": random_ramp(1),
    "random_2": random_ramp(2),
}


def randomize(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Noise on every parameter, biases and layer scales included (they start at 0 and
    1e-6), so a weight gathered from the wrong slot changes the output."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if "layer_scale" in name:
                param.copy_(1.0 + 0.2 * noise)
            else:
                param.add_(0.1 * noise)
    return model


def standalone(ramp: list[int], **fields) -> torch.nn.Module:
    """The stand-alone model of a ramp through timm's registry."""
    return timm.create_model("iformer_small", attention_heads=ramp, **{**NARROW, **fields})


def assert_same_output(actual: torch.Tensor, expected: torch.Tensor) -> None:
    scale = expected.abs().max().item()
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-5 * scale)


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    # Small models gain nothing from a second thread, and on a busy machine two threads
    # wait on each other (measured: 4x the time of one).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def supernet() -> iformer.IFormerSupernet:
    torch.manual_seed(0)
    return randomize(iformer.IFormerSupernet(iformer.preset("small", **NARROW)), 1).eval()


# ----------------------------------------------------------------- equality with stand-alone
@pytest.mark.parametrize(("dim", "num_heads", "pool_size", "qkv_bias"),
                         [(24, 3, 2, True), (30, 5, 1, False), (12, 4, 2, True)])
def test_mixer_subnet_is_the_standalone_mixer_at_every_split(dim, num_heads, pool_size,
                                                             qkv_bias) -> None:
    # Every split of one block, 0..n heads, on an odd grid (partial pooling windows);
    # (12, 4) has head_dim 3, whose halves of C_h are odd.
    torch.manual_seed(0)
    spec = BlockSpec(index=0, stage=1, dim=dim, num_heads=num_heads, attention_heads=0,
                     pool_size=pool_size, layer_scale=False, drop_path=0.0)
    mixer = randomize(SupernetMixer(spec, qkv_bias), 0)
    tokens = torch.randn(2, 7, 5, dim)
    for heads in range(num_heads + 1):
        if (num_heads - heads) * spec.head_dim == 1:
            continue  # one high channel cannot be halved; the config refuses it
        split = BlockSpec(**{**spec.__dict__, "attention_heads": heads})
        reference = Mixer(split, qkv_bias)
        weights = {name: slots.gather() for name, slots in mixer.selections(heads).items()}
        reference.load_state_dict(weights, strict=True)
        mixer.attention_heads = heads
        with torch.no_grad():
            assert_same_output(mixer(tokens), reference(tokens))


@pytest.mark.parametrize("name", list(RAMPS))
def test_subnet_with_inherited_weights_is_the_standalone_model(supernet, name) -> None:
    ramp = RAMPS[name]
    model = standalone(ramp).eval()
    model.load_state_dict(supernet.set_ramp(ramp).extract_subnet_state_dict(), strict=True)
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert_same_output(supernet(images), model(images))


def test_subnet_at_full_iformer_small_width_is_the_standalone_model() -> None:
    ramp = RAMPS["ends_alternating"][:9] + RAMPS["random_1"][9:]
    torch.manual_seed(0)
    supernet = randomize(iformer.IFormerSupernet(iformer.preset("small", img_size=64)), 2)
    model = timm.create_model("iformer_small", attention_heads=ramp, img_size=64).eval()
    model.load_state_dict(supernet.extract_subnet_state_dict(ramp), strict=True)
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert_same_output(supernet.set_ramp(ramp).eval()(images), model(images))


def test_subnet_gradients_are_the_standalone_gradients(supernet) -> None:
    # One training step of a subnet is one training step of its stand-alone model.
    ramp = RAMPS["random_2"]
    trained = copy.deepcopy(supernet).set_ramp(ramp).train()
    model = standalone(ramp).train()
    model.load_state_dict(trained.extract_subnet_state_dict(), strict=True)
    images = torch.randn(2, 3, 64, 64)
    trained(images).square().mean().backward()
    model(images).square().mean().backward()
    # The supernet's gradients in the stand-alone layout: a copy whose weights are them.
    gradients = copy.deepcopy(trained)
    with torch.no_grad():
        for grad_holder, param in zip(gradients.parameters(), trained.parameters()):
            grad_holder.copy_(param.grad if param.grad is not None else 0.0)
    expected = dict(model.named_parameters())
    for name, grad in gradients.extract_subnet_state_dict().items():
        if name in expected:
            torch.testing.assert_close(grad, expected[name].grad, rtol=1e-4, atol=1e-7,
                                       msg=name)


def test_extract_subnet_gives_a_working_standalone_model(supernet) -> None:
    model = supernet.extract_subnet(PAPER_RAMP).eval()
    assert type(model) is iformer.InceptionTransformer
    assert model.config == supernet.subnet_config(PAPER_RAMP)
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert_same_output(supernet.set_ramp(PAPER_RAMP)(images), model(images))


def test_written_out_attention_reaches_the_supernet(supernet) -> None:
    net = copy.deepcopy(supernet).set_ramp(RAMPS["all_attention"])
    images = torch.randn(1, 3, 128, 128)  # stage 1 large enough for the fused kernel on CPU
    with torch.no_grad():
        fused = net(images)
        written_out = iformer.set_fused_attn(net, False)(images)
    assert all(not m.fused_attn for m in net.modules() if isinstance(m, SupernetLowMixer))
    torch.testing.assert_close(written_out, fused, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------- how weights are tied
def test_weights_are_tied_to_channel_positions_not_prefixes(supernet) -> None:
    # Block 3 of stage 3 (80 channels, 10 heads of 8) with 4 and then 5 attention heads:
    # C_h 48 -> 40, conv half 24 -> 20 channels, max-pool half 24 -> 20.
    block, prefix = 9, "blocks3.3.attn."
    four, five = list(PAPER_RAMP), list(PAPER_RAMP)
    four[block], five[block] = 4, 5
    a, b = supernet.extract_subnet_state_dict(four), supernet.extract_subnet_state_dict(five)
    d = 8

    # Attention: ramp 4's heads are ramp 5's last four heads, on the same (last) channels.
    qkv_a = a[prefix + "low_mixer.qkv.weight"].view(3, 4, d, 4 * d)
    qkv_b = b[prefix + "low_mixer.qkv.weight"].view(3, 5, d, 5 * d)
    assert torch.equal(qkv_a, qkv_b[:, 1:, :, d:])
    assert not torch.equal(qkv_a, qkv_b[:, :4, :, :4 * d])  # what prefix slicing would give
    bias_a = a[prefix + "low_mixer.qkv.bias"].view(3, 4, d)
    assert torch.equal(bias_a, b[prefix + "low_mixer.qkv.bias"].view(3, 5, d)[:, 1:])

    # Conv path: input channels [0:20] and output slots [0:40] are shared.
    assert torch.equal(b[prefix + "high_mixer.conv1.weight"],
                       a[prefix + "high_mixer.conv1.weight"][:40, :20])
    assert torch.equal(b[prefix + "high_mixer.proj1.weight"],
                       a[prefix + "high_mixer.proj1.weight"][:40])
    # Max-pool path: channels 24..39 are pooled under both splits; each keeps its column
    # (ramp 4 reads channels 24..47, ramp 5 channels 20..39).
    assert torch.equal(a[prefix + "high_mixer.proj2.weight"][:40, :16],
                       b[prefix + "high_mixer.proj2.weight"][:, 4:20])
    assert torch.equal(a[prefix + "high_mixer.proj2.bias"][:40],
                       b[prefix + "high_mixer.proj2.bias"])

    # The concatenation: ramp 4 is conv 48 | pool 48 | attention 32, ramp 5 is
    # conv 40 | pool 40 | attention 40; each slot keeps its fuse weight and proj column.
    for name, dim in (("conv_fuse.weight", 0), ("proj.weight", 1)):
        wa, wb = a[prefix + name], b[prefix + name]
        for start_a, start_b, width in ((0, 0, 40), (48, 40, 40), (96, 88, 32)):
            assert torch.equal(wa.narrow(dim, start_a, width), wb.narrow(dim, start_b, width))

    # Everything outside the mixers is the same tensor whatever the ramp.
    for key in a:
        if ".attn." not in key:
            assert torch.equal(a[key], b[key]), key


# --------------------------------------------------------------- gradients follow the ramp
def test_gradients_reach_only_the_selected_splits() -> None:
    torch.manual_seed(0)
    net = iformer.IFormerSupernet(iformer.preset("small", **NARROW))
    ramp = list(PAPER_RAMP)
    ramp[0], ramp[1], ramp[2] = 0, 3, 1  # stage 1 (24 channels, 3 heads of 8)
    net.set_ramp(ramp)(torch.randn(2, 3, 64, 64)).square().sum().backward()
    pure_conv, pure_attention, one_head = (net.blocks1[i].attn for i in range(3))

    assert pure_conv.low_mixer.qkv.weight.grad is None
    assert pure_conv.high_mixer.conv1.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in pure_attention.high_mixer.parameters())
    assert pure_attention.low_mixer.qkv.weight.grad.abs().min() > 0

    # One head: only the last head's q/k/v rows, on the last 8 channels.
    grad = one_head.low_mixer.qkv.weight.grad.view(3, 3, 8, 24)
    assert grad[:, :2].abs().max() == 0 and grad[:, 2, :, :16].abs().max() == 0
    assert grad[:, 2, :, 16:].abs().min() > 0
    # C_h = 16: conv outputs in slots [0:16] of 24, max-pool outputs in [24:40] of 24,
    # the attention head in [64:72]; the other fuse slots get nothing.
    fuse = one_head.conv_fuse.weight.grad.flatten(1).abs().sum(1)
    used = torch.zeros(72, dtype=torch.bool)
    used[0:16] = used[24:40] = used[64:72] = True
    assert fuse[used].min() > 0 and fuse[~used].max() == 0

    # Another ramp moves the gradients: the pure conv block now trains attention.
    net.zero_grad(set_to_none=True)
    ramp[0] = 2
    net.set_ramp(ramp)(torch.randn(2, 3, 64, 64)).square().sum().backward()
    assert pure_conv.low_mixer.qkv.weight.grad.abs().sum() > 0


# ----------------------------------------------------------------------- errors and loading
@pytest.mark.parametrize(("ramp", "message"), [
    ([1, 2, 3], "attention_heads has 3 entries but depths sum to 18"),
    (PAPER_RAMP[:3] + [7] + PAPER_RAMP[4:], "block 3 asks for 7 attention heads but stage 2 "
                                            "has 6 heads; use 0 to 6"),
    ([-1] + PAPER_RAMP[1:], "block 0 asks for -1 attention heads"),
])
def test_invalid_ramp_is_refused_and_the_selection_kept(supernet, ramp, message) -> None:
    before = supernet.set_ramp(PAPER_RAMP).ramp
    with pytest.raises(iformer.ConfigError, match=message):
        supernet.set_ramp(ramp)
    with pytest.raises(iformer.ConfigError, match=message):
        supernet.extract_subnet_state_dict(ramp)
    assert supernet.ramp == before
    assert [block.attn.attention_heads for stage in range(1, 5)
            for block in getattr(supernet, f"blocks{stage}")] == before


def test_standalone_weights_load_into_their_slots() -> None:
    ramp = RAMPS["random_1"]
    model = randomize(standalone(ramp), 3).eval()
    torch.manual_seed(1)
    net = iformer.IFormerSupernet(iformer.preset("small", **NARROW))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    net.load_standalone_state_dict(model.state_dict(), ramp)
    assert net.ramp == ramp
    for key, value in net.extract_subnet_state_dict().items():
        assert torch.equal(value, model.state_dict()[key]), key
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert_same_output(net.eval()(images), model(images))
    # Slots the ramp does not use keep their values: the unused heads of block 0.
    heads = ramp[0]
    key = "blocks1.0.attn.low_mixer.qkv.weight"
    unused = slice(0, 3 - heads)
    assert torch.equal(net.state_dict()[key].view(3, 3, 8, 24)[:, unused],
                       before[key].view(3, 3, 8, 24)[:, unused])


def test_loading_the_weights_of_another_ramp_says_what_differs() -> None:
    net = iformer.IFormerSupernet(iformer.preset("small", **NARROW))
    state = standalone(RAMPS["all_conv"]).state_dict()
    with pytest.raises(ValueError, match=r"not that of the stand-alone model of ramp .*"
                                         r"missing: blocks1\.0\.attn\.low_mixer\.qkv\.weight"):
        net.load_standalone_state_dict(state, PAPER_RAMP)
    with pytest.raises(ValueError, match=r"wrong shape: blocks1\.0\.attn\.high_mixer\.conv1\.weight"):
        net.load_standalone_state_dict(state, [2] + RAMPS["all_conv"][1:])
