"""The GTN reward: an architecture -> accuracy on real validation data after a few dozen steps
of a meta-trained teacher's synthetic data (the search's cheap proxy)."""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from envs.layers import Architecture
from gtn.population import evaluate_population, stack_learners, unroll_population
from gtn.teacher import GTNTeacher
from metaqnn.core.data import Dataset, Split
from metaqnn.core.nets import NetConfig, count_flops, count_parameters
from metaqnn.core.precision import PRECISIONS, autocast
from metaqnn.core.training import evaluate
from metaqnn.errors import ConfigError
from metaqnn.rewards.result import RewardResult
from metaqnn.teacher.shapes import GTN_LEARNER, fixed_learner_factory


class GTNReward:
    """Architecture -> accuracy on real validation data after ``steps`` GTN steps.

    Args:
        teacher: A meta-trained teacher (on ``device``).
        dataset: Supplies the validation split and the input shape.
        steps: Inner steps (default: all the teacher learned).
        val_size: Validation examples scored (the first ones; None: all). It dominates cost.
        net_config: How architectures become learners.
        seed: Seed of the learner's initialisation and of the curriculum's noise.
        device: Where to train.
        seeds: Initialisations per architecture (seeds ``seed``, ``seed + 1``, ...); the reward
            is their mean accuracy (a less noisy reward).
        vectorize: Teach the ``seeds`` initialisations at once with ``torch.func.vmap`` (see
            :mod:`gtn.population`) instead of one after another. Default: on a GPU only (on
            a CPU it measured no faster: 5 seeds of a small MNIST learner, 32 steps, 1
            thread, 4.8-9.9 s vmap-ed against 4.4-6.4 s one by one).
        precision: A key of :data:`PRECISIONS`: ``fp32``, or ``bf16`` autocast of the
            learner's forward and backward passes (parameters and updates stay fp32).
        channels_last: Learners and images in channels-last memory format (faster convs on
            GPUs with tensor cores).

    Raises:
        ConfigError: A bad ``seeds`` or ``precision``, or a teacher whose weights are not
            finite (it would score every architecture "diverged").
    """

    def __init__(
        self,
        teacher: GTNTeacher,
        dataset: Dataset,
        *,
        steps: int | None = None,
        val_size: int | None = None,
        net_config: NetConfig = GTN_LEARNER,
        seed: int = 0,
        device: torch.device | str = "cpu",
        seeds: int = 1,
        vectorize: bool | None = None,
        precision: str = "fp32",
        channels_last: bool = False,
    ) -> None:
        if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
            raise ConfigError(f"GTNReward seeds={seeds!r}: must be an integer >= 1")
        if precision not in PRECISIONS:
            raise ConfigError(
                f"GTNReward precision={precision!r}: choose from {', '.join(PRECISIONS)}"
            )
        for name, value in teacher.state_dict().items():
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                raise ConfigError(
                    f"GTNReward: teacher tensor {name!r} has non-finite values (NaN or inf); "
                    "a diverged teacher cannot score architectures"
                )
        self.precision, self.channels_last = precision, channels_last
        self.seeds = seeds
        self.vectorize = torch.device(device).type == "cuda" if vectorize is None else vectorize
        self.teacher, self.dataset = teacher, dataset
        self.steps = steps or teacher.config.inner_steps
        if not 1 <= self.steps <= teacher.config.inner_steps:
            raise ConfigError(
                f"--gtn-steps {self.steps}: the teacher's curriculum has "
                f"{teacher.config.inner_steps} steps; choose 1 to {teacher.config.inner_steps}"
            )
        val = dataset.val if len(dataset.val) else dataset.test
        n = len(val) if val_size is None else min(val_size, len(val))
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.val = Split(val.x[:n].to(device).contiguous(memory_format=fmt), val.y[:n].to(device))
        self.net_config, self.seed, self.device = net_config, seed, torch.device(device)
        # the same seed gives every architecture the same synthetic batches: generate them once
        self.batches = [
            (x.contiguous(memory_format=fmt), y)
            for x, y in teacher.materialize(self.steps, seed=seed)
        ]

    def evaluate(self, architecture: Architecture) -> RewardResult:
        """Teach a fresh learner of ``architecture`` and score it on the validation subset."""
        start = time.perf_counter()
        channels, size, _ = self.dataset.spec.input_shape
        factory = fixed_learner_factory(architecture, self.dataset, self.net_config, self.device)
        learners = [factory(self.seed + i) for i in range(self.seeds)]
        if self.channels_last:
            learners = [m.to(memory_format=torch.channels_last) for m in learners]
        with autocast(self.device, self.precision):
            accuracy, loss = self._teach_and_score(learners)
        ok = np.isfinite(loss)
        learner = learners[0]
        return RewardResult(
            architecture=str(architecture),
            reward=accuracy if ok else 1.0 / self.dataset.spec.num_classes,
            status="ok" if ok else "diverged",
            reason="" if ok else "non-finite validation loss after GTN training",
            val_accuracy=accuracy,
            test_accuracy=None,
            parameters=count_parameters(learner),
            flops=count_flops(architecture, in_channels=channels, input_size=size),
            steps=self.steps,
            restarts=0,
            wall_time_s=time.perf_counter() - start,
        )

    def _teach_and_score(self, learners: list[nn.Module]) -> tuple[float, float]:
        """Mean validation accuracy and loss of ``learners`` after teaching (one host sync)."""
        if len(learners) > 1 and self.vectorize:
            params, buffers = stack_learners(learners)  # trained and scored stacked
            params = unroll_population(
                learners[0], params, buffers, self.batches, self.teacher.schedule, self.steps
            )
            acc, loss = evaluate_population(learners[0], params, buffers, self.val.x, self.val.y)
            acc_mean, loss_mean = torch.stack([acc.mean(), loss.mean()]).tolist()
            return acc_mean, loss_mean
        results = []
        for learner in learners:
            self.teacher.teach(learner, self.steps, batches=self.batches)
            results.append(evaluate(learner, self.val, batch_size=1000))
        return (
            float(np.mean([r.accuracy for r in results])),
            float(np.mean([r.loss for r in results])),
        )

    def __call__(self, architecture: Architecture) -> float:
        return self.evaluate(architecture).reward
