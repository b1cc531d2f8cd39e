"""The inner loop: a learner trained by SGD with momentum whose learning rate and momentum are
learned per step, written as a pure function of (parameters, batches) on
``torch.func.functional_call`` so that the meta-gradient flows through every step.

What the momentum accumulates is a *step rule* applied to each parameter's gradient, chosen by
name from :data:`STEP_RULES`: ``sgd`` (the gradient itself, the paper's) or ``relative`` (the
gradient rescaled per tensor to the tensor's own norm, as in LARS), which makes one learned
schedule fit architectures whose gradient scales differ by orders of magnitude.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

Params = dict[str, torch.Tensor]
#: Inner step -> (inputs (B, C, H, W), targets: (B,) labels or (B, K) distributions).
BatchFn = Callable[[int], tuple[torch.Tensor, torch.Tensor]]
#: (parameter, its gradient) -> the direction the momentum accumulates.
StepRule = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

#: The ``relative`` rule's floor on a tensor's norm, per square root of its elements (so that a
#: tensor initialised at zero, a bias, still moves).
RELATIVE_FLOOR = 1e-2
#: The ``relative`` rule multiplies a gradient by at most this: with the default rate 0.03 an
#: effective SGD rate of 3, above the best rates measured for any sampled architecture (at
#: most 1.0), so it bounds only the rescaling of rounding residue (see the rule).
RELATIVE_MAX_SCALE = 100.0


def _sgd_rule(param: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """The gradient itself: ``v <- m v + g``."""
    return grad


def _relative_rule(param: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """The gradient rescaled to the parameter tensor's norm (plus a floor of
    :data:`RELATIVE_FLOOR` per square root of its elements): a learning rate ``lr`` then moves
    every tensor by about ``lr`` of its own size, whatever its fan-in and gradient scale.

    On real MNIST data, 32 steps of 128 and momentum 0.5, over 30 sampled architectures of the
    MNIST space at widths / 16 (``python -m experiments step_rules``), one shared rate (0.03)
    gave a median accuracy of 0.839 with this rule against 0.814 for the best shared SGD rate
    and 0.785 for Adam's (0.843 with each architecture's own best); the per-architecture best
    SGD rates ranged over 0.01-1.0.

    The rescaling factor is held constant in the meta-gradient (a stop-gradient, as learned
    optimisers treat their normalisers) and capped at :data:`RELATIVE_MAX_SCALE`. A gradient
    that is zero up to rounding (the weight-normalised direction of a layer with one input, as
    in ``[GAP, SM(10)]``) would otherwise be rescaled by about 1e8, and that factor compounds
    over the unroll: the meta-gradient of one outer step on ``[GAP, SM(10)]`` was NaN uncapped
    or capped at 1e4, 2.5e6 capped at 1e3 and 0.04 capped at 100; 15 of the first 52 outer
    steps of an MNIST meta-training across the space had a non-finite meta-gradient before. The
    meta-gradient through the gradient itself, and through the last step's learning rate and
    momentum, is exact.
    """
    floor = RELATIVE_FLOOR * param.numel() ** 0.5
    with torch.no_grad():  # the factor is a constant of the meta-gradient (see above)
        scale = ((param.norm() + floor) / grad.norm()).clamp(max=RELATIVE_MAX_SCALE)
    return grad * scale


#: Step rule name -> rule (see the module docstring).
STEP_RULES: dict[str, StepRule] = {"sgd": _sgd_rule, "relative": _relative_rule}
#: Step rule name -> the initial learning rate a teacher's schedule starts from by default
#: (sgd: the paper's 0.02; relative: the best shared rate of the measurement above).
INITIAL_LR: dict[str, float] = {"sgd": 0.02, "relative": 0.03}


def step_rule(name: str) -> StepRule:
    """The rule called ``name``; a ValueError names the bad value and the choices."""
    if name not in STEP_RULES:
        raise ValueError(f"step rule {name!r}: choose from {', '.join(STEP_RULES)}")
    return STEP_RULES[name]


class LearnedSGD(nn.Module):
    """Per-step learning rate (log-parameterised) and momentum (logit-parameterised).

    Args:
        steps: Inner steps.
        lr: Initial learning rate of every step (the paper's 0.02).
        momentum: Initial momentum of every step (the paper's 0.5); kept in (0, 1) by a
            sigmoid.
        rule: The step rule (a key of :data:`STEP_RULES`) whose output the momentum
            accumulates.
    """

    def __init__(
        self, steps: int, lr: float = 0.02, momentum: float = 0.5, rule: str = "sgd"
    ) -> None:
        super().__init__()
        if steps < 1 or lr <= 0 or not 0 < momentum < 1:
            raise ValueError(f"LearnedSGD needs steps >= 1, lr > 0, 0 < momentum < 1; got "
                             f"{steps}, {lr}, {momentum}")  # fmt: skip
        step_rule(rule)
        self.rule = rule
        self.log_lr = nn.Parameter(torch.full((steps,), math.log(lr)))
        self.momentum_logit = nn.Parameter(
            torch.full((steps,), math.log(momentum / (1 - momentum)))
        )

    @property
    def steps(self) -> int:
        """Number of inner steps with a learned schedule."""
        return self.log_lr.shape[0]

    def lrs(self) -> torch.Tensor:
        """(steps,) learning rates."""
        return self.log_lr.exp()

    def momenta(self) -> torch.Tensor:
        """(steps,) momenta in (0, 1)."""
        return self.momentum_logit.sigmoid()


def model_params(model: nn.Module) -> tuple[Params, Params]:
    """The (parameters, buffers) of a module as name -> tensor dicts for ``functional_call``."""
    return dict(model.named_parameters()), dict(model.named_buffers())


def loss_fn(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with hard (B,) or soft (B, K) targets."""
    return F.cross_entropy(logits, targets)


@dataclass
class UnrollResult:
    """The learner's parameters after the unroll, the inner losses (tensors, no sync), and the
    parameters after each step listed in ``keep_steps``."""

    params: Params
    losses: list[torch.Tensor]
    kept: dict[int, Params]


def sgd_step(
    model: nn.Module,
    params: Params,
    buffers: Params,
    velocity: Params,
    x: torch.Tensor,
    targets: torch.Tensor,
    lr: torch.Tensor,
    momentum: torch.Tensor,
    *,
    create_graph: bool,
    rule: str = "sgd",
) -> tuple[Params, Params, torch.Tensor]:
    """One SGD-with-momentum step: ``v <- m v + r(p, g)``, ``p <- p - lr v``, ``r`` the step
    rule named ``rule`` (for ``sgd``, ``r(p, g) = g``).

    Returns:
        New parameters, new velocity and the step's loss. With ``create_graph`` the new
        parameters are differentiable in ``x``, ``targets``, ``lr``, ``momentum`` and
        ``params``.
    """
    names = list(params)
    with torch.enable_grad():  # the inner step needs gradients even under no_grad callers
        logits = functional_call(model, (params, buffers), (x,))  # (B, K)
        loss = loss_fn(logits, targets)
        grads = torch.autograd.grad(loss, [params[n] for n in names], create_graph=create_graph)
    direction = step_rule(rule)
    new_v = {
        n: momentum * velocity[n] + direction(params[n], g)
        for n, g in zip(names, grads, strict=True)
    }
    new_p = {n: params[n] - lr * new_v[n] for n in names}
    return new_p, new_v, loss


class _CheckpointedStep(torch.autograd.Function):
    """One inner step whose graph is not kept: the forward pass stores only its inputs
    (parameters, velocity, batch, lr, momentum) and the backward pass recomputes the step with
    its graph (``create_graph=True``) to backpropagate through it. Memory per step is then the
    size of the parameters, not of the learner's activations and their double-backward graph.
    """

    @staticmethod
    def forward(ctx, model, buffers, names, n, rule, lr, momentum, x, targets, *tensors):  # type: ignore[override]
        params = dict(zip(names, tensors[:n], strict=True))
        velocity = dict(zip(names, tensors[n:], strict=True))
        with torch.enable_grad():
            detached = {k: p.detach().requires_grad_() for k, p in params.items()}
            new_p, new_v, loss = sgd_step(
                model, detached, buffers, velocity, x, targets, lr, momentum,
                create_graph=False, rule=rule,
            )  # fmt: skip
        ctx.model, ctx.buffers, ctx.names, ctx.n, ctx.rule = model, buffers, names, n, rule
        ctx.save_for_backward(lr, momentum, x, targets, *tensors)
        ctx.mark_non_differentiable(loss)
        return (*(new_p[k].detach() for k in names), *(new_v[k].detach() for k in names),
                loss.detach())  # fmt: skip

    @staticmethod
    def backward(ctx, *grad_outputs):  # type: ignore[override]
        lr, momentum, x, targets, *tensors = ctx.saved_tensors
        names, n = ctx.names, ctx.n
        inputs = [lr, momentum, x, targets, *tensors]
        wants = list(ctx.needs_input_grad[5:])
        leaves = [
            t.detach().requires_grad_(w and t.is_floating_point())
            for t, w in zip(inputs, wants, strict=True)
        ]
        lr_, m_, x_, y_, *rest = leaves
        params = dict(zip(names, rest[:n], strict=True))
        velocity = dict(zip(names, rest[n:], strict=True))
        with torch.enable_grad():
            new_p, new_v, _ = sgd_step(
                ctx.model, params, ctx.buffers, velocity, x_, y_, lr_, m_, create_graph=True,
                rule=ctx.rule,
            )  # fmt: skip
            outputs = [*(new_p[k] for k in names), *(new_v[k] for k in names)]
            grads = grad_outputs[: 2 * n]
            pairs = [(o, g) for o, g in zip(outputs, grads, strict=True) if o.requires_grad]
            wanted = [leaf for leaf in leaves if leaf.requires_grad]
            found = torch.autograd.grad(
                [o for o, _ in pairs], wanted, [g for _, g in pairs], allow_unused=True
            )
        by_leaf = dict(zip(map(id, wanted), found, strict=True))
        return (None, None, None, None, None, *(by_leaf.get(id(leaf)) for leaf in leaves))


def checkpointed_sgd_step(
    model: nn.Module,
    params: Params,
    buffers: Params,
    velocity: Params,
    x: torch.Tensor,
    targets: torch.Tensor,
    lr: torch.Tensor,
    momentum: torch.Tensor,
    rule: str = "sgd",
) -> tuple[Params, Params, torch.Tensor]:
    """:func:`sgd_step` with ``create_graph`` semantics but gradient checkpointing: the step is
    recomputed in the backward pass instead of keeping its graph. Gradients are the same as
    :func:`sgd_step`'s (up to floating-point summation order); running statistics in
    ``buffers`` would be updated again by the recomputation, so use learners without them.
    """
    names = list(params)
    out = _CheckpointedStep.apply(
        model, buffers, names, len(names), rule, lr, momentum, x, targets,
        *(params[k] for k in names), *(velocity[k] for k in names),
    )  # fmt: skip
    n = len(names)
    return (
        dict(zip(names, out[:n], strict=True)),
        dict(zip(names, out[n : 2 * n], strict=True)),
        out[-1],
    )


def unroll(
    model: nn.Module,
    params: Params,
    buffers: Params,
    batches: BatchFn,
    optimizer: LearnedSGD,
    steps: int,
    *,
    create_graph: bool = True,
    truncate: int | None = None,
    checkpoint: bool = False,
    keep_steps: frozenset[int] = frozenset(),
) -> UnrollResult:
    """Train ``model``'s parameters for ``steps`` inner steps on ``batches``.

    Args:
        model: The learner (only its structure is used: parameters come from ``params``).
        params: Initial parameters (name -> tensor); they need ``requires_grad``.
        buffers: Its buffers (batch-norm statistics are updated in place).
        batches: Step -> (inputs, targets).
        optimizer: The learned schedule.
        steps: Inner steps (at most ``optimizer.steps``).
        create_graph: Keep the graph of every step for the meta-gradient.
        truncate: Backpropagate only through the last ``truncate`` steps (bounds memory);
            earlier steps run without a graph.
        checkpoint: Gradient checkpointing: keep only each step's inputs and recompute the
            step in the backward pass (the same meta-gradient, about one more forward and
            backward of the learner per step, memory bounded by the parameters per step).
        keep_steps: Steps (1-based counts of steps taken) after which to keep the parameters,
            for intermediate meta-losses.

    Returns:
        The :class:`UnrollResult`.
    """
    if steps > optimizer.steps:
        raise ValueError(f"{steps} inner steps requested, the schedule has {optimizer.steps}")
    lrs, momenta, rule = optimizer.lrs(), optimizer.momenta(), optimizer.rule
    velocity = {n: torch.zeros_like(p) for n, p in params.items()}
    first_graph_step = 0 if truncate is None or not create_graph else max(0, steps - truncate)
    losses, kept = [], {}
    for t in range(steps):
        graph = create_graph and t >= first_graph_step
        if create_graph and t == first_graph_step and t > 0:
            params = {n: p.detach().requires_grad_() for n, p in params.items()}
            velocity = {n: v.detach() for n, v in velocity.items()}
        with torch.set_grad_enabled(graph):  # no generator graph for steps not backpropagated
            x, targets = batches(t)
        if not graph:
            lr, m = lrs[t].detach(), momenta[t].detach()
            params = {n: p.detach().requires_grad_() for n, p in params.items()}
        else:
            lr, m = lrs[t], momenta[t]
        if graph and checkpoint:
            params, velocity, loss = checkpointed_sgd_step(
                model, params, buffers, velocity, x, targets, lr, m, rule
            )
        else:
            with torch.set_grad_enabled(graph or torch.is_grad_enabled()):
                params, velocity, loss = sgd_step(
                    model, params, buffers, velocity, x, targets, lr, m, create_graph=graph,
                    rule=rule,
                )  # fmt: skip
        if not graph:
            params = {n: p.detach() for n, p in params.items()}
            velocity = {n: v.detach() for n, v in velocity.items()}
        losses.append(loss.detach())
        if t + 1 in keep_steps and t + 1 < steps:
            kept[t + 1] = params
    return UnrollResult(params, losses, kept)
