"""A learned optimizer (Metz et al. 2019, arXiv 1906.03367): a per-parameter MLP over gradient,
momenta, weight and time features that outputs each parameter's step.

One update rule, :func:`lopt_update`, is a pure function of (MLP weights ``theta``, parameters,
gradients, optimizer state, step); :class:`LearnedOptimizer` wraps it as a
``torch.optim.Optimizer`` that trains any module, and the evolution-strategies trainer
(:mod:`metaqnn.learned_optimizer.es`) vmaps it over a population of perturbed ``theta``.

Features of a parameter ``p`` with gradient ``g`` (per tensor, each of the first group divided by
the square root of its mean square over the tensor):

- ``g``, ``p``, ``log(|p| + eps)``, momenta ``m_b = b m_b + (1 - b) g`` for each decay ``b``,
  ``g / sqrt(v)`` and ``m_b / sqrt(v)`` with ``v`` an RMS accumulator (Adam-like terms);
- tensor level (the same for every entry of a tensor): log RMS of the weight and of the
  gradient, divided by 10;
- time: ``tanh(t / s)`` for each time scale ``s``.

The MLP (one hidden layer of 32, ReLU) outputs a direction ``d`` and a log step ``m``. How they
make the update is the config's ``base`` (a key of :data:`BASES`):

- ``none`` (the paper's): ``p <- p - step_mult * d * exp(exp_mult * m)`` with the paper's
  ``step_mult = exp_mult = 0.001`` by default, which keeps the first meta-training steps stable;
- ``adam`` (a residual on Adam): ``p <- p - base_lr * a * exp(exp_mult * m) - step_mult * d``
  with ``a`` Adam's bias-corrected step ``m_hat / (sqrt(v_hat) + adam_eps)`` built from the
  optimizer's own momentum of decay ``base_beta1`` and its RMS accumulator (decay
  ``rms_decay``, Adam's beta2). With a zero output layer (``init_theta(kind="zero_output")``)
  ``d = m = 0`` and the optimizer IS Adam at ``base_lr``; the MLP learns a per-parameter,
  time- and feature-dependent log learning-rate multiplier and an extra direction.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

Tensors = dict[str, torch.Tensor]


@dataclass(frozen=True)
class LOptConfig:
    """The learned optimizer's architecture (its weights are ``theta``)."""

    hidden: int = 32
    """Hidden units of the per-parameter MLP (the paper's 32)."""
    momentum_decays: tuple[float, ...] = (0.5, 0.9, 0.99, 0.999)
    """Decays of the momentum features (several timescales)."""
    rms_decay: float = 0.999
    """Decay of the squared-gradient accumulator of the Adam-like features."""
    time_scales: tuple[float, ...] = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0)
    """Time features ``tanh(t / s)``, one per scale."""
    step_mult: float = 0.001
    """Scale of the direction output (the paper's 0.001)."""
    exp_mult: float = 0.001
    """Scale of the log-step output (the paper's 0.001)."""
    eps: float = 1e-8
    """Added under square roots and inside logarithms."""
    base: str = "none"
    """The update the MLP's outputs act on (a key of :data:`BASES`): ``none`` (the paper's
    ``step_mult * d * exp(exp_mult * m)``) or ``adam`` (Adam's step at ``base_lr`` times
    ``exp(exp_mult * m)`` plus ``step_mult * d``)."""
    base_lr: float = 0.01
    """Adam's learning rate in the ``adam`` base (e.g. the tuned one)."""
    base_beta1: float = 0.9
    """Adam's beta1 in the ``adam`` base: must be one of ``momentum_decays`` (its momentum is
    reused); beta2 is ``rms_decay``."""
    adam_eps: float = 1e-8
    """Adam's epsilon in the ``adam`` base (added to ``sqrt(v_hat)``, as torch's Adam does)."""

    def __post_init__(self) -> None:
        if self.hidden < 1:
            raise ValueError(f"LOptConfig.hidden={self.hidden!r}: must be >= 1")
        for b in (*self.momentum_decays, self.rms_decay):
            if not 0.0 <= b < 1.0:
                raise ValueError(f"LOptConfig: decay {b!r} must be in [0, 1)")
        if any(s <= 0 for s in self.time_scales):
            raise ValueError(f"LOptConfig.time_scales={self.time_scales!r}: must be positive")
        if self.step_mult <= 0 or self.exp_mult <= 0 or self.eps <= 0:
            raise ValueError(
                f"LOptConfig: step_mult={self.step_mult!r}, exp_mult={self.exp_mult!r} and "
                f"eps={self.eps!r} must be positive"
            )
        if self.base not in BASES:
            raise ValueError(f"LOptConfig.base={self.base!r}: choose from {', '.join(BASES)}")
        if not (math.isfinite(self.base_lr) and self.base_lr > 0) or not self.adam_eps > 0:
            raise ValueError(f"LOptConfig: base_lr={self.base_lr!r} and adam_eps="
                             f"{self.adam_eps!r} must be positive")  # fmt: skip
        if self.base == "adam" and self.base_beta1 not in self.momentum_decays:
            raise ValueError(
                f"LOptConfig.base_beta1={self.base_beta1!r} must be one of momentum_decays "
                f"{self.momentum_decays!r} (the adam base reuses that momentum)"
            )

    @property
    def n_features(self) -> int:
        """Inputs of the MLP per parameter."""
        k = len(self.momentum_decays)
        return 3 + k + 1 + k + 2 + len(self.time_scales)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (for checkpoints)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> LOptConfig:
        """The config of :meth:`to_dict`'s values."""
        values = dict(values)
        for key in ("momentum_decays", "time_scales"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)


