"""Tiny problems shared by the GTN tests: quadrant blobs and a weight-normalised learner."""

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from gtn.inner_loop import model_params, unroll

CLASSES = 4


def blobs(n: int = 256, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Separable blobs: class k lights up quadrant k of an 8x8 image."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(CLASSES, (n,), generator=g)
    x = 0.3 * torch.randn(n, 1, 8, 8, generator=g)
    for k in range(CLASSES):
        r, c = divmod(k, 2)
        x[y == k, :, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4] += 1.5
    return x, y


def learner(seed: int) -> nn.Module:
    """A fresh weight-normalised conv learner for 1x8x8 inputs."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        conv = weight_norm(nn.Conv2d(1, 4, 3, padding=1))
        linear = weight_norm(nn.Linear(64, CLASSES))
        return nn.Sequential(conv, nn.LeakyReLU(0.1), nn.MaxPool2d(2), nn.Flatten(), linear)


def mlp(dtype: torch.dtype = torch.float64) -> nn.Module:
    """A seeded 6 -> 5 -> 3 tanh MLP (for meta-gradient checks in float64)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3)).to(dtype)


def central_difference(loss_fn, tensor: torch.Tensor, index, eps: float = 1e-6) -> torch.Tensor:
    """(loss(t + eps) - loss(t - eps)) / (2 eps) with ``tensor[index]`` moved in place (and
    restored): the numerical derivative of ``loss_fn()`` in that element."""
    with torch.no_grad():
        tensor[index] += eps
        up = loss_fn()
        tensor[index] -= 2 * eps
        down = loss_fn()
        tensor[index] += eps
    return (up - down) / (2 * eps)


def flat(module: nn.Module) -> torch.Tensor:
    """All parameters of a module as one vector."""
    return torch.cat([p.detach().flatten() for p in module.parameters()])


def float64_problem(steps: int, seed: int = 0):
    """Synthetic batches (steps, 4, 6) with labels and a real set (10, 6) for :func:`mlp`:
    ``(syn, syn_y, real_x, real_y)``, float64, ``syn`` requiring grad."""
    g = torch.Generator().manual_seed(seed)
    syn = torch.randn(steps, 4, 6, generator=g, dtype=torch.float64, requires_grad=True)
    syn_y = torch.randint(3, (steps, 4), generator=g)
    real_x = torch.randn(10, 6, generator=g, dtype=torch.float64)
    real_y = torch.randint(3, (10,), generator=g)
    return syn, syn_y, real_x, real_y


def meta_loss(learner, syn, syn_y, sched, real_x, real_y, steps, truncate=None,
              checkpoint=False, keep=frozenset()):  # fmt: skip
    """Cross-entropy on ``real_x`` after unrolling ``steps`` steps of ``sched`` on the
    synthetic batches (plus 0.01 x the summed logits after each ``keep`` step)."""
    params, buffers = model_params(learner)
    result = unroll(learner, params, buffers, lambda t: (syn[t], syn_y[t]), sched, steps,
                    truncate=truncate, checkpoint=checkpoint, keep_steps=keep)  # fmt: skip
    logits = torch.func.functional_call(learner, (result.params, buffers), (real_x,))
    loss = nn.functional.cross_entropy(logits, real_y)
    if keep:  # an intermediate meta-loss too
        extra = sum(torch.func.functional_call(learner, (p, buffers), (real_x,)).sum()
                    for p in result.kept.values())  # fmt: skip
        loss = loss + 0.01 * extra
    return loss
