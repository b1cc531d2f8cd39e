"""Several learners of one architecture taught at once: their parameters stacked along a new
leading dimension and every inner step run for all of them in one ``torch.func.vmap``-ed
forward and backward pass (the GPU path's "several learners at once"; on a CPU it still saves
the per-learner Python and dispatch overhead).

Only for teaching without a meta-gradient (rewards, evaluation). The update is the inner
loop's SGD with momentum, ``v <- m v + g``, ``p <- p - lr v``, with the same learned schedule
and the same batches for every member; members differ in their initialisation. Learners must
not have running statistics (GTN learners use batch statistics only): buffers are shared.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, stack_module_state, vmap

from gtn.inner_loop import LearnedSGD, Params, loss_fn, step_rule


@contextlib.contextmanager
def _no_fallback_warning() -> Iterator[None]:
    """Silence functorch's "no batching rule" warning (weight norm has none in torch 2.14;
    the fallback is correct, only slower for that one small op)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not yet implemented the batching rule.*")
        yield


def stack_learners(learners: Sequence[nn.Module]) -> tuple[Params, Params]:
    """(parameters, buffers) of same-shaped learners stacked along a new leading dimension.

    Raises:
        ValueError: If there are no learners, their parameter names or shapes differ, or they
            carry running statistics (which a vmap-ed batch-norm step would not update).
    """
    if not learners:
        raise ValueError("stack_learners needs at least one learner")
    first = [(n, p.shape) for n, p in learners[0].named_parameters()]
    for i, learner in enumerate(learners[1:], 1):
        other = [(n, p.shape) for n, p in learner.named_parameters()]
        if other != first:
            raise ValueError(f"learner {i} differs from learner 0 in its parameters")
    running = [n for n, _ in learners[0].named_buffers() if "running" in n]
    if running:
        raise ValueError(f"learners with running statistics cannot be stacked: {running[0]}")
    params, buffers = stack_module_state(list(learners))
    return {n: p.detach() for n, p in params.items()}, buffers


def unroll_population(
    model: nn.Module,
    params: Params,
    buffers: Params,
    batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
    schedule: LearnedSGD,
    steps: int,
) -> Params:
    """Train stacked parameters (leading dimension P) for ``steps`` inner steps on
    ``batches`` (the same for every member) with ``schedule``'s learned lr and momentum.

    Args:
        model: One learner of the architecture (its structure only; parameters come from
            ``params``).
        params: Stacked parameters, name -> (P, ...).
        buffers: Stacked buffers, name -> (P, ...).
        batches: At least ``steps`` (inputs (B, C, H, W), targets) pairs.
        schedule: The learned inner schedule (at least ``steps`` long).
        steps: Inner steps.

    Returns:
        The stacked parameters after training (no graph).
    """
    if steps > schedule.steps or steps > len(batches):
        raise ValueError(f"{steps} inner steps requested; the schedule has {schedule.steps}, "
                         f"{len(batches)} batches were given")  # fmt: skip

    def step_loss(p: Params, b: Params, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return loss_fn(functional_call(model, (p, b), (x,)), y)

    grads = vmap(grad(step_loss), in_dims=(0, 0, None, None))
    direction = vmap(step_rule(schedule.rule))  # per member
    with torch.no_grad():
        lrs, momenta = schedule.lrs().detach(), schedule.momenta().detach()
    params = {n: p.detach() for n, p in params.items()}
    velocity = {n: torch.zeros_like(p) for n, p in params.items()}
    was_training = model.training
    model.train()
    try:
        with _no_fallback_warning():
            for t in range(steps):
                x, targets = batches[t]
                g = grads(params, buffers, x, targets)
                with torch.no_grad():
                    velocity = {
                        n: momenta[t] * velocity[n] + direction(params[n], g[n]) for n in params
                    }
                    params = {n: params[n] - lrs[t] * velocity[n] for n in params}
    finally:
        model.train(was_training)
    return params


def evaluate_population(
    model: nn.Module,
    params: Params,
    buffers: Params,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    batch_size: int = 1000,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Accuracy and mean cross-entropy of every member on (x, y), in eval mode.

    Returns:
        Two (P,) tensors (on the parameters' device; no host sync).
    """
    members = next(iter(params.values())).shape[0]
    device = next(iter(params.values())).device
    correct = torch.zeros(members, device=device)
    loss_sum = torch.zeros(members, device=device)

    def logits_of(p: Params, b: Params, xb: torch.Tensor) -> torch.Tensor:
        return functional_call(model, (p, b), (xb,))

    forward = vmap(logits_of, in_dims=(0, 0, None))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), _no_fallback_warning():
            for start in range(0, len(y), batch_size):
                xb = x[start : start + batch_size].to(device)
                yb = y[start : start + batch_size].to(device)
                logits = forward(params, buffers, xb)  # (P, B, K)
                loss_sum += (
                    F.cross_entropy(logits.flatten(0, 1), yb.repeat(members), reduction="none")
                    .view(members, -1)
                    .sum(dim=1)
                )
                correct += (logits.argmax(dim=2) == yb).sum(dim=1)
    finally:
        model.train(was_training)
    n = max(len(y), 1)
    return correct / n, loss_sum / n


def unstack_into(learners: Sequence[nn.Module], params: Params) -> None:
    """Copy member ``i`` of stacked ``params`` into ``learners[i]``'s parameters in place."""
    with torch.no_grad():
        for i, learner in enumerate(learners):
            for name, param in learner.named_parameters():
                param.copy_(params[name][i])
