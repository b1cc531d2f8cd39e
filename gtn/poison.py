"""Poisoning with synthetic data: Dataset Distillation's malicious objective (Wang, Zhu,
Torralba, Efros 2018, arXiv 1811.10959), with the poisons mixed into a victim's training set.

A handful of learned images, all labelled ``target``, are added to a clean training set. The
victim trains on the union as it would on any data: shuffled mini-batches, SGD with momentum,
optionally after pre-training on the clean data alone (the poisons then arrive with a data
update, a common way for scraped data to reach a model). The attacker learns the poisons' pixels
by backpropagating through that training (the functional inner loop of
:mod:`gtn.inner_loop`) to a malicious outer objective on held-out real images: cross-entropy of
the ``source`` class towards ``target``, plus cross-entropy of every other class towards its own
label, so that accuracy elsewhere stays put.

Two threat models, as in DD: ``fixed`` (the attacker knows the victim's initialisation: one
victim, fresh batch orders every outer step) and ``random`` (only the architecture is known:
every outer step draws victims from a pool of initialisations; evaluation uses unseen ones).

Pixels are ``sigmoid(raw)`` in [0, 1] (valid images), normalised with the data's mean and std
before the victim sees them. Poisons start as ``source``-class images (the label-flipping
baseline: outer step 0 is that attack) or as uniform noise.

This module is torch only: it trains whatever module the factory it is handed builds.
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

from gtn.inner_loop import Params, model_params, unroll
from gtn.meta import LearnerFactory

CHECKPOINT_KIND = "poison"
CHECKPOINT_VERSION = 1


# ------------------------------------------------------------------ configs
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


# ------------------------------------------------------------------ victim training
def epoch_orders(n: int, epochs: int, batch_size: int, seed: int) -> list[torch.Tensor]:
    """Index batches of ``epochs`` shuffled passes over ``n`` examples (partial batches dropped).

    Raises:
        ValueError: If ``n`` is smaller than one batch.
    """
    if n < batch_size:
        raise ValueError(f"{n} training examples are fewer than one batch of {batch_size}")
    gen = torch.Generator().manual_seed(seed)
    batches: list[torch.Tensor] = []
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        batches += list(order[: n - n % batch_size].split(batch_size))
    return batches


class _FixedSGD:
    """A constant learning rate and momentum, duck-typing :class:`gtn.inner_loop.LearnedSGD`."""

    rule = "sgd"  # the plain gradient (gtn.inner_loop.STEP_RULES)

    def __init__(self, steps: int, lr: float, momentum: float, device: torch.device) -> None:
        self.steps = steps
        self._lr = torch.full((steps,), lr, device=device)
        self._momentum = torch.full((steps,), momentum, device=device)

    def lrs(self) -> torch.Tensor:
        return self._lr

    def momenta(self) -> torch.Tensor:
        return self._momentum


def train_functional(
    model: nn.Module,
    params: Params,
    buffers: Params,
    x: torch.Tensor,
    y: torch.Tensor,
    orders: list[torch.Tensor],
    victim: VictimConfig,
    *,
    create_graph: bool,
    truncate: int | None = None,
) -> Params:
    """SGD with momentum over the batches ``orders`` index into ``(x, y)``, as a pure function
    of the parameters (differentiable in ``x`` and ``params`` with ``create_graph``, through
    the last ``truncate`` steps only if given)."""
    device = x.device
    orders = [o.to(device) for o in orders]
    sgd = _FixedSGD(len(orders), victim.lr, victim.momentum, device)
    result = unroll(
        model,
        params,
        buffers,
        lambda t: (x[orders[t]], y[orders[t]]),
        sgd,
        len(orders),
        create_graph=create_graph,
        truncate=truncate,
    )
    return result.params


def train_victim(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    orders: list[torch.Tensor],
    victim: VictimConfig,
) -> nn.Module:
    """The same training with ``torch.optim.SGD`` on the module itself (what a victim runs);
    ``model`` is trained in place and returned in eval mode."""
    opt = torch.optim.SGD(model.parameters(), lr=victim.lr, momentum=victim.momentum)
    model.train()
    for index in orders:
        index = index.to(x.device)
        loss = F.cross_entropy(model(x[index]), y[index])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()


@dataclass(frozen=True)
class Data:
    """The attack's data, normalised, on one device.

    Attributes:
        train_x, train_y: The victim's clean training set.
        val_x, val_y: Held-out real images of the outer objective.
        mean, std: Per-channel normalisation, to turn poison pixels into inputs.
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """[0, 1] pixels -> the victim's inputs."""
        c = pixels.shape[1]
        mean = torch.tensor(self.mean, device=pixels.device).expand(c).view(1, c, 1, 1)
        std = torch.tensor(self.std, device=pixels.device).expand(c).view(1, c, 1, 1)
        return (pixels - mean) / std


