"""Turn an :class:`envs.layers.Architecture` into a torch module (:func:`build_model`).

Each choice of :class:`NetConfig` (normalisation, activation, initialisation) is a registry
entry, so a new one is a dict entry, not a branch. Modules are plain ``nn.Sequential`` blocks,
so ``torch.func.functional_call`` works on them, weight normalisation included.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from envs.layers import (
    Architecture,
    Conv,
    FullyConnected,
    GlobalAvgPool,
    Pool,
)
from metaqnn.core.dropout import FastDropout
from metaqnn.core.limits import ArchitectureCost, ArchitectureLimits, check_limits, layer_flops
from metaqnn.core.shapes import LayerShape, trace_shapes
from metaqnn.errors import ConfigError


# --------------------------------------------------------------------------- registries
@dataclass(frozen=True)
class ActivationSpec:
    """An activation: how to make it, and the gain its layers' initialisation should use.

    Attributes:
        make: Zero-argument factory of the activation module.
        nonlinearity: Name understood by ``torch.nn.init.calculate_gain`` (for Kaiming init).
        param: The nonlinearity's parameter (a leaky ReLU's negative slope).
    """

    make: Callable[[], nn.Module]
    nonlinearity: str = "relu"
    param: float = 0.0


#: Activation name -> spec. ``leaky_relu`` has the GTN learner's slope of 0.1.
ACTIVATIONS: dict[str, ActivationSpec] = {
    "relu": ActivationSpec(nn.ReLU),
    "leaky_relu": ActivationSpec(partial(nn.LeakyReLU, 0.1), "leaky_relu", 0.1),
    "elu": ActivationSpec(nn.ELU),
    "gelu": ActivationSpec(nn.GELU),
    "tanh": ActivationSpec(nn.Tanh, "tanh"),
}

#: ``init(weight, nonlinearity, param, generator)`` fills a conv/linear weight in place.
Initializer = Callable[[torch.Tensor, str, float, torch.Generator | None], None]


def _xavier(weight: torch.Tensor, nonlinearity: str, param: float, gen: Any) -> None:
    nn.init.xavier_uniform_(weight, generator=gen)  # Glorot: U(±sqrt(6 / (fan_in + fan_out)))


def _kaiming(weight: torch.Tensor, nonlinearity: str, param: float, gen: Any) -> None:
    nn.init.kaiming_normal_(weight, a=param, nonlinearity=nonlinearity, generator=gen)


#: Initialisation name -> initializer of the weights (biases start at zero).
INITS: dict[str, Initializer] = {"xavier": _xavier, "kaiming": _kaiming}


@dataclass(frozen=True)
class NormSpec:
    """How a normalisation wraps the conv and linear layers.

    Attributes:
        bias: Whether the wrapped layers keep their own bias (False when the norm has one).
        hidden: ``(layer, features, spatial) -> modules`` that replace a hidden conv
            (``spatial=True``) or FC layer; the activation follows them.
        output: ``layer -> module`` that replaces the final classifier's linear layer.
    """

    bias: bool
    hidden: Callable[[nn.Module, int, bool], list[nn.Module]]
    output: Callable[[nn.Module], nn.Module]


def _batch_norm(layer: nn.Module, features: int, spatial: bool) -> list[nn.Module]:
    return [layer, nn.BatchNorm2d(features) if spatial else nn.BatchNorm1d(features)]


def _batch_stat_norm(layer: nn.Module, features: int, spatial: bool) -> list[nn.Module]:
    bn = nn.BatchNorm2d if spatial else nn.BatchNorm1d
    return [layer, bn(features, track_running_stats=False)]


#: Normalisation name -> spec. ``weight`` is GTN's weight normalisation (every conv and linear
#: layer, the classifier included); ``batch`` puts BatchNorm after every hidden conv and FC
#: layer. ``batchstat`` is BatchNorm without running statistics: it normalises with the
#: statistics of the batch at hand in training and evaluation alike, which is what a learner
#: trained on synthetic data needs (running statistics of synthetic batches do not fit real
#: data). ``weight+batchstat`` is GTN's learner: weight norm followed by ``batchstat``.
NORMS: dict[str, NormSpec] = {
    "none": NormSpec(True, lambda layer, n, spatial: [layer], lambda layer: layer),
    "batch": NormSpec(False, _batch_norm, lambda layer: layer),
    "weight": NormSpec(True, lambda layer, n, spatial: [weight_norm(layer)], weight_norm),
    "batchstat": NormSpec(False, _batch_stat_norm, lambda layer: layer),
    "weight+batchstat": NormSpec(
        False,
        lambda layer, n, spatial: _batch_stat_norm(weight_norm(layer), n, spatial),
        weight_norm,
    ),
}


def _check_choice(field: str, value: object, registry: dict[str, Any]) -> None:
    if not isinstance(value, str) or value not in registry:
        raise ConfigError(f"NetConfig.{field}={value!r} is not one of {sorted(registry)}")


@dataclass(frozen=True)
class NetConfig:
    """How an architecture becomes a module. Names are keys of the registries above.

    The default normalisation is ``batch``, not MetaQNN's ``none``: sampled architectures
    reach 18 layers of 512 filters, and without normalisation many never leave chance in a
    20-epoch Adam budget (the reason MetaQNN needed its restart rule), so the reward would
    measure luck of the initialisation more than the architecture. :meth:`metaqnn` gives the
    paper's setting and :meth:`gtn_learner` GTN's.
    """

    norm: str = "batch"
    """Normalisation of conv and FC layers: a key of :data:`NORMS`."""
    activation: str = "relu"
    """Activation after every conv and FC layer (not after the classifier): a key of
    :data:`ACTIVATIONS`."""
    dropout: bool = True
    """Insert MetaQNN's dropout schedule (see :func:`dropout_positions`)."""
    init: str = "xavier"
    """Weight initialisation of conv and linear layers: a key of :data:`INITS`."""

    def __post_init__(self) -> None:
        _check_choice("norm", self.norm, NORMS)
        _check_choice("activation", self.activation, ACTIVATIONS)
        _check_choice("init", self.init, INITS)
        if not isinstance(self.dropout, bool):
            raise ConfigError(f"NetConfig.dropout={self.dropout!r} is not a bool")

    @classmethod
    def metaqnn(cls) -> NetConfig:
        """MetaQNN's networks: no normalisation, ReLU, dropout schedule, Xavier init."""
        return cls(norm="none", activation="relu", dropout=True, init="xavier")

    @classmethod
    def gtn_learner(cls) -> NetConfig:
        """GTN's learners: weight norm, LeakyReLU(0.1), Kaiming init, no dropout."""
        return cls(norm="weight", activation="leaky_relu", dropout=False, init="kaiming")


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) zero padding that makes a conv output ``ceil(size / stride)`` (TF SAME)."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def dropout_positions(arch: Architecture) -> list[tuple[int, float]]:
    """MetaQNN's dropout schedule: where dropout goes and at what rate.

    Dropout follows every second hidden layer (indices 1, 3, 5, ...) and every FC layer, but
    never GAP (as in MetaQNN's released code); the ``i``-th of ``n`` dropout layers has rate
    ``i / (2 n)``, so the last drops half (the released code's estimate of ``n`` can
    overcount, leaving its last rate short of 0.5; this follows the paper).

    Args:
        arch: The architecture.

    Returns:
        ``(layer_index, rate)`` pairs in layer order; dropout comes after that layer's
        activation (or pool).
    """
    indices = [
        i
        for i, layer in enumerate(arch.hidden)
        if not isinstance(layer, GlobalAvgPool)
        and ((i + 1) % 2 == 0 or isinstance(layer, FullyConnected))
    ]
    n = len(indices)
    return [(i, k / (2 * n)) for k, i in enumerate(indices, start=1)]


