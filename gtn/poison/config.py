"""What a poisoning attack learns and how its victim trains: :class:`PoisonConfig` (the
attacker's side: classes, number of poisons, threat model, outer loop) and :class:`VictimConfig`
(the victim's SGD), with the poisons' initialisations (:data:`POISON_INITS`) and the threat
models (:data:`VICTIM_INITS`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class VictimConfig:
    """How the victim trains: SGD with momentum on shuffled mini-batches (the last partial batch
    of an epoch is dropped), first on the clean data alone, then on clean data plus poisons."""

    pretrain_epochs: int = 3
    """Epochs on the clean data before the poisons arrive (0: the poisoned set from scratch)."""
    epochs: int = 1
    """Epochs over the poisoned set (clean plus poisons)."""
    batch_size: int = 50
    """Mini-batch size."""
    lr: float = 0.02
    """SGD learning rate."""
    momentum: float = 0.9
    """SGD momentum (PyTorch's convention: ``v <- m v + g``, ``p <- p - lr v``)."""

    def __post_init__(self) -> None:
        for name in ("pretrain_epochs", "epochs", "batch_size"):
            value = getattr(self, name)
            low = 0 if name == "pretrain_epochs" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"VictimConfig.{name}={value!r}: expected an integer >= {low}")
        if not self.lr > 0:
            raise ValueError(f"VictimConfig.lr={self.lr!r}: expected a positive number")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"VictimConfig.momentum={self.momentum!r}: expected a value in [0, 1)")


def _source_init(source_pixels: torch.Tensor, count: int, gen: torch.Generator) -> torch.Tensor:
    """``count`` source-class images drawn without replacement (the label-flip baseline)."""
    if len(source_pixels) < count:
        raise ValueError(
            f"init 'source' needs {count} source-class images, the pool holds {len(source_pixels)}"
        )
    pick = torch.randperm(len(source_pixels), generator=gen)[:count]
    return source_pixels[pick.to(source_pixels.device)].clone()


def _noise_init(source_pixels: torch.Tensor, count: int, gen: torch.Generator) -> torch.Tensor:
    """Uniform noise pixels."""
    shape = (count, *source_pixels.shape[1:])
    return torch.rand(shape, generator=gen).to(source_pixels.device)


#: Poison initialisation name -> (source-class pixels in [0, 1], count, generator) -> pixels.
POISON_INITS: dict[str, Callable[[torch.Tensor, int, torch.Generator], torch.Tensor]] = {
    "source": _source_init,
    "noise": _noise_init,
}
#: The threat models: does the attacker know the victim's initialisation?
VICTIM_INITS = ("fixed", "random")


@dataclass(frozen=True)
class PoisonConfig:
    """What the attacker learns and how."""

    source: int
    """The class whose images should be classified as ``target``."""
    target: int
    """The label every poison carries, and the class the source images should go to."""
    count: int
    """Number of poisons."""
    victim_init: str = "fixed"
    """``fixed``: the victim's initialisation is known; ``random``: victims are drawn from a
    pool of ``init_pool`` initialisations (see :data:`VICTIM_INITS`)."""
    init: str = "source"
    """How poisons start (a key of :data:`POISON_INITS`)."""
    outer_steps: int = 200
    """Outer (Adam) steps on the poisons' pixels."""
    outer_lr: float = 0.1
    """Outer Adam learning rate on the pixel logits."""
    meta_batch: int = 4
    """Victim training runs averaged per outer step (fresh batch orders; for ``random`` also
    initialisations from the pool)."""
    init_pool: int = 8
    """Initialisations the ``random`` attacker trains against (each pre-trained once)."""
    known_order: bool = False
    """With ``fixed``: the attacker also knows the victim's batch-order seed, so the whole
    training is known and deterministic (DD's fixed-initialisation setting, where the distilled
    data fixes the order). Otherwise every victim training draws an order the attacker never
    saw."""
    clean_weight: float = 1.0
    """Weight of the other classes' cross-entropy in the outer objective."""
    truncate: int | None = None
    """Backpropagate only through the last this many steps of the poisoned training (earlier
    steps run without a graph: cheaper, and a poison seen early is mostly undone by the clean
    batches after it); None: through all of them."""
    seed: int = 0
    """Seeds the poisons' initialisation, the victims' initialisations and the batch orders."""

    def __post_init__(self) -> None:
        for name in ("source", "target", "count", "outer_steps", "meta_batch", "init_pool", "seed"):
            value = getattr(self, name)
            low = 1 if name in ("count", "meta_batch", "init_pool") else 0
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"PoisonConfig.{name}={value!r}: expected an integer >= {low}")
        if self.source == self.target:
            raise ValueError(f"PoisonConfig: source and target are both {self.source}")
        if self.known_order and self.victim_init != "fixed":
            raise ValueError("PoisonConfig.known_order=True needs victim_init='fixed'")
        if self.victim_init not in VICTIM_INITS:
            raise ValueError(
                f"PoisonConfig.victim_init={self.victim_init!r}: choose from {VICTIM_INITS}"
            )
        if self.init not in POISON_INITS:
            raise ValueError(
                f"PoisonConfig.init={self.init!r}: choose from {', '.join(POISON_INITS)}"
            )
        if not self.outer_lr > 0:
            raise ValueError(f"PoisonConfig.outer_lr={self.outer_lr!r}: expected > 0")
        if not self.clean_weight >= 0:
            raise ValueError(f"PoisonConfig.clean_weight={self.clean_weight!r}: expected >= 0")
        if self.truncate is not None and (
            isinstance(self.truncate, bool)
            or not isinstance(self.truncate, int)
            or self.truncate < 1
        ):
            raise ValueError(f"PoisonConfig.truncate={self.truncate!r}: expected None or >= 1")
