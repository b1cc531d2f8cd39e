"""The victim of a poisoning attack: its training, as a pure function of the parameters
(differentiable in the poisons, for the attacker) and with ``torch.optim.SGD`` (what a victim
runs), its clean pre-training, and which victims (initialisation and batch-order seeds) every
outer step and the evaluation train.

Every seed is mixed from the attack's seed by :func:`derived_seed`, so victims and batch orders
are the same in every process.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gtn.inner_loop import Params, model_params, unroll
from gtn.meta import LearnerFactory
from gtn.poison.config import PoisonConfig, VictimConfig


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


def derived_seed(*parts: int) -> int:
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
    return epoch_orders(n, victim.pretrain_epochs, victim.batch_size, derived_seed(init_seed, 1))


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
    return derived_seed(config.seed, 7)


def attacker_victims(config: PoisonConfig, step: int) -> list[tuple[int, int]]:
    """(initialisation seed, batch-order seed) of each victim training of outer step ``step``.

    ``fixed`` uses the one known initialisation, ``random`` draws from the pool of
    ``init_pool``; the order is the victim's own with ``known_order``, else a fresh one.
    """
    gen = torch.Generator().manual_seed(derived_seed(config.seed, 5, step))
    draws = []
    for k in range(config.meta_batch):
        if config.victim_init == "fixed":
            init_seed = _fixed_init_seed(config)
        else:
            init_seed = derived_seed(
                config.seed, 11, int(torch.randint(config.init_pool, (1,), generator=gen))
            )
        order = (
            derived_seed(init_seed, 2)
            if config.known_order
            else derived_seed(config.seed, 13, step, k)
        )
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
            return [(init_seed, derived_seed(init_seed, 2))]
        return [(_fixed_init_seed(config), derived_seed(config.seed, 17, r)) for r in range(runs)]
    return [
        (derived_seed(config.seed, 11, config.init_pool + r), derived_seed(config.seed, 17, r))
        for r in range(runs)
    ]
