"""A MetaQNN search's configuration (:class:`SearchConfig`), stored with the run."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from envs.space import SearchSpace, get_space
from metaqnn.errors import CheckpointError, ConfigError
from metaqnn.rewards.spec import RewardSpec
from metaqnn.search.schedule import EpsilonSchedule


@dataclass(frozen=True)
class SearchConfig:
    """A MetaQNN search (stored with the run; a resumed run uses the stored one)."""

    reward: RewardSpec = field(default_factory=RewardSpec)
    """The reward (its dataset is the search's dataset)."""
    space: str | None = None
    """Search-space preset (None: the dataset's)."""
    width_divisor: int = 1
    """Divide the space's conv filters and FC widths by this (cheaper models on a CPU)."""
    schedule: str = "paper"
    """Epsilon schedule: ``paper``, ``quick``, a factor, or stages ``1.0:30,0.5:10``."""
    replay: int = 100
    """Trajectories replayed after each model (MetaQNN: 100)."""
    alpha: float = 0.01
    """Q learning rate."""
    gamma: float = 1.0
    """Discount."""
    q_init: float = 0.5
    """Initial Q-value."""
    seed: int = 0
    """Seed of the agent's choices and replay draws."""
    workers: int = 1
    """Evaluations at once."""
    backend: str = "inline"
    """``inline`` (this process), ``process`` (local workers) or ``ray``."""
    address: str | None = None
    """Ray cluster address."""
    max_repeats: int = 10_000
    """Stop when this many samples in a row bring no new architecture (space exhausted)."""
    max_flops: float | None = None
    """Cost-aware search: a layer is allowed only while the architecture so far, at widths /
    ``flops_width_divisor``, costs at most this many forward FLOPs per image (the classifier
    is never refused; :class:`metaqnn.search.cost.CostMask`). None: no cap."""
    flops_width_divisor: int = 1
    """The width at which ``max_flops`` is counted: the full space's widths divided by this
    (it must divide ``width_divisor``, so the search's widths map onto it)."""

    def __post_init__(self) -> None:
        EpsilonSchedule.parse(self.schedule)  # raises ConfigError on a bad spec
        if self.seed < 0:
            raise ConfigError(f"SearchConfig: seed={self.seed} must be >= 0")
        if self.replay < 0 or self.workers < 1 or self.max_repeats < 1:
            raise ConfigError(
                f"SearchConfig: replay={self.replay} must be >= 0, workers="
                f"{self.workers} >= 1, max_repeats={self.max_repeats} >= 1"
            )
        if self.max_flops is not None and not _positive(self.max_flops):
            raise ConfigError(
                f"SearchConfig: max_flops={self.max_flops!r} must be a positive number "
                "(--max-design-flops)"
            )
        divisor = self.flops_width_divisor
        if not (
            _positive(divisor) and isinstance(divisor, int) and self.width_divisor % divisor == 0
        ):
            raise ConfigError(
                f"SearchConfig: flops_width_divisor={divisor!r} must be a positive integer that "
                f"divides width_divisor={self.width_divisor!r} (--flops-width-divisor)"
            )

    def full_space(self) -> SearchSpace:
        """The search space at full width (the one :meth:`search_space` scales)."""
        try:
            return get_space(self.space or _preset_of(self.reward.dataset))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    def search_space(self) -> SearchSpace:
        """The (possibly width-scaled) search space."""
        try:
            return self.full_space().scale_widths(self.width_divisor)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchConfig:
        """Inverse of :meth:`to_dict`."""
        data = dict(data)
        return cls(reward=RewardSpec(**data.pop("reward")), **data)

    @classmethod
    def from_stored(cls, data: Any, path: object) -> SearchConfig:
        """:meth:`from_dict` of the config a run's store holds.

        Raises:
            CheckpointError: Naming ``path`` and what is wrong, if it is not a whole config.
        """
        try:
            if not isinstance(data, dict) or not isinstance(data.get("reward"), dict):
                raise TypeError(f"expected an object with a reward object, not {data!r:.80}")
            return cls.from_dict(data)
        except (TypeError, KeyError, ValueError) as exc:
            raise CheckpointError(f"{path}: the stored search config is unusable ({exc})") from None


def _positive(value: object) -> bool:
    """Whether ``value`` is a finite number above 0 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value) and value > 0


def _preset_of(dataset: str) -> str:
    from metaqnn.core.data import get_spec

    return get_spec(dataset).preset