def _random_theta(config: LOptConfig, gen: torch.Generator) -> Tensors:
    """He-initialised first layer, an output layer of variance 1 / hidden, zero biases: the
    optimizer starts as a random function of its features (the paper's start)."""
    f, h = config.n_features, config.hidden
    return {
        "w1": torch.randn(f, h, generator=gen) * math.sqrt(2.0 / f),
        "b1": torch.zeros(h),
        "w2": torch.randn(h, 2, generator=gen) * math.sqrt(1.0 / h),
        "b2": torch.zeros(2),
    }


def _adam_theta(config: LOptConfig, gen: torch.Generator) -> Tensors:
    """A start that already descends: two hidden units pass the Adam-like feature
    ``m / sqrt(v)`` of the momentum closest to 0.9 (per-tensor normalised) to the direction
    output, ``d = relu(f) - relu(-f)``; the other units are random with outputs scaled by 0.1
    (directions for the search to use)."""
    theta = _random_theta(config, gen)
    k = len(config.momentum_decays)
    nearest = min(range(k), key=lambda i: abs(config.momentum_decays[i] - 0.9))
    feature = 3 + k + 1 + nearest  # after g, p, log|p|, the momenta and g / sqrt(v)
    if config.hidden < 2:
        raise ValueError(f"the adam start needs hidden >= 2, got {config.hidden}")
    theta["w2"] *= 0.1
    theta["w1"][:, :2] = 0.0
    theta["w1"][feature, 0], theta["w1"][feature, 1] = 1.0, -1.0
    theta["w2"][:2] = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])  # d = f: p -= step_mult * f
    return theta


def _zero_output_theta(config: LOptConfig, gen: torch.Generator) -> Tensors:
    """The paper's random first layer and a zero output layer: both outputs are 0 for every
    input, so with the ``adam`` base the optimizer starts as exactly Adam at ``base_lr`` (with
    the ``none`` base it starts by not moving)."""
    theta = _random_theta(config, gen)
    theta["w2"] = torch.zeros_like(theta["w2"])
    return theta


#: How ``theta`` starts: name -> (config, generator) -> theta.
THETA_INITS: dict[str, Callable[[LOptConfig, torch.Generator], Tensors]] = {
    "random": _random_theta,
    "adam": _adam_theta,
    "zero_output": _zero_output_theta,
}


