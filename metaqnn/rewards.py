"""Rewards: an architecture -> a number the search maximises.

A reward object is callable (``Architecture -> float``, what :class:`envs.CNNDesignEnv` takes)
and has :meth:`evaluate`, which returns the full :class:`RewardResult` (costs, status). Rewards
are built by name from a :class:`RewardSpec` through :data:`REWARDS` (``real``, ``gtn``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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


@dataclass(frozen=True)
class RewardSpec:
    """Everything needed to build a reward in any process (plain values: it is pickled to
    worker processes and stored with a search's config)."""

    name: str = "gtn"
    """A key of :data:`REWARDS`: ``gtn`` (the GTN proxy) or ``real`` (real-data training)."""
    dataset: str = "digits"
    """Dataset name."""
    data_root: str | None = None
    """Data root (None: ``$METAQNN_DATA`` or the default)."""
    val_size: int | None = None
    """Training images held out for validation (None: the dataset's default)."""
    score_size: int | None = None
    """GTN: validation images scored (the first ones; None: all). It dominates the cost."""
    seed: int = 0
    """Seed of the validation split, initialisations and training."""
    device: str = "cpu"
    """Where models train."""
    epochs: int = 20
    """Real data: epochs of MetaQNN's recipe."""
    gtn_checkpoint: str | None = None
    """GTN: a meta-training run folder or checkpoint."""
    gtn_steps: int | None = None
    """GTN: inner steps (None: all the teacher learned)."""
    gtn_seeds: int = 1
    """GTN: initialisations per architecture; the reward is their mean accuracy."""
    precision: str = "fp32"
    """GTN: ``fp32`` or ``bf16`` autocast of the learner's passes."""
    channels_last: bool = False
    """GTN: channels-last memory format."""
    measure_test: bool = False
    """Real data: also measure test accuracy (reported, never the reward)."""


def _load_data(spec: RewardSpec) -> Dataset:
    from metaqnn.data import load_dataset

    return load_dataset(
        spec.dataset,
        root=spec.data_root,
        val_size=spec.val_size,
        device=spec.device,
        seed=spec.seed,
    )


def _build_real(spec: RewardSpec) -> RealDataReward:
    return RealDataReward(
        _load_data(spec),
        TrainConfig(epochs=spec.epochs, seed=spec.seed),
        NetConfig(),
        device=spec.device,
        measure_test=spec.measure_test,
    )


def _build_gtn(spec: RewardSpec):
    from gtn.meta import checkpoint_file, load_meta_checkpoint, teacher_from_checkpoint
    from metaqnn.errors import CheckpointError, ConfigError
    from metaqnn.teaching import GTNReward

    if not spec.gtn_checkpoint:
        raise ConfigError("the gtn reward needs a GTN checkpoint (--gtn-checkpoint RUN_DIR)")
    path = checkpoint_file(spec.gtn_checkpoint)
    try:
        state = load_meta_checkpoint(path)
    except ValueError as exc:
        raise CheckpointError(str(exc)) from None
    extra = state.get("extra", {})
    if extra.get("dataset") not in (None, spec.dataset):
        raise ConfigError(f"{path} teaches {extra['dataset']!r}, the search is on {spec.dataset!r}")
    net = NetConfig(**extra["net_config"]) if "net_config" in extra else None
    teacher = teacher_from_checkpoint(state, spec.device)
    return GTNReward(
        teacher,
        _load_data(spec),
        steps=spec.gtn_steps,
        val_size=spec.score_size,
        seed=spec.seed,
        device=spec.device,
        seeds=spec.gtn_seeds,
        precision=spec.precision,
        channels_last=spec.channels_last,
        **({"net_config": net} if net else {}),
    )


#: Reward builders by name: a :class:`RewardSpec` -> an object with ``evaluate(architecture)
#: -> RewardResult`` (and ``__call__`` -> the reward).
REWARDS: dict[str, Callable[[RewardSpec], Any]] = {"real": _build_real, "gtn": _build_gtn}


def build_reward(spec: RewardSpec):
    """The reward a spec describes.

    Raises:
        ConfigError: If ``spec.name`` is not in :data:`REWARDS`.
    """
    from metaqnn.errors import ConfigError

    if spec.name not in REWARDS:
        raise ConfigError(f"unknown reward {spec.name!r}; choose from {sorted(REWARDS)}")
    return REWARDS[spec.name](spec)
