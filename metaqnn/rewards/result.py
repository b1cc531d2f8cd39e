"""What a reward hands back, and the shape every reward has.

A reward is anything callable ``Architecture -> float`` (what :class:`envs.CNNDesignEnv`
takes). The rewards of this package also have ``evaluate(architecture) -> RewardResult``,
which carries the costs and the status the search stores; :func:`as_reward` gives a plain
callable that method.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from envs.layers import Architecture
from metaqnn.errors import ConfigError


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
        parameters: Trainable parameters of the model (None when unknown).
        flops: FLOPs of one forward pass on one image (2 x multiply-adds; None when unknown).
        steps: Optimizer steps taken, restarts included.
        restarts: Restarts at chance.
        wall_time_s: Seconds spent on this evaluation (None when it never ran).
    """

    architecture: str
    reward: float
    status: str
    reason: str
    val_accuracy: float
    test_accuracy: float | None
    parameters: int | None
    flops: int | None
    steps: int
    restarts: int
    wall_time_s: float | None

    @classmethod
    def failed(
        cls, architecture: str, reason: str, chance: float, *, status: str = "failed"
    ) -> RewardResult:
        """A model whose evaluation failed: it scores ``chance`` (``1 / classes``, as in
        MetaQNN) and has no measurements."""
        return cls(
            architecture=architecture, reward=chance, status=status, reason=reason,
            val_accuracy=math.nan, test_accuracy=None, parameters=None, flops=None,
            steps=0, restarts=0, wall_time_s=None,
        )  # fmt: skip


class Reward(Protocol):
    """Anything the search (or :class:`envs.CNNDesignEnv`) can score an architecture with."""

    def __call__(self, architecture: Architecture) -> float: ...


@runtime_checkable
class EvaluatingReward(Protocol):
    """A reward that also reports what the evaluation cost and how it went."""

    def evaluate(self, architecture: Architecture) -> RewardResult: ...

    def __call__(self, architecture: Architecture) -> float: ...


class RewardShapeError(ConfigError):
    """A reward that is not ``Architecture -> float``: a setup error, never a model's score
    (the search stops with it instead of recording it against an architecture)."""


def reward_name(reward: object) -> str:
    """A stable name for a reward object or function (``module.qualname``), recorded with a
    search so that a resume cannot quietly switch rewards."""
    target = reward if callable(reward) and hasattr(reward, "__qualname__") else type(reward)
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', '?')}"


class CallableReward:
    """A plain ``Architecture -> float`` callable as an :class:`EvaluatingReward`.

    Args:
        fn: The reward function. It is checked now: it must accept one positional argument.

    Raises:
        RewardShapeError: If ``fn`` is not callable with one argument; at evaluation, if it
            returns something that is not a real number.
    """

    def __init__(self, fn: Callable[[Architecture], float]) -> None:
        if not callable(fn):
            raise RewardShapeError(
                f"reward {fn!r} is not callable; pass a function Architecture -> float or an "
                "object with evaluate(architecture) -> RewardResult"
            )
        try:
            inspect.signature(fn).bind(None)
        except TypeError as exc:
            raise RewardShapeError(
                f"reward {reward_name(fn)} cannot be called with one architecture: {exc}"
            ) from None
        except ValueError:  # no signature (a builtin): trust it
            pass
        self.fn = fn
        self.name = reward_name(fn)

    def evaluate(self, architecture: Architecture) -> RewardResult:
        """Call the function and wrap its value (no costs are known but the wall time)."""
        start = time.perf_counter()
        value = self.fn(architecture)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise RewardShapeError(
                f"reward {self.name} returned {value!r} ({type(value).__name__}) for "
                f"{architecture}; a reward returns a real number"
            )
        value = float(value)
        ok = math.isfinite(value)
        return RewardResult(
            architecture=str(architecture), reward=value if ok else 0.0,
            status="ok" if ok else "diverged", reason="" if ok else f"reward {value}",
            val_accuracy=math.nan, test_accuracy=None, parameters=None, flops=None,
            steps=0, restarts=0, wall_time_s=time.perf_counter() - start,
        )  # fmt: skip

    def __call__(self, architecture: Architecture) -> float:
        return self.evaluate(architecture).reward


def as_reward(reward: object) -> EvaluatingReward:
    """``reward`` as an :class:`EvaluatingReward`: returned as it is if it has ``evaluate``,
    wrapped in :class:`CallableReward` if it is a plain callable.

    Raises:
        RewardShapeError: If it is neither.
    """
    if isinstance(reward, EvaluatingReward):
        return reward
    return CallableReward(reward)  # type: ignore[arg-type]
