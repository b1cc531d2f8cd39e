"""Optimizers and learning-rate schedules of :class:`~metaqnn.core.training.TrainConfig`, as
registries: :data:`OPTIMIZERS` maps ``TrainConfig.optimizer`` to a factory and
:data:`SCHEDULES` maps ``TrainConfig.schedule`` to a :class:`Schedule`.

A schedule is a pure function of the step and epoch counters (plain Python numbers), so the
training loop sets each step's learning rate without reading anything back from the device.
The defaults, ``"adam"`` and ``"step"``, are MetaQNN's recipe exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from metaqnn.core.train_config import TrainConfig

Params = Iterable[torch.nn.Parameter]
OptimizerFactory = Callable[[Params, float, "TrainConfig"], torch.optim.Optimizer]


def _adam(params: Params, lr: float, c: TrainConfig) -> torch.optim.Optimizer:
    """Adam with L2 weight decay added to the gradient (as Caffe's; MetaQNN's optimizer)."""
    return torch.optim.Adam(params, lr=lr, betas=c.betas, eps=c.eps, weight_decay=c.weight_decay)


def _adamw(params: Params, lr: float, c: TrainConfig) -> torch.optim.Optimizer:
    """AdamW: Adam with weight decay decoupled from the gradient."""
    return torch.optim.AdamW(params, lr=lr, betas=c.betas, eps=c.eps, weight_decay=c.weight_decay)


def _sgd(params: Params, lr: float, c: TrainConfig) -> torch.optim.Optimizer:
    """SGD with ``momentum`` (Nesterov's when ``nesterov``) and L2 weight decay."""
    return torch.optim.SGD(
        params, lr=lr, momentum=c.momentum, nesterov=c.nesterov, weight_decay=c.weight_decay
    )


#: ``TrainConfig.optimizer`` -> ``factory(parameters, lr, config)``.
OPTIMIZERS: dict[str, OptimizerFactory] = {"adam": _adam, "adamw": _adamw, "sgd": _sgd}


def _step(c: TrainConfig, step: int, epoch: int, total: int, warmup: int) -> float:
    """MetaQNN's decay: ``lr_decay ** (epoch // lr_decay_epochs)``, after a linear warmup."""
    decay = c.lr_decay ** (epoch // c.lr_decay_epochs)
    return decay if step >= warmup else (step + 1) / warmup * decay


def _cosine(c: TrainConfig, step: int, epoch: int, total: int, warmup: int) -> float:
    """A linear warmup to the full rate over ``warmup`` steps, then a cosine to zero at step
    ``total`` (the last step, ``total - 1``, is just above zero)."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(total - warmup, 1)))


#: OneCycle's start is ``1 / ONECYCLE_DIV`` of the peak, its end ``1 / ONECYCLE_FINAL_DIV`` of
#: the start (``torch.optim.lr_scheduler.OneCycleLR``'s defaults).
ONECYCLE_DIV, ONECYCLE_FINAL_DIV = 25.0, 1e4


def _onecycle(c: TrainConfig, step: int, epoch: int, total: int, warmup: int) -> float:
    """Smith's one-cycle policy (cosine annealing in both phases, as ``OneCycleLR``): from
    ``1/25`` of the peak up to the peak at step ``warmup``, then down to ``1/25e4`` of the peak
    at the last step, ``total - 1``."""
    start = 1.0 / ONECYCLE_DIV
    if step < warmup:
        return start + (1.0 - start) * 0.5 * (1.0 - math.cos(math.pi * step / warmup))
    end = start / ONECYCLE_FINAL_DIV
    t = min((step - warmup) / max(total - 1 - warmup, 1), 1.0)
    return end + (1.0 - end) * 0.5 * (1.0 + math.cos(math.pi * t))


@dataclass(frozen=True)
class Schedule:
    """A learning-rate schedule: the factor applied to the attempt's initial learning rate.

    Attributes:
        factor: ``factor(config, step, epoch, total, warmup)``: the factor for the optimizer
            step ``step`` (0-based, within the attempt) taken in epoch ``epoch`` (0-based) of an
            attempt of ``total`` steps whose first ``warmup`` steps warm up.
        default_warmup: Share of the budget that warms up when ``TrainConfig.warmup_epochs``
            is None.
    """

    factor: Callable[[TrainConfig, int, int, int, int], float]
    default_warmup: float = 0.0


#: ``TrainConfig.schedule`` -> :class:`Schedule`. ``"step"`` changes the rate once per epoch
#: (MetaQNN's); ``"cosine"`` and ``"onecycle"`` every optimizer step over the whole budget.
SCHEDULES: dict[str, Schedule] = {
    "step": Schedule(_step),
    "cosine": Schedule(_cosine),
    "onecycle": Schedule(_onecycle, default_warmup=0.3),
}


def make_optimizer(params: Params, lr: float, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer ``config.optimizer`` over ``params`` at learning rate ``lr``.

    Args:
        params: The model's parameters.
        lr: The initial learning rate of this attempt.
        config: The recipe (its optimizer name and hyperparameters).

    Returns:
        A fresh optimizer.
    """
    return OPTIMIZERS[config.optimizer](params, lr, config)


def warmup_steps(config: TrainConfig, total: int, steps_per_epoch: int) -> int:
    """Warmup steps of an attempt of ``total`` steps: ``warmup_epochs`` passes of
    ``steps_per_epoch`` steps (else the schedule's default share of ``total``), at most
    ``total - 1``.

    Args:
        config: The recipe (its schedule and ``warmup_epochs``).
        total: Optimizer steps of the attempt.
        steps_per_epoch: Optimizer steps of one pass over the training split.

    Returns:
        A number of steps in ``[0, total - 1]``.
    """
    if config.warmup_epochs is None:
        steps = SCHEDULES[config.schedule].default_warmup * total
    else:
        steps = config.warmup_epochs * steps_per_epoch
    return max(0, min(round(steps), total - 1))


def lr_at(config: TrainConfig, lr: float, step: int, epoch: int, total: int, warmup: int) -> float:
    """The learning rate of optimizer step ``step`` in epoch ``epoch`` (both 0-based).

    Args:
        config: The recipe (its schedule).
        lr: The attempt's initial learning rate.
        step: Optimizer steps already taken in the attempt.
        epoch: Passes already completed in the attempt.
        total: Optimizer steps of the attempt.
        warmup: Warmup steps (see :func:`warmup_steps`).

    Returns:
        ``lr`` times the schedule's factor.
    """
    return lr * SCHEDULES[config.schedule].factor(config, step, epoch, total, warmup)
