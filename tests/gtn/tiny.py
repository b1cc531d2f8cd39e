"""Tiny problems shared by the GTN tests: quadrant blobs and a weight-normalised learner."""

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

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