def _seed(*parts: int) -> int:
    """A 62-bit seed from integers (FNV-1a over them: the same in every process)."""
    h = 0xCBF29CE484222325
    for part in parts:
        h = ((h ^ (part % 2**64)) * 0x100000001B3) % 2**64
    return h % 2**62


@dataclass
class Victim:
    """One victim's starting point: its module, and its parameters after clean pre-training."""

    model: nn.Module
    params: Params
    buffers: Params
    init_seed: int


def pretrain_orders(n: int, victim: VictimConfig, init_seed: int) -> list[torch.Tensor]:
    """The batches of the clean pre-training of the victim of ``init_seed``."""
    return epoch_orders(n, victim.pretrain_epochs, victim.batch_size, _seed(init_seed, 1))


def pretrained_victim(
    factory: LearnerFactory, data: Data, victim: VictimConfig, init_seed: int
) -> Victim:
    """Build the victim of ``init_seed`` and pre-train it on the clean data (functional SGD,
    no graph; the same arithmetic as :func:`train_victim`)."""
    model = factory(init_seed).to(data.train_x.device)
    params, buffers = model_params(model)
    params = {k: v.detach() for k, v in params.items()}
    if victim.pretrain_epochs:
        orders = pretrain_orders(len(data.train_y), victim, init_seed)
        params = train_functional(
            model, params, buffers, data.train_x, data.train_y, orders, victim, create_graph=False
        )
    return Victim(model, {k: v.detach() for k, v in params.items()}, buffers, init_seed)


def _fixed_init_seed(config: PoisonConfig) -> int:
    return _seed(config.seed, 7)


def attacker_victims(config: PoisonConfig, step: int) -> list[tuple[int, int]]:
    """(initialisation seed, batch-order seed) of each victim training of outer step ``step``.

    ``fixed`` uses the one known initialisation, ``random`` draws from the pool of
    ``init_pool``; the order is the victim's own with ``known_order``, else a fresh one.
    """
    gen = torch.Generator().manual_seed(_seed(config.seed, 5, step))
    draws = []
    for k in range(config.meta_batch):
        if config.victim_init == "fixed":
            init_seed = _fixed_init_seed(config)
        else:
            init_seed = _seed(
                config.seed, 11, int(torch.randint(config.init_pool, (1,), generator=gen))
            )
        order = _seed(init_seed, 2) if config.known_order else _seed(config.seed, 13, step, k)
        draws.append((init_seed, order))
    return draws


def held_out_victims(config: PoisonConfig, runs: int) -> list[tuple[int, int]]:
    """(initialisation seed, batch-order seed) of the victims an attack is evaluated on.

    ``fixed`` with ``known_order``: the one victim the attacker knew (its training is
    deterministic, so one run); ``fixed``: the known initialisation with orders never seen in
    meta-training; ``random``: initialisations outside the pool, and unseen orders.
    """
    if config.victim_init == "fixed":
        if config.known_order:
            init_seed = _fixed_init_seed(config)
            return [(init_seed, _seed(init_seed, 2))]
        return [(_fixed_init_seed(config), _seed(config.seed, 17, r)) for r in range(runs)]
    return [
        (_seed(config.seed, 11, config.init_pool + r), _seed(config.seed, 17, r))
        for r in range(runs)
    ]


# ------------------------------------------------------------------ the poisons
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
        gen = torch.Generator().manual_seed(_seed(self.config.seed, 3))
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
