"""How the final phase picks its finalists from the search's ranking.

``reward``: the best designs by search reward (MetaQNN's way).

``heads``: round robin over the classifier heads (the softmax on conv features, fully
connected layers, or global average pooling): the best design of each head, the heads in the
order of their best reward, then the second best of each, and so on. On digits the GTN reward
does not rank across heads (experiments/RESULTS.md): in the twelve cross-validated 5-minute
demo runs, every finalist had its softmax on conv features, the best-rewarded FC design
ranked 71st-205th and the best GAP design 252nd-356th; trained with the final recipe, one of
those two was ahead of every finalist by cross-validated accuracy in 6 of the 12 runs and
level in 1, and three such GAP designs average 0.39-0.62 % test error over 6 training seeds
against 0.95 % for the best hand net. Cross-validation on real data then decides among
heads, which the reward could not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from envs.layers import Architecture, FullyConnected, GlobalAvgPool
from metaqnn.errors import ConfigError

#: The heads, in the order they are named in reports.
HEADS = ("conv", "FC", "GAP")


def head(arch: Architecture | str) -> str:
    """The classifier head of ``arch``: ``GAP`` with global average pooling, ``FC`` with a
    fully connected layer, else ``conv`` (the softmax reads conv or pooling features)."""
    layers = Architecture.parse(arch).layers if isinstance(arch, str) else arch.layers
    if any(isinstance(ly, GlobalAvgPool) for ly in layers):
        return "GAP"
    if any(isinstance(ly, FullyConnected) for ly in layers):
        return "FC"
    return "conv"


Ranked = list[tuple[str, float]]


def by_reward(ranked: Iterable[tuple[str, float]]) -> Ranked:
    """The ranking as it is: best search reward first."""
    return list(ranked)


def heads_in_turn(ranked: Iterable[tuple[str, float]]) -> Ranked:
    """Round robin over the heads: the best design of each head (the heads in the order of
    their best reward), then the second best of each, and so on; a head with no designs left
    drops out. ``ranked`` is best first."""
    queues: dict[str, list[tuple[str, float]]] = {}
    for arch, reward in ranked:
        queues.setdefault(head(arch), []).append((arch, reward))
    out: list[tuple[str, float]] = []
    for rank in range(max((len(q) for q in queues.values()), default=0)):
        out += [q[rank] for q in queues.values() if rank < len(q)]
    return out


@dataclass(frozen=True)
class FinalistPick:
    """One way to pick finalists: how it orders the ranking, what ``--help`` says of it, and
    the sentence the report adds ('' for none)."""

    order: Callable[[Iterable[tuple[str, float]]], Ranked]
    help: str
    sentence: str = ""


#: Pick name -> how it orders the search's ranking (best first), and how it is described.
FINALIST_PICKS: dict[str, FinalistPick] = {
    "reward": FinalistPick(by_reward, "the best by search reward"),
    "heads": FinalistPick(
        heads_in_turn,
        f"the classifier heads {', '.join(HEADS)} in turn: the best-rewarded design of each, "
        "then the second best of each, ...",
        " The finalists take the classifier heads in turn: the best-rewarded design of each "
        f"head ({', '.join(HEADS)}: the softmax on conv features, fully connected layers, "
        "global average pooling), then the second best of each, and so on; the reward does "
        "not rank across heads.",
    ),
}


def check_pick(name: str) -> None:
    """Raise :class:`ConfigError` naming ``name`` unless it is a known pick."""
    if name not in FINALIST_PICKS:
        raise ConfigError(f"unknown finalist pick {name!r}; choose from "
                          f"{', '.join(FINALIST_PICKS)}")  # fmt: skip


def order(name: str, ranked: Iterable[tuple[str, float]]) -> Ranked:
    """``ranked`` (architecture, reward; best first) in the order pick ``name`` takes them."""
    check_pick(name)
    return FINALIST_PICKS[name].order(ranked)


def sentence(name: str) -> str:
    """What the report says of how pick ``name`` took the finalists ('' for nothing)."""
    check_pick(name)
    return FINALIST_PICKS[name].sentence


def help_text() -> str:
    """Every pick and what it does, for ``--help``."""
    return "; ".join(f"{name} ({p.help})" for name, p in FINALIST_PICKS.items())