def init_theta(config: LOptConfig, *, seed: int = 0, kind: str = "random") -> Tensors:
    """Fresh MLP weights.

    Args:
        config: The optimizer's architecture.
        seed: Seeds the random weights.
        kind: A key of :data:`THETA_INITS`: ``random`` (the paper's), ``adam`` (starts as a
            per-tensor normalised Adam step of size ``step_mult``) or ``zero_output`` (a zero
            output layer: exactly Adam under ``LOptConfig(base="adam")``).

    Returns:
        ``{"w1": (F, H), "b1": (H,), "w2": (H, 2), "b2": (2,)}``, float32 on the CPU.
    """
    if kind not in THETA_INITS:
        raise ValueError(f"unknown theta init {kind!r}; choose from {', '.join(THETA_INITS)}")
    return THETA_INITS[kind](config, torch.Generator().manual_seed(seed))


def theta_shapes(config: LOptConfig) -> dict[str, tuple[int, ...]]:
    """The shape of each tensor of ``theta``."""
    return {k: tuple(v.shape) for k, v in init_theta(config).items()}


def init_state(params: Tensors, config: LOptConfig) -> Tensors:
    """Zero optimizer state for ``params``: ``m/<name>`` (K, *shape) momenta and ``v/<name>``
    (*shape) squared-gradient accumulators."""
    k = len(config.momentum_decays)
    state: Tensors = {}
    for name, p in params.items():
        state[f"m/{name}"] = torch.zeros((k, *p.shape), dtype=p.dtype, device=p.device)
        state[f"v/{name}"] = torch.zeros_like(p)
    return state


def _unit_rms(x: torch.Tensor, eps: float) -> torch.Tensor:
    """``x`` divided by the square root of its mean square over its last dimension."""
    return x * torch.rsqrt(x.square().mean(dim=-1, keepdim=True) + eps)


def _features(
    p: torch.Tensor,
    g: torch.Tensor,
    m: torch.Tensor,
    v: torch.Tensor,
    time: torch.Tensor,
    config: LOptConfig,
) -> torch.Tensor:
    """The (N, F) features of one tensor's N entries (flattened ``p``, ``g``: (N,); ``m``:
    (K, N); ``v``: (N,); ``time``: (T,) time features)."""
    eps = config.eps
    inv_rms = torch.rsqrt(v + eps)  # (N,)
    per_entry = torch.cat(
        [
            torch.stack([g, p, torch.log(p.abs() + eps)]),  # (3, N)
            m,  # (K, N)
            (g * inv_rms)[None],  # (1, N)
            m * inv_rms,  # (K, N)
        ]
    )  # (3 + 2K + 1, N)
    per_entry = _unit_rms(per_entry, eps)
    n = p.shape[0]
    tensor_level = torch.stack(
        [
            0.5 * torch.log(p.square().mean() + eps),
            0.5 * torch.log(g.square().mean() + eps),
        ]
    ).div(10.0)  # (2,)
    shared = torch.cat([tensor_level, time])[:, None].expand(-1, n)  # (2 + T, N)
    return torch.cat([per_entry, shared]).T  # (N, F)


def time_features(step: int | torch.Tensor, config: LOptConfig) -> torch.Tensor:
    """``tanh(t / s)`` for the config's time scales; shape (T,)."""
    scales = torch.tensor(config.time_scales)
    return torch.tanh(torch.as_tensor(step, dtype=torch.float32) / scales)


def _step_none(
    out: torch.Tensor, adam: Callable[[], torch.Tensor], config: LOptConfig
) -> torch.Tensor:
    """The paper's step ``step_mult * d * exp(exp_mult * m)`` of the MLP outputs (N, 2)."""
    return config.step_mult * out[:, 0] * torch.exp(config.exp_mult * out[:, 1])  # (N,)


def _step_adam(
    out: torch.Tensor, adam: Callable[[], torch.Tensor], config: LOptConfig
) -> torch.Tensor:
    """A residual on Adam: ``base_lr * adam() * exp(exp_mult * m) + step_mult * d``."""
    scale = torch.exp(config.exp_mult * out[:, 1])  # (N,)
    return config.base_lr * adam() * scale + config.step_mult * out[:, 0]  # (N,)


