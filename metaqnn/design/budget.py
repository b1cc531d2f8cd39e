"""Wall-clock budgets: ``2h``, ``90m``, ``1h30m``, ``45s`` or plain seconds, and their split into
the phases of a design run."""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass

from metaqnn.errors import ConfigError

_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)([hms])")

#: Shares of (teacher, search, final training) when the teacher must be meta-trained.
SHARES_WITH_TEACHER = (0.25, 0.35, 0.40)
#: Shares when a teacher is given (no teacher phase).
SHARES_GIVEN_TEACHER = (0.0, 0.45, 0.55)


def parse_duration(text: str) -> float:
    """Seconds of a duration such as ``2h``, ``90m``, ``1h30m``, ``45s`` or ``600``.

    Raises:
        ConfigError: If ``text`` is not a positive, finite duration.
    """
    raw = str(text).strip().lower()
    try:
        seconds = float(raw)
    except ValueError:
        parts = _PART.findall(raw)
        if not parts or "".join(n + u for n, u in parts) != raw.replace(" ", ""):
            raise ConfigError(
                f"--budget {text!r}: expected a duration such as 2h, 90m, 1h30m, 45s or 600"
            ) from None
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"--budget {text!r}: must be a positive, finite duration")
    return seconds


def format_duration(seconds: float) -> str:
    """``5400`` -> ``1h30m``; ``75`` -> ``1m15s``; ``-75`` -> ``-1m15s``."""
    if seconds < 0:
        return "-" + format_duration(-seconds)
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    out = (f"{h}h" if h else "") + (f"{m}m" if m else "") + (f"{s}s" if s or not (h or m) else "")
    return out


@dataclass(frozen=True)
class BudgetPlan:
    """How a design run spends its budget (seconds)."""

    total_s: float
    """The whole budget."""
    teacher_s: float
    """GTN meta-training (0 with a given teacher)."""
    search_s: float
    """The Q-learning search, measuring the reward's cost included."""
    final_s: float
    """Final training of the finalists and the hand-designed baselines."""
    given_to_search_s: float = 0.0
    """Seconds of the final share that the search got, because the final training needs no
    more than the rest (:meth:`reserve_final`)."""

    @classmethod
    def split(cls, total_s: float, shares: tuple[float, float, float]) -> BudgetPlan:
        """Split ``total_s`` by ``shares`` (teacher, search, final; they must add up to 1).

        Raises:
            ConfigError: If a share is negative or they do not add up to 1.
        """
        if len(shares) != 3 or min(shares) < 0 or not math.isclose(sum(shares), 1.0):
            raise ConfigError(
                f"budget shares {tuple(shares)}: need three non-negative shares (teacher, "
                "search, final) that add up to 1"
            )
        t, s, f = (total_s * share for share in shares)
        return cls(total_s=total_s, teacher_s=t, search_s=s, final_s=f)

    def reserve_final(self, need_s: float | None) -> BudgetPlan:
        """This plan with the final share cut to ``need_s`` (what the final training can use
        at most) and the rest given to the search; unchanged when ``need_s`` is None or not
        less than the final share."""
        if need_s is None or need_s >= self.final_s:
            return self
        moved = self.final_s - need_s
        return dataclasses.replace(self, search_s=self.search_s + moved, final_s=need_s,
                                   given_to_search_s=self.given_to_search_s + moved)  # fmt: skip

    def describe(self, search: str = "qlearning, gtn reward") -> str:
        """One line per phase, for the start of a run; ``search`` names the search's agent and
        reward."""
        rows = [
            ("teacher (GTN meta-training)", self.teacher_s),
            (f"search ({search})", self.search_s),
            ("final training (finalists + baselines)", self.final_s),
        ]
        width = max(len(name) for name, _ in rows)
        lines = [f"budget {format_duration(self.total_s)}:"]
        for name, seconds in rows:
            share = seconds / self.total_s
            lines.append(f"  {name:<{width}}  {format_duration(seconds):>8}  ({share:.0%})")
        if self.given_to_search_s > 0:
            moved = format_duration(self.given_to_search_s)
            lines.append(f"  (the search has {moved} of the final share: the final training "
                         "needs no more than the rest)")  # fmt: skip
        return "\n".join(lines)
