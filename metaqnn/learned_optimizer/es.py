"""Meta-training a learned optimizer (:mod:`metaqnn.learned_optimizer.optimizer`) by antithetic
evolution strategies over truncated unrolls (Metz et al. 2019): the inner model trains on clean
data, the meta-loss is its loss on corrupted validation images.

One outer step: take the current inner training run (a model and its optimizer state at inner
step ``t``; a fresh model every ``inner_steps`` steps), draw ``pairs`` Gaussian directions
``e_i``, unroll ``truncation`` inner steps from the same state with ``theta``, ``theta + sigma
e_i`` and ``theta - sigma e_i`` (one batched computation under ``torch.func.vmap``; the same
training batches and the same corrupted validation batch for every member: common random
numbers), and step Adam on the antithetic estimate ``sum_i (L+_i - L-_i) e_i / (2 sigma
pairs)``. The unperturbed member's state carries the inner run on. With ``burn_in`` > 0 the
first ``burn_in`` steps of every inner run are taken by the unperturbed optimizer alone (no
population, no estimate), so the truncations, and hence the meta-loss, lie near the end of the
run, where the evaluation scores it. Every random draw comes
from a generator seeded by (seed, outer step) or (seed, inner run, inner step), so a resumed
run repeats a straight one exactly.

The loop's config and its checkpoint format are in :mod:`metaqnn.learned_optimizer.checkpoints`,
the task it meta-trains on and the batch sampler in :mod:`metaqnn.learned_optimizer.task`.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap
from tqdm import tqdm

from gtn.io import atomic_save
from metaqnn.learned_optimizer.checkpoints import CHECKPOINT_KIND, FORMAT_VERSION, ESConfig
from metaqnn.learned_optimizer.optimizer import (
    LOptConfig,
    Tensors,
    init_state,
    init_theta,
    lopt_update,
)
from metaqnn.learned_optimizer.task import LOptTask, batch_indices, derived_seed


def cross_entropy_of(model: nn.Module) -> Callable[[Tensors, torch.Tensor, torch.Tensor], Any]:
    """``loss(params, x, y)``: the model's cross-entropy with ``params`` substituted."""

    def loss(params: Tensors, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(functional_call(model, params, (x,)), y)

    return loss


def unroll(
    model: nn.Module,
    theta: Tensors,
    params: Tensors,
    state: Tensors,
    start: int,
    batches: list[tuple[torch.Tensor, torch.Tensor]],
    config: LOptConfig,
) -> tuple[Tensors, Tensors]:
    """Train ``params`` with the learned optimizer over ``batches`` (a pure function).

    Args:
        model: The module whose forward pass is used (its own parameters are not read).
        theta: MLP weights of the optimizer.
        params: Starting parameters (name -> tensor).
        state: Optimizer state at inner step ``start``.
        start: Inner steps already taken (time features).
        batches: ``(x, y)`` per step.
        config: The optimizer's architecture.

    Returns:
        Parameters and optimizer state after the batches.
    """
    loss = cross_entropy_of(model)
    for k, (x, y) in enumerate(batches):
        grads = grad(loss)(params, x, y)
        params, state = lopt_update(theta, params, grads, state, start + k, config)
    return params, state


@dataclass(frozen=True)
class ESRecord:
    """One outer step."""

    step: int
    meta_loss: float
    """Corrupted-validation loss of the unperturbed unroll."""
    population_loss: float
    """Mean over the perturbed unrolls."""
    grad_norm: float
    """Norm of the ES gradient estimate."""
    inner_step: int
    """Inner step at the end of the truncation."""
    diverged: int
    """Unrolls whose loss was not finite or above ``max_loss``."""
    seconds: float


@dataclass
class InnerRun:
    """The inner training run the truncations continue."""

    run: int
    step: int
    params: Tensors
    state: Tensors = field(repr=False)


class ESTrainer:
    """Meta-trains a learned optimizer. ``run()`` continues from ``self.step``.

    Args:
        task: Model factory and data.
        config: The outer loop.
        lopt_config: The optimizer's architecture (default: ``LOptConfig()``).
        theta: Starting MLP weights (default: :func:`init_theta` with the config's seed and
            ``theta_init``).
        logdir: TensorBoard folder (None: none).
        checkpoint_path: Where checkpoints go (None: none).
        extra: Plain values stored in checkpoints (dataset, model description, ...).
    """

    def __init__(
        self,
        task: LOptTask,
        config: ESConfig,
        lopt_config: LOptConfig | None = None,
        *,
        theta: Tensors | None = None,
        logdir: str | os.PathLike[str] | None = None,
        checkpoint_path: str | os.PathLike[str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        lopt_config = lopt_config if lopt_config is not None else LOptConfig()
        self.task, self.config, self.lopt_config = task, config, lopt_config
        self.device = task.train_x.device
        start = (
            theta
            if theta is not None
            else init_theta(lopt_config, seed=config.seed, kind=config.theta_init)
        )
        self.theta = {k: nn.Parameter(v.detach().clone().to(self.device)) for k, v in start.items()}
        self.optimizer = torch.optim.Adam(self.theta.values(), lr=config.outer_lr)
        self.step = 0
        self.history: list[ESRecord] = []
        self.inner: InnerRun | None = None
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path else None
        self.extra = dict(extra or {})
        self._model: nn.Module | None = None
        self._writer = None
        if logdir is not None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(logdir))

    # ------------------------------------------------------------------ the inner run
    def _fresh_run(self, run: int) -> InnerRun:
        model = self.task.model_factory(derived_seed(self.config.seed, run, 2))
        self._model = model
        params = {k: v.detach().clone() for k, v in model.named_parameters()}
        return InnerRun(run, 0, params, init_state(params, self.lopt_config))

    def _current_run(self) -> InnerRun:
        inner = self.inner
        if inner is None:
            inner = self._fresh_run(0)
        elif inner.step >= self.config.inner_steps:
            inner = self._fresh_run(inner.run + 1)
        elif self._model is None:  # resumed: the module for functional calls
            self._model = self.task.model_factory(derived_seed(self.config.seed, inner.run, 2))
        self.inner = inner
        return inner

    def _batches(self, inner: InnerRun, count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        run_seed = derived_seed(self.config.seed, inner.run, 3)
        out = []
        for k in range(inner.step, inner.step + count):
            index = batch_indices(len(self.task.train_y), self.config.batch_size, run_seed, k)
            index = index.to(self.device)
            out.append((self.task.train_x[index], self.task.train_y[index]))
        return out

    def _burn_in(self, inner: InnerRun) -> None:
        """Advance ``inner`` to step ``burn_in`` with the unperturbed optimizer alone."""
        count = self.config.burn_in - inner.step
        if count <= 0:
            return
        assert self._model is not None
        theta = {k: v.detach() for k, v in self.theta.items()}
        batches = self._batches(inner, count)
        with torch.no_grad():
            inner.params, inner.state = unroll(self._model, theta, inner.params, inner.state,
                                               inner.step, batches, self.lopt_config)  # fmt: skip
        inner.step += count

    # ------------------------------------------------------------------ one outer step
    def population_losses(
        self, thetas: Tensors, inner: InnerRun, count: int, gen: torch.Generator
    ) -> tuple[torch.Tensor, Tensors, Tensors]:
        """Unroll ``count`` steps for each stacked ``theta`` (leading dimension P) from the
        inner run's state; score each on one corrupted validation batch.

        Returns:
            Losses (P,), and the stacked parameters and optimizer states after the unroll.
        """
        assert self._model is not None
        model, lcfg = self._model, self.lopt_config
        batches = self._batches(inner, count)
        index = torch.randint(len(self.task.val_y), (self.config.val_batch,), generator=gen)
        index = index.to(self.device)
        xv = self.task.corrupt(self.task.val_x[index], gen)
        yv = self.task.val_y[index]
        loss = cross_entropy_of(model)

        def member(theta: Tensors, params: Tensors, state: Tensors):
            params, state = unroll(model, theta, params, state, inner.step, batches, lcfg)
            return loss(params, xv, yv), params, state

        size = next(iter(thetas.values())).shape[0]
        if self.config.vmap:
            return vmap(member, in_dims=(0, None, None))(thetas, inner.params, inner.state)
        results = [
            member({k: v[i] for k, v in thetas.items()}, inner.params, inner.state)
            for i in range(size)
        ]
        losses = torch.stack([r[0] for r in results])
        stack = lambda j: {k: torch.stack([r[j][k] for r in results]) for k in results[0][j]}  # noqa: E731
        return losses, stack(1), stack(2)

    def outer_step(self) -> ESRecord:
        """One antithetic ES step on one truncation; advances the inner run."""
        t0 = time.perf_counter()
        config = self.config
        gen = torch.Generator().manual_seed(derived_seed(config.seed, self.step, 4))
        inner = self._current_run()
        self._burn_in(inner)
        count = min(config.truncation, config.inner_steps - inner.step)
        theta = {k: v.detach() for k, v in self.theta.items()}
        eps = {k: torch.randn((config.pairs, *v.shape), generator=gen).to(v) for k, v in
               theta.items()}  # fmt: skip
        thetas = {
            k: torch.cat([v[None], v + config.sigma * eps[k], v - config.sigma * eps[k]])
            for k, v in theta.items()
        }  # (1 + 2 pairs, *shape)
        with torch.no_grad():
            losses, params, states = self.population_losses(thetas, inner, count, gen)
        finite = torch.isfinite(losses) & (losses <= config.max_loss)
        clipped = torch.where(finite, losses, torch.full_like(losses, config.max_loss))
        fitness = clipped.clamp_min(1e-8).log() if config.log_loss else clipped
        plus, minus = fitness[1 : 1 + config.pairs], fitness[1 + config.pairs :]
        weight = (plus - minus) / (2 * config.sigma * config.pairs)  # (pairs,)
        squares = []
        for k, p in self.theta.items():
            g = torch.einsum("p,p...->...", weight, eps[k])
            p.grad = g
            squares.append(g.square().sum())
        norm_sq = float(torch.stack(squares).sum())  # one host sync per ES step
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        central = float(losses[0])
        if bool(finite[0]):
            inner.params = {k: v[0] for k, v in params.items()}
            inner.state = {k: v[0] for k, v in states.items()}
            inner.step += count
        else:  # the unperturbed optimizer diverged: start a fresh inner run next time
            inner.step = config.inner_steps
        record = ESRecord(
            step=self.step,
            meta_loss=central,
            population_loss=float(clipped[1:].mean()),
            grad_norm=math.sqrt(norm_sq),
            inner_step=inner.step,
            diverged=int((~finite).sum()),
            seconds=time.perf_counter() - t0,
        )
        self.step += 1
        self.history.append(record)
        return record

    # ------------------------------------------------------------------ the loop
    def run(
        self, *, progress: bool = True, until: int | None = None, time_limit_s: float | None = None
    ) -> list[ESRecord]:
        """Outer steps until ``until`` (default ``outer_steps``) or ``time_limit_s`` seconds,
        with checkpoints (also at the end) and TensorBoard scalars."""
        end = min(until or self.config.outer_steps, self.config.outer_steps)
        deadline = None if time_limit_s is None else time.monotonic() + time_limit_s
        with tqdm(total=end, initial=self.step, disable=not progress, unit="outer step") as bar:
            while self.step < end:
                if deadline is not None and time.monotonic() > deadline:
                    bar.write(f"time limit of {time_limit_s:.0f} s reached at step {self.step}")
                    break
                record = self.outer_step()
                bar.update(1)
                bar.set_postfix(loss=f"{record.meta_loss:.3f}", t=record.inner_step,
                                diverged=record.diverged)  # fmt: skip
                self._log(record)
                if self.checkpoint_path and self.step % self.config.checkpoint_every == 0:
                    self.save(self.checkpoint_path)
        if self.checkpoint_path:
            self.save(self.checkpoint_path)
        if self._writer is not None:
            self._writer.flush()
        return self.history

    def log_hyperparameters(self, values: dict[str, Any]) -> None:
        """Write ``values`` (and both configs) to TensorBoard as a markdown table."""
        if self._writer is None:
            return
        table = {**asdict(self.config), **self.lopt_config.to_dict(), **values}
        rows = "\n".join(f"| {k} | {v} |" for k, v in table.items())
        self._writer.add_text("hyperparameters", "| key | value |\n|---|---|\n" + rows, 0)

    def _log(self, record: ESRecord) -> None:
        if self._writer is None or (record.step % self.config.log_every and not record.diverged):
            return
        w, s = self._writer, record.step
        w.add_scalar("meta/noisy_val_loss", record.meta_loss, s)
        w.add_scalar("meta/population_loss", record.population_loss, s)
        w.add_scalar("meta/es_grad_norm", record.grad_norm, s)
        w.add_scalar("meta/diverged_unrolls", record.diverged, s)
        w.add_scalar("meta/inner_step", record.inner_step, s)
        w.add_scalar("charts/seconds_per_step", record.seconds, s)
        w.add_scalar("theta/norm", math.sqrt(sum(float(v.detach().square().sum()) for v in
                                                 self.theta.values())), s)  # fmt: skip

    # ------------------------------------------------------------------ checkpoints
    def state(self) -> dict[str, Any]:
        """The checkpoint dict (plain values and tensors only)."""
        inner = None
        if self.inner is not None:
            inner = {
                "run": self.inner.run,
                "step": self.inner.step,
                "params": {k: v.detach().cpu() for k, v in self.inner.params.items()},
                "state": {k: v.detach().cpu() for k, v in self.inner.state.items()},
            }
        return {
            "format_version": FORMAT_VERSION,
            "kind": CHECKPOINT_KIND,
            "lopt_config": self.lopt_config.to_dict(),
            "es_config": asdict(self.config),
            "theta": {k: v.detach().cpu() for k, v in self.theta.items()},
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "history": [asdict(r) for r in self.history],
            "inner": inner,
            "extra": self.extra,
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write a checkpoint atomically."""
        return atomic_save(self.state(), path)

    def load_state(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint dict: theta, Adam, step, history and the inner run."""
        with torch.no_grad():
            for k, p in self.theta.items():
                p.copy_(state["theta"][k])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.history = [ESRecord(**r) for r in state["history"]]
        inner = state["inner"]
        self.inner = None
        self._model = None
        if inner is not None:
            to = lambda d: {k: v.to(self.device) for k, v in d.items()}  # noqa: E731
            self.inner = InnerRun(inner["run"], inner["step"], to(inner["params"]),
                                  to(inner["state"]))  # fmt: skip
