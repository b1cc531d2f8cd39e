"""The poisoning attack: the learned poisons (:class:`PoisonSet`), the malicious outer
objective, the outer loop with its checkpoints (:class:`PoisonAttack`), and the evaluation of
poisons on victims the attacker never trained against (:func:`evaluate_poisons`).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from gtn.meta import LearnerFactory
from gtn.poison.config import POISON_INITS, PoisonConfig, VictimConfig
from gtn.poison.victims import (
    Data,
    Victim,
    attacker_victims,
    derived_seed,
    epoch_orders,
    held_out_victims,
    pretrain_orders,
    pretrained_victim,
    train_functional,
    train_victim,
)

CHECKPOINT_KIND = "poison"
CHECKPOINT_VERSION = 1


class PoisonSet(nn.Module):
    """``count`` learned images in [0, 1] (``sigmoid`` of ``raw``), all labelled ``target``."""

    def __init__(self, pixels: torch.Tensor, target: int) -> None:
        super().__init__()
        unit = pixels.detach().clamp(0, 1) * 0.98 + 0.01  # keep the logits finite
        self.raw = nn.Parameter(torch.logit(unit))
        self.target = target

    def pixels(self) -> torch.Tensor:
        """(count, C, H, W) poison images in [0, 1]."""
        return torch.sigmoid(self.raw)

    def labels(self) -> torch.Tensor:
        """(count,) all ``target``."""
        return torch.full(
            (self.raw.shape[0],), self.target, dtype=torch.long, device=self.raw.device
        )


def poisoned_set(
    data: Data, poison_pixels: torch.Tensor, target: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The victim's poisoned training set: clean examples, then the poisons (normalised)."""
    x = torch.cat([data.train_x, data.normalize(poison_pixels)])
    labels = torch.full((len(poison_pixels),), target, dtype=torch.long, device=x.device)
    return x, torch.cat([data.train_y, labels])