#: What the MLP's outputs act on: name -> (outputs (N, 2), Adam's step (a thunk), config) ->
#: the step (N,) subtracted from the parameters.
BASES: dict[str, Callable[[torch.Tensor, Callable[[], torch.Tensor], LOptConfig], torch.Tensor]]
BASES = {"none": _step_none, "adam": _step_adam}


def _adam_direction(
    m: torch.Tensor, v: torch.Tensor, step: int | torch.Tensor, config: LOptConfig
) -> torch.Tensor:
    """Adam's bias-corrected step (before the learning rate) from the momentum ``m`` (N,) of
    decay ``base_beta1`` and the accumulator ``v`` (N,) of decay ``rms_decay``, at the
    ``step + 1``-th update: ``(m / bc1) / (sqrt(v) / sqrt(bc2) + adam_eps)`` as torch's Adam."""
    t = step + 1
    bc1 = 1.0 - config.base_beta1**t
    bc2 = 1.0 - config.rms_decay**t
    return (m / bc1) / (v.sqrt() / bc2**0.5 + config.adam_eps)  # (N,)


def lopt_update(
    theta: Tensors,
    params: Tensors,
    grads: Tensors,
    state: Tensors,
    step: int | torch.Tensor,
    config: LOptConfig,
) -> tuple[Tensors, Tensors]:
    """One step of the learned optimizer, as a pure function (vmap-able over ``theta``,
    ``params``, ``grads`` and ``state``).

    Args:
        theta: MLP weights (see :func:`init_theta`).
        params: Name -> parameter tensor.
        grads: Name -> its gradient (same shapes).
        state: The optimizer state (see :func:`init_state`) before this step.
        step: Steps taken so far (0 for the first), for the time features.
        config: The optimizer's architecture.

    Returns:
        The new parameters and the new state.
    """
    decays = torch.tensor(config.momentum_decays)[:, None]  # (K, 1)
    b2 = config.rms_decay
    time = time_features(step, config)
    new_state: Tensors = {}
    feats, sizes, adams = [], [], []
    beta1 = config.momentum_decays.index(config.base_beta1) if config.base == "adam" else 0
    for name, p in params.items():
        g = grads[name].reshape(-1)  # (N,)
        m = state[f"m/{name}"].reshape(len(config.momentum_decays), -1)  # (K, N)
        m = decays.to(g) * m + (1.0 - decays.to(g)) * g
        v = b2 * state[f"v/{name}"].reshape(-1) + (1.0 - b2) * g.square()  # (N,)
        new_state[f"m/{name}"] = m.reshape(state[f"m/{name}"].shape)
        new_state[f"v/{name}"] = v.reshape(p.shape)
        feats.append(_features(p.reshape(-1), g, m, v, time.to(g), config))
        sizes.append(g.shape[0])
        adams.append((m[beta1], v))
    x = torch.cat(feats)  # (N_total, F)
    hidden = F.relu(x @ theta["w1"] + theta["b1"])  # (N_total, H)
    out = hidden @ theta["w2"] + theta["b2"]  # (N_total, 2)

    def adam() -> torch.Tensor:  # (N_total,), computed only by bases that use it
        return torch.cat([_adam_direction(m, v, step, config) for m, v in adams])

    delta = BASES[config.base](out, adam, config)  # (N_total,)
    new_params = {
        name: p - d.reshape(p.shape)
        for (name, p), d in zip(params.items(), torch.split(delta, sizes), strict=True)
    }
    return new_params, new_state


