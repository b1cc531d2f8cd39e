"""Tests of metaqnn.core.nets: architecture -> torch module."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from envs.layers import Architecture, ArchitectureError, Conv, FullyConnected
from envs.space import PRESETS, output_size
from metaqnn.core.nets import (
    ACTIVATIONS,
    INITS,
    NORMS,
    NetConfig,
    NormSpec,
    build_model,
    count_flops,
    count_parameters,
    dropout_positions,
)
from metaqnn.errors import ConfigError

A = Architecture.parse


def _expected_shapes(arch: Architecture, channels: int, size: int) -> list[tuple[int, ...]]:
    """Per hidden layer: (channels, size, size) for spatial outputs, (width,) after an FC."""
    shapes = []
    for layer in arch.hidden:
        size = output_size(layer, size)
        if isinstance(layer, FullyConnected):
            shapes.append((layer.width,))
            continue
        channels = layer.filters if isinstance(layer, Conv) else channels
        shapes.append((channels, size, size))
    return shapes


def _check_model(arch: Architecture, config: NetConfig, channels: int, size: int) -> None:
    """Build, run forward and backward on 2 images, and compare every layer's output shape."""
    model = build_model(arch, in_channels=channels, input_size=size, config=config)
    seen: list[tuple[int, ...]] = []
    hooks = [
        block.register_forward_hook(lambda m, i, out: seen.append(tuple(out.shape[1:])))
        for block in model.layer_blocks()
    ]
    x = torch.randn(2, channels, size, size)  # (N, C, H, W)
    logits = model(x)
    for hook in hooks:
        hook.remove()
    assert logits.shape == (2, arch.num_classes), str(arch)
    assert seen == _expected_shapes(arch, channels, size), str(arch)
    logits.square().sum().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, f"{arch} {config}: no gradient for {name}"
        assert torch.isfinite(param.grad).all(), f"{arch} {config}: bad gradient for {name}"


@pytest.mark.parametrize("norm", sorted(NORMS))
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_random_architectures_of_every_preset_build_run_and_backprop(preset, norm):
    space = PRESETS[preset]
    if space.conv_filters[0] > 16:  # keep the rules, shrink the layers for speed
        space = space.replace(conv_filters=(4, 8), fc_widths=(16, 8))
    rng = np.random.default_rng(sum(map(ord, preset + norm)))
    activations, inits = sorted(ACTIVATIONS), sorted(INITS)
    for k in range(25):
        arch = space.sample(rng)
        config = NetConfig(
            norm=norm, activation=activations[k % len(activations)], init=inits[k % len(inits)]
        )
        _check_model(arch, config, space.input_channels, space.input_size)


def test_architecture_outside_any_space_builds_on_mnist():
    arch = A("[C(32,3,1), P(2,2), C(64,3,1), P(2,2), FC(128), SM(10)]")
    _check_model(arch, NetConfig(), 1, 28)
    model = build_model(arch, in_channels=1, input_size=28)
    assert model.architecture == arch and model.input_shape == (1, 28, 28)
    assert len(model.features) == 4 and len(model.classifier) == 3  # flatten, FC, output


@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("kernel", [1, 2, 3, 4, 5])
def test_same_conv_gives_ceil_of_size_over_stride(kernel, stride):
    for size in range(kernel, 12):
        arch = Architecture((Conv(3, kernel, stride), A("[SM(2)]").layers[0]))
        _check_model(arch, NetConfig(norm="none"), 2, size)


@pytest.mark.parametrize(
    ("text", "size", "fragments"),
    [
        ("[C(8,3,1), P(5,3), C(8,5,1), SM(3)]", 7, ["layer 2", "C(8,5,1)", "1x1"]),
        ("[C(8,3,1), P(8,2), SM(3)]", 7, ["layer 1", "P(8,2)", "7x7"]),
        ("[C(8,9,1), SM(3)]", 7, ["layer 0", "C(8,9,1)", "7x7"]),
        ("[FC(8), C(8,1,1), SM(3)]", 7, ["layer 1", "C(8,1,1)", "FC"]),
        ("[C(8,3,1), FC(8), GAP, SM(3)]", 7, ["layer 2", "GAP", "FC"]),
    ],
)
def test_unbuildable_architecture_names_layer_index_and_size(text, size, fragments):
    with pytest.raises(ArchitectureError) as info:
        build_model(A(text), in_channels=1, input_size=size)
    for fragment in fragments:
        assert fragment in str(info.value)
    with pytest.raises(ArchitectureError):
        count_flops(A(text), in_channels=1, input_size=size)


@pytest.mark.parametrize(("channels", "size"), [(0, 8), (1, 0), (1, 2.5)])
def test_bad_input_shape_is_a_config_error(channels, size):
    with pytest.raises(ConfigError, match="positive integer"):
        build_model(A("[SM(2)]"), in_channels=channels, input_size=size)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[SM(10)]", []),
        ("[C(8,3,1), SM(10)]", []),
        ("[C(8,3,1), C(8,3,1), SM(10)]", [(1, 0.5)]),
        ("[FC(16), SM(10)]", [(0, 0.5)]),
        ("[C(8,3,1), C(8,3,1), C(8,3,1), GAP, SM(10)]", [(1, 0.5)]),  # never after GAP
        ("[C(8,3,1), P(2,2), C(8,3,1), P(2,2), FC(16), FC(8), SM(10)]",
         [(1, 1 / 8), (3, 2 / 8), (4, 3 / 8), (5, 4 / 8)]),
        ("[C(8,3,1), P(2,2), C(8,3,1), FC(16), SM(10)]", [(1, 1 / 4), (3, 2 / 4)]),
    ],
)  # fmt: skip
def test_dropout_positions_follow_metaqnn_schedule(text, expected):
    positions = dropout_positions(A(text))
    assert [i for i, _ in positions] == [i for i, _ in expected]
    assert [r for _, r in positions] == pytest.approx([r for _, r in expected])


