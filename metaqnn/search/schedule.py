"""MetaQNN's epsilon schedule: how many unique models the agent trains at each epsilon."""

from __future__ import annotations

import math
from dataclasses import dataclass

from metaqnn.errors import ConfigError

#: MetaQNN's schedule (unique models at each epsilon): 1500 at 1.0; 100 each at 0.9, 0.8, 0.7;
#: 150 each from 0.6 to 0.1. 2,700 models in all.
PAPER_STAGES: tuple[tuple[float, int], ...] = (
    (1.0, 1500),
    (0.9, 100),
    (0.8, 100),
    (0.7, 100),
    (0.6, 150),
    (0.5, 150),
    (0.4, 150),
    (0.3, 150),
    (0.2, 150),
    (0.1, 150),
)
#: The factor of the ``quick`` schedule (54 models: 30 at 1.0, then 2 or 3 per stage).
QUICK_FACTOR = 0.02


@dataclass(frozen=True)
class EpsilonSchedule:
    """Stages of (epsilon, unique models trained at that epsilon), in order.

    Attributes:
        stages: ``((epsilon, count), ...)``; epsilons in [0, 1], counts >= 1.
    """

    stages: tuple[tuple[float, int], ...] = PAPER_STAGES

    def __post_init__(self) -> None:
        if not self.stages:
            raise ConfigError("an epsilon schedule needs at least one stage")
        for eps, count in self.stages:
            if not 0.0 <= eps <= 1.0 or int(count) != count or count < 1:
                raise ConfigError(
                    f"bad schedule stage ({eps}, {count}): epsilon must be in [0, 1] and the "
                    "count a positive integer"
                )

    @classmethod
    def scaled(cls, factor: float) -> EpsilonSchedule:
        """MetaQNN's schedule with every count multiplied by ``factor`` (at least 1 each)."""
        if not factor > 0 or not math.isfinite(factor):
            raise ConfigError(f"schedule factor {factor!r} must be a positive number")
        return cls(tuple((eps, max(1, round(n * factor))) for eps, n in PAPER_STAGES))

    @classmethod
    def parse(cls, spec: str) -> EpsilonSchedule:
        """``paper``, ``quick``, a factor of the paper's counts (``0.1``), or explicit stages
        ``"1.0:30,0.5:10,0.1:10"``.

        Raises:
            ConfigError: Naming the bad spec and the accepted forms.
        """
        text = spec.strip()
        if text == "paper":
            return cls()
        if text == "quick":
            return cls.scaled(QUICK_FACTOR)
        forms = "use paper, quick, a factor such as 0.1, or stages such as 1.0:30,0.5:10"
        if ":" in text:
            stages = []
            for part in text.split(","):
                eps, _, count = part.partition(":")
                try:
                    stages.append((float(eps), int(count)))
                except ValueError:
                    raise ConfigError(f"bad schedule stage {part!r} in {spec!r}; {forms}") from None
            return cls(tuple(stages))
        try:
            factor = float(text)
        except ValueError:
            raise ConfigError(f"unknown schedule {spec!r}; {forms}") from None
        return cls.scaled(factor)

    @property
    def total(self) -> int:
        """Unique models over the whole schedule."""
        return sum(n for _, n in self.stages)

    def stage_index(self, models_done: int) -> int | None:
        """Index of the stage the next model belongs to, after ``models_done`` unique models
        (None when the schedule is finished)."""
        seen = 0
        for i, (_, n) in enumerate(self.stages):
            seen += n
            if models_done < seen:
                return i
        return None

    def epsilon(self, models_done: int) -> float | None:
        """Epsilon for the next model after ``models_done`` unique models (None: finished)."""
        i = self.stage_index(models_done)
        return None if i is None else self.stages[i][0]

    def to_spec(self) -> str:
        """The explicit-stages form, which :meth:`parse` reads back."""
        return ",".join(f"{eps:g}:{n}" for eps, n in self.stages)