class LearnedOptimizer(torch.optim.Optimizer):
    """The learned update rule as a ``torch.optim.Optimizer``: ``LearnedOptimizer(model.
    parameters(), theta)``, then ``loss.backward(); opt.step()`` as with any optimizer.

    Parameters without a gradient are left alone (their state does not advance). The step count
    of the time features is per optimizer, not per parameter.

    Args:
        params: Parameters (or parameter groups) to optimise.
        theta: MLP weights (e.g. from a meta-training checkpoint); copied.
        config: The optimizer's architecture (must match ``theta``).
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        theta: Tensors,
        config: LOptConfig = LOptConfig(),
    ) -> None:
        expected = theta_shapes(config)
        got = {k: tuple(v.shape) for k, v in theta.items()}
        if got != expected:
            raise ValueError(f"theta shapes {got} do not match LOptConfig's {expected}")
        super().__init__(params, defaults={})
        self.config = config
        self.theta = {k: v.detach().clone() for k, v in theta.items()}
        self.steps_taken = 0

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        """Update every parameter that has a gradient; returns ``closure()`` if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        active = [p for group in self.param_groups for p in group["params"] if p.grad is not None]
        if not active:
            return loss
        params, grads, state = {}, {}, {}
        for i, p in enumerate(active):
            key = str(i)
            if not self.state[p]:
                zero = init_state({key: p.detach()}, self.config)
                self.state[p]["m"], self.state[p]["v"] = zero[f"m/{key}"], zero[f"v/{key}"]
            params[key], grads[key] = p.detach(), p.grad.detach()
            state[f"m/{key}"], state[f"v/{key}"] = self.state[p]["m"], self.state[p]["v"]
        device = active[0].device
        theta = {k: v.to(device) for k, v in self.theta.items()}
        new_params, new_state = lopt_update(
            theta, params, grads, state, self.steps_taken, self.config
        )
        for i, p in enumerate(active):
            key = str(i)
            p.copy_(new_params[key])
            self.state[p]["m"], self.state[p]["v"] = new_state[f"m/{key}"], new_state[f"v/{key}"]
        self.steps_taken += 1
        return loss

    def state_dict(self) -> dict[str, Any]:
        """The usual optimizer state plus the step count and ``theta``."""
        out = super().state_dict()
        out["steps_taken"] = self.steps_taken
        out["theta"] = {k: v.clone() for k, v in self.theta.items()}
        return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s values."""
        state_dict = dict(state_dict)
        self.steps_taken = int(state_dict.pop("steps_taken", 0))
        theta = state_dict.pop("theta", None)
        if theta is not None:
            self.theta = {k: v.detach().clone() for k, v in theta.items()}
        super().load_state_dict(state_dict)


class SmallConvNet(nn.Module):
    """The paper's inner model: 3x3 convs with ReLU at the given channels and strides, a spatial
    mean and a linear layer to the classes (Metz et al.: channels 32, 32, 64, 64, strides
    2, 2, 1, 1).

    Args:
        in_channels: Channels of the input images.
        classes: Outputs.
        channels: Output channels of each conv.
        strides: Stride of each conv (same length as ``channels``).
        generator: Random generator of the (PyTorch default) initialisation.
    """

    def __init__(
        self,
        in_channels: int,
        classes: int,
        channels: tuple[int, ...] = (32, 32, 64, 64),
        strides: tuple[int, ...] = (2, 2, 1, 1),
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if len(channels) != len(strides) or not channels or min(channels) < 1:
            raise ValueError(f"SmallConvNet: channels {channels!r} and strides {strides!r} must "
                             "be non-empty, positive and of the same length")  # fmt: skip
        convs, c = [], in_channels
        for out, stride in zip(channels, strides, strict=True):
            convs.append(nn.Conv2d(c, out, 3, stride=stride, padding=1))
            c = out
        self.convs = nn.ModuleList(convs)
        self.head = nn.Linear(c, classes)
        for module in (*self.convs, self.head):
            bound = 1.0 / math.sqrt(module.weight[0].numel())
            with torch.no_grad():
                module.weight.uniform_(-bound, bound, generator=generator)
                module.bias.uniform_(-bound, bound, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, classes) of images (N, C, H, W)."""
        for conv in self.convs:
            x = F.relu(conv(x))  # (N, c, H', W')
        return self.head(x.mean(dim=(2, 3)))  # (N, classes)