def test_model_dropout_layers_match_the_schedule_and_can_be_disabled():
    arch = A("[C(8,3,1), P(2,2), C(8,3,1), P(2,2), FC(16), FC(8), SM(10)]")
    model = build_model(arch, in_channels=1, input_size=16)
    rates = [
        (i, m.p)
        for i, block in enumerate(model.layer_blocks())
        for m in block.modules()
        if isinstance(m, nn.Dropout)
    ]
    assert rates == dropout_positions(arch)
    plain = build_model(arch, in_channels=1, input_size=16, config=NetConfig(dropout=False))
    assert not any(isinstance(m, nn.Dropout) for m in plain.modules())


def test_count_flops_by_hand():
    # conv: 2*1*3*3*2 MACs * 4*4 positions = 576; pool -> 2x2x2 = 8 features;
    # FC: 2*8*4 = 64; SM: 2*4*3 = 24.
    assert count_flops(A("[C(2,3,1), P(2,2), FC(4), SM(3)]"), in_channels=1, input_size=4) == 664
    # Strided conv on 5x5 -> 3x3: 2*2*1*1*4*9 = 144; GAP free; SM: 2*4*2 = 16.
    assert count_flops(A("[C(4,1,2), GAP, SM(2)]"), in_channels=2, input_size=5) == 160


def test_count_parameters_by_hand_and_as_sum_of_numel():
    arch = A("[C(2,3,1), P(2,2), FC(4), SM(3)]")
    plain = build_model(arch, in_channels=1, input_size=4, config=NetConfig(norm="none"))
    assert count_parameters(plain) == (9 * 2 + 2) + (8 * 4 + 4) + (4 * 3 + 3)
    for norm in NORMS:
        model = build_model(arch, in_channels=1, input_size=4, config=NetConfig(norm=norm))
        assert count_parameters(model) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("norm", sorted(NORMS))
def test_functional_call_matches_module_and_reaches_weight_norm_tensors(norm):
    arch = A("[C(4,3,1), P(2,2), C(8,3,2), FC(8), SM(3)]")
    config = NetConfig(norm=norm, dropout=False)
    model = build_model(arch, in_channels=1, input_size=8, config=config).eval()
    params = {k: v.detach().clone().requires_grad_() for k, v in model.named_parameters()}
    x = torch.randn(4, 1, 8, 8)  # (N, C, H, W)
    out = torch.func.functional_call(model, {**params, **dict(model.named_buffers())}, (x,))
    torch.testing.assert_close(out, model(x))
    out.sum().backward()
    for name, p in params.items():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    if norm == "weight":
        originals = [n for n in params if "parametrizations.weight.original" in n]
        assert len(originals) == 2 * 4  # g and v of 2 convs, 1 FC and the classifier
        assert all(params[n].grad.abs().sum() > 0 for n in originals)


def test_generator_seeds_the_initialisation():
    arch = A("[C(4,3,1), FC(8), SM(3)]")

    def build(seed: int) -> nn.Module:
        generator = torch.Generator().manual_seed(seed)
        return build_model(arch, in_channels=1, input_size=4, generator=generator)

    a, b, c = build(1).state_dict(), build(1).state_dict(), build(2).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("field", ["norm", "activation", "init"])
def test_unknown_choice_names_the_value_and_the_choices(field):
    with pytest.raises(ConfigError) as info:
        NetConfig(**{field: "bogus"})
    message = str(info.value)
    assert "bogus" in message and field in message
    assert "none" in message or "relu" in message or "xavier" in message


def test_presets_of_netconfig():
    assert NetConfig.metaqnn().norm == "none"
    gtn = NetConfig.gtn_learner()
    assert (gtn.norm, gtn.activation, gtn.init, gtn.dropout) == (
        "weight", "leaky_relu", "kaiming", False,
    )  # fmt: skip
    model = build_model(A("[C(4,3,1), SM(2)]"), in_channels=1, input_size=4, config=gtn)
    assert any(isinstance(m, nn.LeakyReLU) and m.negative_slope == 0.1 for m in model.modules())


def test_a_new_norm_is_one_registry_entry(monkeypatch):
    def layer_norm(layer: nn.Module, features: int, spatial: bool) -> list[nn.Module]:
        return [layer, nn.GroupNorm(1, features) if spatial else nn.LayerNorm(features)]

    monkeypatch.setitem(NORMS, "layer", NormSpec(False, layer_norm, lambda layer: layer))
    _check_model(A("[C(4,3,1), P(2,2), FC(8), SM(3)]"), NetConfig(norm="layer"), 1, 8)