# --------------------------------------------------------------------------- modules
class ArchitectureNet(nn.Module):
    """A CNN built from an architecture: ``features`` (conv, pool, GAP) then ``classifier``
    (flatten, FC layers, the final linear layer giving logits).

    Attributes:
        architecture: The architecture it was built from.
        config: The :class:`NetConfig` it was built with.
        input_shape: ``(channels, size, size)`` of the input it was built for.
        features: One ``nn.Sequential`` block per conv, pool or GAP layer.
        classifier: ``nn.Flatten``, one block per FC layer, then the output linear layer.
    """

    def __init__(
        self,
        architecture: Architecture,
        config: NetConfig,
        input_shape: tuple[int, int, int],
        features: nn.Sequential,
        classifier: nn.Sequential,
    ) -> None:
        super().__init__()
        self.architecture = architecture
        self.config = config
        self.input_shape = input_shape
        self.features = features
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of a batch of images ``x`` of shape (N, C, H, W); returns (N, classes)."""
        return self.classifier(self.features(x))  # (N, C, H, W) -> (N, classes)

    def layer_blocks(self) -> list[nn.Module]:
        """The block of each hidden layer of the architecture, in order (``SM`` excluded)."""
        return [*self.features, *list(self.classifier)[1:-1]]


def _weighted(module: nn.Module, init: Initializer, act: ActivationSpec, gen: Any) -> nn.Module:
    init(module.weight, act.nonlinearity, act.param, gen)
    if module.bias is not None:
        nn.init.zeros_(module.bias)
    return module


def build_model(
    arch: Architecture,
    *,
    in_channels: int,
    input_size: int,
    config: NetConfig = NetConfig(),
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
    limits: ArchitectureLimits | None = None,
) -> ArchitectureNet:
    """Build the torch module of an architecture.

    Convs are SAME-padded (output ``ceil(R / stride)``; asymmetric padding by a
    ``ZeroPad2d`` where needed), pools are VALID max pools in floor mode, GAP is an adaptive
    average pool to 1x1. Each conv and FC layer is followed by its normalisation and
    activation; dropout follows :func:`dropout_positions` when ``config.dropout``. Only
    buildability and the size limits are checked (before anything is allocated), not the
    rules of any search space.

    Args:
        arch: The architecture.
        in_channels: Channels of the input images.
        input_size: Spatial size of the (square) input images; strided SAME convs pad for it.
        config: Normalisation, activation, dropout and initialisation.
        device: Where the parameters live.
        generator: Random generator of the weight initialisation (default: torch's global).
        limits: Size limits (default: those in force, see
            :func:`metaqnn.core.limits.active_limits`).

    Returns:
        The module, mapping (N, in_channels, input_size, input_size) to (N, classes) logits.

    Raises:
        ArchitectureError: If a layer cannot be built on its input (see :func:`trace_shapes`).
        ArchitectureLimitError: If the architecture is over a size limit, naming the layer.
    """
    shapes = trace_shapes(arch, in_channels=in_channels, input_size=input_size)
    check_limits(arch, shapes, limits)
    norm, act, init = NORMS[config.norm], ACTIVATIONS[config.activation], INITS[config.init]
    rates = dict(dropout_positions(arch)) if config.dropout else {}

    def conv(layer: Conv, s: LayerShape) -> list[nn.Module]:
        before, after = _same_padding(s.in_size, layer.kernel, layer.stride)
        pad = [] if before == after else [nn.ZeroPad2d((before, after, before, after))]
        module = nn.Conv2d(
            s.in_channels, layer.filters, layer.kernel, layer.stride,
            padding=before if before == after else 0, bias=norm.bias,
        )  # fmt: skip
        module = _weighted(module, init, act, generator)
        return [*pad, *norm.hidden(module, layer.filters, True), act.make()]

    def fc(layer: FullyConnected, s: LayerShape) -> list[nn.Module]:
        in_features = s.in_channels * s.in_size * s.in_size
        linear = nn.Linear(in_features, layer.width, bias=norm.bias)
        module = _weighted(linear, init, act, generator)
        return [*norm.hidden(module, layer.width, False), act.make()]

    blocks: dict[type, Callable[[Any, LayerShape], list[nn.Module]]] = {
        Conv: conv,
        Pool: lambda layer, s: [nn.MaxPool2d(layer.size, layer.stride)],
        GlobalAvgPool: lambda layer, s: [nn.AdaptiveAvgPool2d(1)],
        FullyConnected: fc,
    }
    features, classifier = nn.Sequential(), nn.Sequential(nn.Flatten())
    for index, (layer, shape) in enumerate(zip(arch.hidden, shapes[:-1], strict=True)):
        block = nn.Sequential(*blocks[type(layer)](layer, shape))
        if index in rates:
            block.append(FastDropout(rates[index]))
        (classifier if isinstance(layer, FullyConnected) else features).append(block)
    last = shapes[-1]
    output = nn.Linear(last.in_channels * last.in_size * last.in_size, arch.num_classes)
    output = _weighted(output, init, ActivationSpec(nn.Identity, "linear"), generator)
    classifier.append(norm.output(output))
    net = ArchitectureNet(arch, config, (in_channels, input_size, input_size), features, classifier)
    return net.to(device)


def count_parameters(model: nn.Module) -> int:
    """Number of scalar parameters of a module (weight norm counts its ``g`` and ``v``).

    Args:
        model: Any module.

    Returns:
        The sum of ``numel()`` over ``model.parameters()``.
    """
    return sum(p.numel() for p in model.parameters())


def count_flops(arch: Architecture, *, in_channels: int, input_size: int) -> int:
    """FLOPs of one forward pass of one image, computed from the architecture alone.

    A conv costs ``2 * C_in * k * k * C_out * R_out * R_out`` (two FLOPs per multiply-add,
    padding included), a linear layer ``2 * in_features * out_features``. Biases,
    normalisation, activations, pooling and dropout are not counted.

    Args:
        arch: The architecture.
        in_channels: Channels of the input images.
        input_size: Spatial size of the (square) input images.

    Returns:
        The FLOP count.

    Raises:
        ArchitectureError: If the architecture cannot be built on that input.
    """
    shapes = trace_shapes(arch, in_channels=in_channels, input_size=input_size)
    return sum(layer_flops(layer, s) for layer, s in zip(arch.layers, shapes, strict=True))


def architecture_cost(
    arch: Architecture,
    *,
    in_channels: int,
    input_size: int,
    limits: ArchitectureLimits | None = None,
) -> ArchitectureCost:
    """Depth, parameters, activations and FLOPs per image of ``arch``, checked against
    ``limits`` (default: those in force) by arithmetic alone, as :func:`build_model` does.

    Raises:
        ArchitectureError: If a layer cannot be built on its input.
        ArchitectureLimitError: If the architecture is over a limit, naming the layer.
    """
    shapes = trace_shapes(arch, in_channels=in_channels, input_size=input_size)
    return check_limits(arch, shapes, limits)
