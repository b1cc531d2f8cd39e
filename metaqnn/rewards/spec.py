"""Rewards built by name: a :class:`RewardSpec` (plain values, picklable to worker processes
and stored with a search) -> a reward object, through the registry :data:`REWARDS`
(``real``, ``gtn``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gtn.meta import checkpoint_file, load_meta_checkpoint, teacher_from_checkpoint
from metaqnn.core.data import Dataset, load_dataset
from metaqnn.core.nets import NetConfig
from metaqnn.core.training import TrainConfig
from metaqnn.errors import CheckpointError, ConfigError
from metaqnn.rewards.gtn import GTNReward
from metaqnn.rewards.real import RealDataReward
from metaqnn.rewards.result import EvaluatingReward


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


def _build_gtn(spec: RewardSpec) -> GTNReward:
    from metaqnn.errors import ConfigError

    if not spec.gtn_checkpoint:
        raise ConfigError("the gtn reward needs a GTN checkpoint (--gtn-checkpoint RUN_DIR)")
    try:
        path = checkpoint_file(spec.gtn_checkpoint)
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
REWARDS: dict[str, Callable[[RewardSpec], EvaluatingReward]] = {
    "real": _build_real,
    "gtn": _build_gtn,
}


def build_reward(spec: RewardSpec) -> EvaluatingReward:
    """The reward a spec describes.

    Raises:
        ConfigError: If ``spec.name`` is not in :data:`REWARDS`.
    """
    if spec.name not in REWARDS:
        raise ConfigError(f"unknown reward {spec.name!r}; choose from {sorted(REWARDS)}")
    return REWARDS[spec.name](spec)
