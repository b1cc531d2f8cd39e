"""networkx views: an architecture as a graph, and the state-transition graph of a space."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import networkx as nx

from envs.layers import Architecture, layer_kind
from envs.space import SearchSpace, State, output_size


def architecture_graph(architecture: Architecture, space: SearchSpace | None = None) -> nx.DiGraph:
    """An architecture as a chain graph: node 0 is the input, node ``i + 1`` is layer ``i``.

    Node attributes: ``label`` (the layer's string form, ``input`` for node 0), ``kind``
    (``input``, ``conv``, ``pool``, ``fc``, ``gap``, ``softmax``) and, when a space is given,
    ``size`` (the spatial representation size after that node).
    """
    graph = nx.DiGraph(architecture=str(architecture))
    size = space.input_size if space is not None else None
    graph.add_node(0, label="input", kind="input", size=size)
    for i, layer in enumerate(architecture.layers, start=1):
        if size is not None:
            size = output_size(layer, size)
        graph.add_node(i, label=str(layer), kind=layer_kind(layer), size=size)
        graph.add_edge(i - 1, i)
    return graph


@dataclass(frozen=True)
class StateGraphSummary:
    """Counts of a state-transition graph.

    Attributes:
        states: Reachable states, start and terminal included.
        terminal_states: Reachable terminal states.
        actions: Legal (state, action) pairs, i.e. edges.
        max_depth: Deepest state reached.
    """

    states: int
    terminal_states: int
    actions: int
    max_depth: int


def state_graph(space: SearchSpace) -> nx.DiGraph:
    """The whole state-transition graph reachable from the start state.

    Nodes are :class:`State` values; an edge ``s -> t`` carries ``action`` (its index in
    ``space.actions``) and ``layer`` (the layer's string form). Built breadth first, so it
    is the exact set of states a legal episode can visit.
    """
    graph = nx.DiGraph(space=space.name)
    start = space.start()
    graph.add_node(start)
    queue: deque[State] = deque([start])
    while queue:
        state = queue.popleft()
        if state.terminal:
            continue
        for action, layer in enumerate(space.actions):
            if not space.allowed(state, layer):
                continue
            nxt = space.next_state(state, layer)
            if nxt not in graph:
                graph.add_node(nxt)
                queue.append(nxt)
            graph.add_edge(state, nxt, action=action, layer=str(layer))
    return graph


def summarize_state_graph(graph: nx.DiGraph) -> StateGraphSummary:
    """Counts of a graph made by :func:`state_graph`."""
    return StateGraphSummary(
        states=graph.number_of_nodes(),
        terminal_states=sum(1 for s in graph.nodes if s.terminal),
        actions=graph.number_of_edges(),
        max_depth=max(s.depth for s in graph.nodes),
    )


def count_architectures(graph: nx.DiGraph, start: State) -> int:
    """Number of distinct architectures (start-to-terminal paths) in a state graph."""
    paths: dict[State, int] = {}
    for state in reversed(list(nx.topological_sort(graph))):
        paths[state] = 1 if state.terminal else sum(paths[t] for t in graph.successors(state))
    return paths[start]
