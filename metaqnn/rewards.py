"""Rewards: an architecture -> a number the search maximises.

A reward object is callable (``Architecture -> float``, what :class:`envs.CNNDesignEnv` takes)
and has :meth:`evaluate`, which returns the full :class:`RewardResult` (costs, status). Rewards
are chosen by name from :data:`REWARDS`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from envs.layers import Architecture
from metaqnn.data import Dataset
from metaqnn.nets import NetConfig, count_flops, count_parameters
from metaqnn.training import TrainConfig, evaluate, train_architecture


@dataclass(frozen=True)
class RewardResult:
    """One evaluated architecture.

    Attributes:
        architecture: The architecture, as a string.
        reward: The value handed to the agent (validation accuracy, or ``1 / classes`` for a
            failed model, as MetaQNN did).
        status: ``"ok"``, or ``"diverged"`` when training produced a non-finite loss.
        reason: Why it failed (empty when ok).
        val_accuracy: Validation accuracy (NaN when failed).
        test_accuracy: Test accuracy when measured, else None.
        parameters: Trainable parameters of the model.
        flops: FLOPs of one forward pass on one image (2 x multiply-adds).
        steps: Optimizer steps taken, restarts included.
        restarts: Restarts at chance.
        wall_time_s: Seconds spent on this evaluation.
    """

    architecture: str
    reward: float
    status: str
    reason: str
    val_accuracy: float
    test_accuracy: float | None
    parameters: int
    flops: int
    steps: int
    restarts: int
    wall_time_s: float


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


#: Reward classes by name (the GTN proxy joins in the GTN issue).
REWARDS: dict[str, type] = {"real": RealDataReward}
