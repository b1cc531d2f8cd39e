"""Warm start: fit a GTN teacher's synthetic batches to real examples before meta-training.

Meta-training from a random generator spends its first hundreds of outer steps getting from
chance to data that teaches at all (on MNIST across the search space, 106 outer steps, 45 CPU
minutes, reached a median of 0.515 over 30 architectures). A cheap supervised fit skips that:
each learned generator input of the curriculum is paired with a distinct real training image
of its label, and the generator and the inputs are regressed onto them (mean squared error in
the normalised pixel space, Adam). Before any outer step the teacher then shows roughly the
real images that real-data training would see for the same number of steps, and meta-training
starts from there. Only the generator and the curriculum's inputs move; the learned inner
schedule and any soft labels are left as they are.

The fit runs batch by batch, in the curriculum's own batches, so the generator's batch
statistics are the ones it will see when teaching.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm import tqdm

from gtn.teacher import GTNTeacher

#: Per class: (all real images (N, C, H, W), the class's indices into them (P,) on the CPU, how
#: many to pick, a seeded CPU generator) -> positions in the class's indices, in slot order
#: (distinct while ``P`` allows).
Selection = Callable[[torch.Tensor, torch.Tensor, int, torch.Generator], torch.Tensor]

#: Lloyd iterations of the ``kmeans`` selection.
KMEANS_ITERATIONS = 15


def _select_random(
    real_x: torch.Tensor, pool: torch.Tensor, count: int, rng: torch.Generator
) -> torch.Tensor:
    """A random sample without replacement (cycling through the class if it is too small)."""
    order = torch.randperm(len(pool), generator=rng)
    return order[torch.arange(count) % len(pool)]


def _select_kmeans(
    real_x: torch.Tensor, pool: torch.Tensor, count: int, rng: torch.Generator
) -> torch.Tensor:
    """The class's images nearest to ``count`` k-means centres (Euclidean, in pixels), one
    distinct image per centre: a coreset that covers the class's modes instead of repeating its
    commonest look. Seeded k-means++ start; an empty cluster keeps its centre.

    Measured on MNIST (``python -m experiments real_curriculum``, experiments/RESULTS.md): taught
    with the schedule of the whole-space teacher, these real images gave medians of 0.871-0.889 over
    three seeds against 0.880-0.884 for random samples, no better; and the generator refitted
    to them taught worse (0.864) than the one fitted to a random sample (0.880).
    """
    if count >= len(pool):
        return _select_random(real_x, pool, count, rng)
    flat = real_x[pool.to(real_x.device)].reshape(len(pool), -1).cpu()
    first = int(torch.randint(len(flat), (1,), generator=rng))
    centres = flat[first].repeat(count, 1)
    nearest = (flat - centres[0]).pow(2).sum(1)  # squared distance to the nearest centre
    for j in range(1, count):  # k-means++ seeding: far images are likelier centres
        weights = nearest if float(nearest.sum()) > 0 else torch.ones_like(nearest)
        centres[j] = flat[int(torch.multinomial(weights, 1, generator=rng))]
        nearest = torch.minimum(nearest, (flat - centres[j]).pow(2).sum(1))
    for _ in range(KMEANS_ITERATIONS):
        assign = torch.cdist(flat, centres).argmin(1)  # (P,)
        sums = torch.zeros_like(centres).index_add_(0, assign, flat)
        sizes = torch.bincount(assign, minlength=count)
        filled = sizes > 0
        centres[filled] = sums[filled] / sizes[filled, None].to(flat.dtype)
    distance = torch.cdist(centres, flat)  # (count, P)
    chosen = torch.empty(count, dtype=torch.long)
    for j in range(count):  # the nearest image no earlier centre took
        pick = int(distance[j].argmin())
        chosen[j] = pick
        distance[:, pick] = float("inf")
    return chosen


#: Name -> how each class's fitted real images are picked (see :func:`paired_targets`).
SELECTIONS: dict[str, Selection] = {"random": _select_random, "kmeans": _select_kmeans}


def selection(name: str) -> Selection:
    """The selection called ``name``; a ValueError names the bad value and the choices."""
    if name not in SELECTIONS:
        raise ValueError(f"selection {name!r}: choose from {', '.join(SELECTIONS)}")
    return SELECTIONS[name]


@dataclass(frozen=True)
class WarmStartConfig:
    """The supervised fit of :func:`fit_to_real`."""

    steps: int = 600
    """Adam steps; each fits one curriculum batch (or, for a pool, one random batch of it)."""
    lr: float = 1e-3
    """Adam learning rate."""
    seed: int = 0
    """Seed of the pairing with real images and of the batch order."""
    select: str = "random"
    """How the real images are picked: a key of :data:`SELECTIONS`."""

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"WarmStartConfig.steps={self.steps}: must be >= 1")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"WarmStartConfig.lr={self.lr}: must be a positive number")
        selection(self.select)  # a bad name is a ValueError naming it


def paired_targets(
    labels: torch.Tensor,
    real_x: torch.Tensor,
    real_y: torch.Tensor,
    seed: int,
    select: str = "random",
) -> torch.Tensor:
    """A distinct real image of the same class for every label: shape ``labels.shape + (C, H,
    W)``. Each class's images are picked by the selection ``select`` (seeded; see
    :data:`SELECTIONS`), distinct while the class has enough.

    Raises:
        ValueError: If a label has no real image, or ``select`` is not a selection.
    """
    pick = selection(select)
    rng = torch.Generator().manual_seed(seed)
    flat = labels.reshape(-1).cpu()
    ys = real_y.cpu()
    chosen = torch.empty(len(flat), dtype=torch.long)
    for k in flat.unique().tolist():
        slots = (flat == k).nonzero().squeeze(1)
        pool = (ys == k).nonzero().squeeze(1)
        if len(pool) == 0:
            raise ValueError(f"warm start: no real image of class {k} to fit")
        chosen[slots] = pool[pick(real_x, pool, len(slots), rng)]
    return real_x[chosen.to(real_x.device)].reshape(*labels.shape, *real_x.shape[1:])


def fit_to_real(
    teacher: GTNTeacher,
    real_x: torch.Tensor,
    real_y: torch.Tensor,
    config: WarmStartConfig = WarmStartConfig(),
    *,
    progress: bool = False,
) -> list[float]:
    """Regress ``teacher``'s synthetic images onto paired real images (in place).

    Args:
        teacher: A GTN teacher whose curriculum has learned inputs (``full``,
            ``shuffled-batch`` or ``all-shuffled``).
        real_x: (N, C, H, W) normalised real training images, on the teacher's device.
        real_y: (N,) their labels.
        config: Steps, learning rate and seed.
        progress: Show a progress bar.

    Returns:
        The mean squared error of every step (host floats, read once at the end).

    Raises:
        ValueError: For a curriculum without learned inputs (``none`` draws fresh noise).
    """
    curriculum = teacher.curriculum
    noise = getattr(curriculum, "noise", None)
    if not isinstance(noise, torch.nn.Parameter):
        raise ValueError(
            f"warm start needs a curriculum with learned inputs; {teacher.config.curriculum!r} "
            "draws fresh noise every step"
        )
    labels = curriculum.labels
    # labels.shape + (C, H, W)
    targets = paired_targets(labels, real_x, real_y, config.seed, config.select)
    params = [*teacher.generator.parameters(), noise]
    optimizer = torch.optim.Adam(params, lr=config.lr)
    rng = torch.Generator().manual_seed(config.seed)
    batch = teacher.config.inner_batch
    losses = []
    teacher.train()
    for _ in tqdm(range(config.steps), disable=not progress, unit="fit step"):
        if noise.dim() == 3:  # (batches, B, Z): one of the curriculum's own batches
            i = int(torch.randint(noise.shape[0], (1,), generator=rng))
            z, y, target = noise[i], labels[i], targets[i]
        else:  # a pool (P, Z): a random batch of it
            index = torch.randperm(noise.shape[0], generator=rng)[:batch].to(noise.device)
            z, y, target = noise[index], labels[index], targets[index]
        loss = F.mse_loss(teacher.generator(z, y), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
    return [float(v) for v in torch.stack(losses).cpu()]
