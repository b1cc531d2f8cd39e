"""Every architecture of a search space, in a deterministic order (numpy and networkx only).

The order is that of a depth-first walk of the state graph (:func:`envs.graph.state_graph`)
taking actions in action-index order (``space.actions``): architectures sort as their
sequences of action indices do, so the same space always gives the same list, on any machine.
"""

from __future__ import annotations

from collections.abc import Iterator

import networkx as nx

from envs.graph import count_architectures, state_graph
from envs.layers import Architecture, Layer
from envs.space import SearchSpace, State

#: Refuse to list spaces larger than this (a list of millions of architectures is a mistake).
MAX_ENUMERATED = 1_000_000


def iter_architectures(space: SearchSpace) -> Iterator[Architecture]:
    """Yield every architecture of ``space`` once, in action-index order (see the module).

    Args:
        space: The search space.

    Yields:
        Each architecture, ending with ``SM(classes)``.
    """
    graph = state_graph(space)
    yield from _walk(graph, space, space.start(), ())


def _walk(
    graph: nx.DiGraph, space: SearchSpace, state: State, prefix: tuple[Layer, ...]
) -> Iterator[Architecture]:
    if state.terminal:
        yield Architecture(prefix)
        return
    edges = sorted(graph.out_edges(state, data="action"), key=lambda edge: edge[2])
    for _, nxt, action in edges:
        yield from _walk(graph, space, nxt, (*prefix, space.actions[action]))


def enumerate_architectures(space: SearchSpace, limit: int = MAX_ENUMERATED) -> list[Architecture]:
    """Every architecture of ``space``, in the deterministic order of :func:`iter_architectures`.

    Args:
        space: The search space.
        limit: Refuse a space with more architectures than this.

    Returns:
        The list (its length is :func:`envs.graph.count_architectures` of the space).

    Raises:
        ValueError: If the space has more than ``limit`` architectures (naming the count).
    """
    count = space_size(space)
    if count > limit:
        raise ValueError(
            f"search space {space.name!r} has {count} architectures, more than the {limit} "
            "that may be enumerated"
        )
    return list(iter_architectures(space))


def space_size(space: SearchSpace) -> int:
    """Number of architectures of ``space`` (start-to-terminal paths of its state graph)."""
    return count_architectures(state_graph(space), space.start())