def outer_losses(
    logits: torch.Tensor, y: torch.Tensor, source: int, target: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(source images -> target cross-entropy, other classes -> own label cross-entropy)."""
    is_source = y == source
    adversarial = F.cross_entropy(logits[is_source], torch.full_like(y[is_source], target))
    clean = F.cross_entropy(logits[~is_source], y[~is_source])
    return adversarial, clean


@dataclass(frozen=True)
class AttackScore:
    """What a poisoned model does on labelled images.

    Attributes:
        success: Share of ``source`` images classified as ``target`` (targeted misclassification).
        source_accuracy: Share of ``source`` images classified correctly.
        other_accuracy: Accuracy on the images of every other class.
        accuracy: Accuracy on all images.
    """

    success: float
    source_accuracy: float
    other_accuracy: float
    accuracy: float


def attack_score(
    predictions: torch.Tensor, y: torch.Tensor, source: int, target: int
) -> AttackScore:
    """Score predicted labels against true ones (one host transfer)."""
    is_source = y == source
    right = predictions == y
    stats = torch.stack(
        [
            (predictions[is_source] == target).float().mean(),
            right[is_source].float().mean(),
            right[~is_source].float().mean(),
            right.float().mean(),
        ]
    ).tolist()
    return AttackScore(*stats)


@dataclass
class StepStats:
    """One outer step's record."""

    step: int
    adversarial: float
    clean: float
    success: float
    other_accuracy: float
    seconds: float
    skipped: bool = False
    """A non-finite loss or gradient: the poisons were left as they were."""

    def to_dict(self) -> dict[str, float]:
        """Plain values."""
        return asdict(self)


@dataclass
class PoisonAttack:
    """Learns poisons against a victim family by backpropagating through its training.

    Victims should have no running statistics (batch norm in training mode would update its
    buffers at every unrolled step of every outer step).

    Args:
        factory: Seed -> a freshly initialised victim module (``gtn.meta.LearnerFactory``).
        data: Clean training set and held-out outer-objective images.
        config: The attack.
        victim: How the victim trains.
        source_pixels: Source-class images in [0, 1] to start poisons from (``init='source'``),
            not from the victim's training set.
    """

    factory: LearnerFactory
    data: Data
    config: PoisonConfig
    victim: VictimConfig
    source_pixels: torch.Tensor
    history: list[StepStats] = field(default_factory=list)

    def __post_init__(self) -> None:
        gen = torch.Generator().manual_seed(derived_seed(self.config.seed, 3))
        start = POISON_INITS[self.config.init](self.source_pixels, self.config.count, gen)
        self.poisons = PoisonSet(start.to(self.data.train_x.device), self.config.target)
        self.optimizer = torch.optim.Adam(self.poisons.parameters(), lr=self.config.outer_lr)
        self.step = 0
        self._victims: dict[int, Victim] = {}

    # -- victims
    def victim_for(self, init_seed: int) -> Victim:
        """The pre-trained victim of ``init_seed`` (pre-trained once per attack)."""
        if init_seed not in self._victims:
            self._victims[init_seed] = pretrained_victim(
                self.factory, self.data, self.victim, init_seed
            )
        return self._victims[init_seed]

    def _draws(self, step: int) -> Iterator[tuple[Victim, int]]:
        """(victim, batch-order seed) of each run of outer step ``step``."""
        for init_seed, order_seed in attacker_victims(self.config, step):
            yield self.victim_for(init_seed), order_seed

    # -- one outer step
    def outer_step(self) -> StepStats:
        """Average the outer objective's gradient over ``meta_batch`` victim trainings and take
        one Adam step on the poison pixels (skipped, and recorded as such, when the loss or the
        gradient is not finite)."""
        start = time.perf_counter()
        config, data = self.config, self.data
        n = len(data.train_y) + config.count
        self.optimizer.zero_grad(set_to_none=True)
        records = []
        for victim, order_seed in self._draws(self.step):
            x, y = poisoned_set(data, self.poisons.pixels(), config.target)
            orders = epoch_orders(n, self.victim.epochs, self.victim.batch_size, order_seed)
            params = {k: v.clone().requires_grad_() for k, v in victim.params.items()}
            trained = train_functional(
                victim.model,
                params,
                victim.buffers,
                x,
                y,
                orders,
                self.victim,
                create_graph=True,
                truncate=config.truncate,
            )
            logits = functional_call(victim.model, (trained, victim.buffers), (data.val_x,))
            adv, clean = outer_losses(logits, data.val_y, config.source, config.target)
            ((adv + config.clean_weight * clean) / config.meta_batch).backward()
            predictions, is_source = logits.detach().argmax(1), data.val_y == config.source
            records.append(
                torch.stack(
                    [
                        adv.detach(),
                        clean.detach(),
                        (predictions[is_source] == config.target).float().mean(),
                        (predictions[~is_source] == data.val_y[~is_source]).float().mean(),
                    ]
                )
            )
        adv_mean, clean_mean, success, other = torch.stack(records).mean(0).tolist()  # one sync
        skipped = not all(math.isfinite(v) for v in (adv_mean, clean_mean)) or not all(
            bool(torch.isfinite(p.grad).all()) for p in self.poisons.parameters()
        )
        if not skipped:
            self.optimizer.step()
        self.step += 1
        stats = StepStats(
            self.step, adv_mean, clean_mean, success, other, time.perf_counter() - start, skipped
        )
        self.history.append(stats)
        return stats

    # -- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume (tensors and plain values; ``weights_only``-loadable)."""
        return {
            "kind": CHECKPOINT_KIND,
            "version": CHECKPOINT_VERSION,
            "config": asdict(self.config),
            "victim": asdict(self.victim),
            "step": self.step,
            "poisons": self.poisons.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "history": [s.to_dict() for s in self.history],
        }

    def load_state_dict(self, state: dict[str, Any], origin: str = "checkpoint") -> None:
        """Resume from :meth:`state_dict`'s output.

        Raises:
            ValueError: If it is not a poison checkpoint of this version, or was made with a
                different attack or victim config.
        """
        if state.get("kind") != CHECKPOINT_KIND or state.get("version") != CHECKPOINT_VERSION:
            raise ValueError(
                f"{origin}: not a version-{CHECKPOINT_VERSION} poison checkpoint "
                f"(kind={state.get('kind')!r}, version={state.get('version')!r})"
            )
        for key, mine in (("config", asdict(self.config)), ("victim", asdict(self.victim))):
            theirs = state.get(key)
            if theirs != mine:
                diff = sorted(k for k in mine if theirs is None or theirs.get(k) != mine[k])
                raise ValueError(f"{origin}: made with a different {key} (fields {diff})")
        self.poisons.load_state_dict(state["poisons"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.history = [StepStats(**s) for s in state["history"]]

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`state_dict` atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        torch.save(self.state_dict(), tmp)
        os.replace(tmp, path)

    def resume(self, path: str | os.PathLike[str]) -> bool:
        """Load ``path`` if it exists; returns whether it did.

        Raises:
            ValueError: If the file is not a loadable poison checkpoint of this attack.
        """
        path = Path(path)
        if not path.exists():
            return False
        try:
            state = torch.load(path, map_location=self.data.train_x.device, weights_only=True)
        except Exception as err:  # any unpickling error: name the file
            raise ValueError(f"{path}: not a readable checkpoint ({err})") from None
        self.load_state_dict(state, str(path))
        return True

    def run(
        self,
        *,
        checkpoint: str | os.PathLike[str] | None = None,
        checkpoint_every: int = 25,
        on_step: Callable[[StepStats], None] | None = None,
        progress: bool = False,
    ) -> list[StepStats]:
        """Outer steps up to ``config.outer_steps`` (resuming from ``checkpoint`` if it exists;
        saving it every ``checkpoint_every`` steps and at the end)."""
        from tqdm.auto import tqdm

        if checkpoint is not None:
            self.resume(checkpoint)
        bar = tqdm(
            total=self.config.outer_steps,
            initial=self.step,
            disable=not progress,
            desc=f"poison {self.config.victim_init} x{self.config.count}",
            leave=False,
        )
        with bar:
            while self.step < self.config.outer_steps:
                stats = self.outer_step()
                if stats.skipped:
                    bar.write(f"outer step {stats.step}: non-finite loss or gradient, skipped")
                if on_step is not None:
                    on_step(stats)
                bar.update(1)
                bar.set_postfix(adv=f"{stats.adversarial:.3f}", val_success=f"{stats.success:.2f}")
                if checkpoint is not None and (
                    self.step % checkpoint_every == 0 or self.step == self.config.outer_steps
                ):
                    self.save(checkpoint)
        return self.history


def evaluate_poisons(
    factory: LearnerFactory,
    data: Data,
    config: PoisonConfig,
    victim: VictimConfig,
    poison_pixels: torch.Tensor | None,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    *,
    runs: int,
) -> list[tuple[AttackScore, nn.Module]]:
    """Train ``runs`` victims with ``torch.optim.SGD`` on the clean set plus ``poison_pixels``
    (None: the clean set alone, same seeds) and score them on the test images.

    The victims are :func:`held_out_victims`'s.
    """
    device = data.train_x.device
    out = []
    for init_seed, order_seed in held_out_victims(config, runs):
        model = factory(init_seed).to(device)
        if victim.pretrain_epochs:
            orders = pretrain_orders(len(data.train_y), victim, init_seed)
            train_victim(model, data.train_x, data.train_y, orders, victim)
        if poison_pixels is None:
            x, y = data.train_x, data.train_y
        else:
            x, y = poisoned_set(data, poison_pixels.to(device), config.target)
        orders = epoch_orders(len(y), victim.epochs, victim.batch_size, order_seed)
        train_victim(model, x, y, orders, victim)
        with torch.no_grad():
            predictions = torch.cat([model(b).argmax(1) for b in test_x.split(1000)])
        out.append((attack_score(predictions, test_y, config.source, config.target), model))
    return out
