"""Curricula: what the generator is fed at each inner step. Chosen by name from :data:`CURRICULA`.

* ``none``: fresh Gaussian noise every step (nothing about the inputs is learned).
* ``all-shuffled``: a learned pool of generator inputs; each step draws a random batch from it.
* ``shuffled-batch``: learned batches; each step uses one of them, in random order.
* ``full``: a learned, fixed sequence of batches; step ``t`` always uses batch ``t``.

Labels are fixed and balanced (position ``i`` of a batch has class ``i mod K``). With
``soft_labels=True`` every learned input also has learned label logits (initialised to a
confident one-hot), and the learner is trained on their softmax.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class CurriculumBatch:
    """Generator inputs for one inner step.

    Attributes:
        noise: (B, noise_dim) generator noise.
        labels: (B,) class of each example (the generator's label input).
        targets: (B, K) learned label distribution, or None for hard labels.
    """

    noise: torch.Tensor
    labels: torch.Tensor
    targets: torch.Tensor | None


def balanced_labels(count: int, num_classes: int) -> torch.Tensor:
    """(count,) labels cycling through the classes: as balanced as ``count`` allows."""
    return torch.arange(count) % num_classes


class Curriculum(nn.Module, abc.ABC):
    """Base class: ``forward(step, generator)`` returns the :class:`CurriculumBatch` of a step.

    Args:
        steps: Inner steps the curriculum serves.
        batch_size: Examples per step.
        noise_dim: Generator noise dimension.
        num_classes: Classes.
        soft_labels: Learn label logits for every learned input.
        seed: Seed of the learned inputs' initialisation.
    """

    def __init__(
        self,
        steps: int,
        batch_size: int,
        noise_dim: int,
        num_classes: int,
        *,
        soft_labels: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if steps < 1 or batch_size < 1:
            raise ValueError(
                f"curriculum needs steps >= 1 and batch_size >= 1, got {steps}, {batch_size}"
            )
        self.steps, self.batch_size = steps, batch_size
        self.noise_dim, self.num_classes = noise_dim, num_classes
        self.soft_labels = soft_labels
        self._init = torch.Generator().manual_seed(seed)

    def _learned(self, *shape: int) -> tuple[nn.Parameter, torch.Tensor, nn.Parameter | None]:
        """Learned noise of shape (*shape, noise_dim), its balanced labels and label logits."""
        noise = nn.Parameter(torch.randn(*shape, self.noise_dim, generator=self._init))
        labels = balanced_labels(shape[-1], self.num_classes).expand(*shape).clone()
        logits = None
        if self.soft_labels:
            logits = nn.Parameter(3.0 * nn.functional.one_hot(labels, self.num_classes).float())
        return noise, labels, logits

    def _check_step(self, step: int) -> None:
        if not 0 <= step < self.steps:
            raise IndexError(f"step {step} is outside this curriculum's {self.steps} steps")

    @abc.abstractmethod
    def forward(self, step: int, generator: torch.Generator | None = None) -> CurriculumBatch:
        """The generator inputs of inner step ``step`` (randomness from ``generator``)."""


class NoCurriculum(Curriculum):
    """Fresh noise every step; only soft labels (one set per batch position) are learned."""

    def __init__(self, *args: int, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        _, labels, logits = self._learned(self.batch_size)
        self.register_buffer("labels", labels)
        self.logits = logits

    def forward(self, step: int, generator: torch.Generator | None = None) -> CurriculumBatch:
        self._check_step(step)
        device = self.labels.device
        noise = torch.randn(self.batch_size, self.noise_dim, generator=generator, device=device)
        targets = None if self.logits is None else self.logits.softmax(dim=-1)
        return CurriculumBatch(noise, self.labels, targets)


class AllShuffledCurriculum(Curriculum):
    """A learned pool of ``pool_size`` inputs; each step draws ``batch_size`` of them at random."""

    def __init__(self, *args: int, pool_size: int = 4096, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.noise, labels, self.logits = self._learned(pool_size)
        self.register_buffer("labels", labels)

    def forward(self, step: int, generator: torch.Generator | None = None) -> CurriculumBatch:
        self._check_step(step)
        pool = self.noise.shape[0]
        index = torch.randperm(pool, generator=generator, device=self.labels.device)
        index = index[: self.batch_size]
        targets = None if self.logits is None else self.logits[index].softmax(dim=-1)
        return CurriculumBatch(self.noise[index], self.labels[index], targets)


class ShuffledBatchCurriculum(Curriculum):
    """``num_batches`` learned batches; each step uses one chosen at random."""

    def __init__(self, *args: int, num_batches: int = 32, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.noise, labels, self.logits = self._learned(num_batches, self.batch_size)
        self.register_buffer("labels", labels)

    def forward(self, step: int, generator: torch.Generator | None = None) -> CurriculumBatch:
        self._check_step(step)
        count = self.noise.shape[0]
        i = torch.randint(count, (1,), generator=generator, device=self.labels.device)  # no sync
        pick = lambda t: t.index_select(0, i).squeeze(0)  # noqa: E731
        targets = None if self.logits is None else pick(self.logits).softmax(dim=-1)
        return CurriculumBatch(pick(self.noise), pick(self.labels), targets)


class FullCurriculum(Curriculum):
    """A learned, fixed sequence: one learned batch per step, always in the same order."""

    def __init__(self, *args: int, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.noise, labels, self.logits = self._learned(self.steps, self.batch_size)
        self.register_buffer("labels", labels)

    def forward(self, step: int, generator: torch.Generator | None = None) -> CurriculumBatch:
        self._check_step(step)
        targets = None if self.logits is None else self.logits[step].softmax(dim=-1)
        return CurriculumBatch(self.noise[step], self.labels[step], targets)


#: Curricula by name.
CURRICULA: dict[str, type[Curriculum]] = {
    "none": NoCurriculum,
    "all-shuffled": AllShuffledCurriculum,
    "shuffled-batch": ShuffledBatchCurriculum,
    "full": FullCurriculum,
}


def build_curriculum(name: str, **kwargs: object) -> Curriculum:
    """A curriculum by name (see :data:`CURRICULA`); kwargs go to its constructor.

    Raises:
        ValueError: For an unknown name, listing the known ones.
    """
    cls = CURRICULA.get(name)
    if cls is None:
        raise ValueError(f"unknown curriculum {name!r}; choose from {sorted(CURRICULA)}")
    return cls(**kwargs)
