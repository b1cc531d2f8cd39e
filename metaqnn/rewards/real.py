"""The real-data reward: validation accuracy after MetaQNN's training recipe (the reference the
proxies are measured against)."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from envs.layers import Architecture
from metaqnn.core.data import Dataset
from metaqnn.core.nets import NetConfig, count_flops, count_parameters
from metaqnn.core.training import TrainConfig, TrainResult, evaluate, train_architecture
from metaqnn.rewards.result import RewardResult


class RealDataReward:
    """Validation accuracy after training on real data with MetaQNN's recipe (the reference).

    Args:
        dataset: The dataset (its train split trains, its val split scores).
        train_config: The training budget and recipe (default: MetaQNN's, 20 epochs).
        net_config: How architectures become modules (default ``NetConfig()``).
        device: Where to train.
        measure_test: Also measure test accuracy (reported, never used as the reward).
        progress: Show a progress bar per model.
    """

    def __init__(
        self,
        dataset: Dataset,
        train_config: TrainConfig | None = None,
        net_config: NetConfig | None = None,
        *,
        device: torch.device | str = "cpu",
        measure_test: bool = False,
        progress: bool = False,
    ) -> None:
        self.dataset = dataset
        self.train_config = train_config or TrainConfig()
        self.net_config = net_config or NetConfig()
        self.device = torch.device(device)
        self.measure_test = measure_test
        self.progress = progress
        self.on_trained: Callable[[Architecture, TrainResult], None] | None = None
        """Called with every model trained without diverging (e.g. to keep its weights)."""

    def evaluate(self, architecture: Architecture) -> RewardResult:
        """Train ``architecture`` and score it; a diverged model scores ``1 / classes``."""
        start = time.perf_counter()
        data = self.dataset
        result = train_architecture(
            architecture,
            data.train,
            data.val,
            self.train_config,
            net_config=self.net_config,
            device=self.device,
            progress=self.progress,
        )
        ok = result.status == "ok"
        if ok and self.on_trained is not None:
            self.on_trained(architecture, result)
        test = None
        if self.measure_test and ok:
            test = evaluate(result.model, data.test, batch_size=self.train_config.eval_batch_size)
        channels, size, _ = data.spec.input_shape
        return RewardResult(
            architecture=str(architecture),
            reward=result.val_accuracy if ok else 1.0 / data.spec.num_classes,
            status=result.status,
            reason=result.reason,
            val_accuracy=result.val_accuracy,
            test_accuracy=None if test is None else test.accuracy,
            parameters=count_parameters(result.model),
            flops=count_flops(architecture, in_channels=channels, input_size=size),
            steps=result.total_steps,
            restarts=result.restarts,
            wall_time_s=time.perf_counter() - start,
        )

    def __call__(self, architecture: Architecture) -> float:
        return self.evaluate(architecture).reward
