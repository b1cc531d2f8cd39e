import itertools

import networkx as nx
import numpy as np
import pytest

from envs.graph import architecture_graph, count_architectures, state_graph, summarize_state_graph
from envs.layers import Architecture
from envs.space import PRESETS, SearchSpace
from tests.envs.reference_rules import reference_violations


def _witnesses(graph, space):
    """Two layer sequences reaching each state: the first found (BFS) and the last found (DFS)."""
    start = space.start()
    first = {start: ()}
    for parent, child in nx.bfs_edges(graph, start):
        first[child] = (*first[parent], space.actions[graph.edges[parent, child]["action"]])
    last = {start: ()}
    for parent, child in nx.dfs_edges(graph, start):
        last[child] = (*last[parent], space.actions[graph.edges[parent, child]["action"]])
    return first, last


@pytest.mark.parametrize("preset", ["digits", "mnist", "mnist-fc14"])
def test_no_reachable_path_breaks_a_rule_and_masks_are_exact(preset):
    """Walk the full state graph: every legal step keeps every reachable path rule-abiding
    (by the independent reference checker) and every masked-out step breaks a rule.

    The rules are local given a state (last layer, depth, size, FC run), so checking each
    edge from witness prefixes covers every path; two different witnesses per state check
    that the state really captures what the rules depend on."""
    space = PRESETS[preset]
    graph = state_graph(space)
    first, last = _witnesses(graph, space)
    assert set(first) == set(graph.nodes) == set(last)
    checked = 0
    for state in graph.nodes:
        if state.terminal:
            assert graph.out_degree(state) == 0
            continue
        mask = space.action_mask(state)
        assert mask[space.terminate_action]
        for prefix in {first[state], last[state]}:
            assert not reference_violations(list(prefix), space)
            for action, layer in enumerate(space.actions):
                broken = reference_violations([*prefix, layer], space)
                assert bool(mask[action]) == (not broken), (prefix, layer, broken)
                checked += 1
        assert graph.out_degree(state) == int(mask.sum())
    assert checked > graph.number_of_nodes()


def test_mnist_state_graph_counts():
    space = PRESETS["mnist"]
    graph = state_graph(space)
    summary = summarize_state_graph(graph)
    assert nx.is_directed_acyclic_graph(graph)
    assert summary.max_depth == space.max_depth
    assert summary.states == graph.number_of_nodes() > 1000
    assert summary.actions == graph.number_of_edges()
    # every terminal state is reachable and is where every path ends
    assert all(graph.out_degree(s) == 0 for s in graph.nodes if s.terminal)


def test_count_architectures_on_a_hand_counted_space():
    # From the 4x4 start: SM, C(4,1,1)+SM, C(4,3,1)+SM, FC(8)+SM, GAP+SM (no pool first).
    tiny = SearchSpace(
        input_size=4,
        max_depth=1,
        conv_filters=(4,),
        conv_kernels=(1, 3),
        pools=((2, 2),),
        fc_widths=(8,),
    )
    graph = state_graph(tiny)
    assert count_architectures(graph, tiny.start()) == 5
    # Depth 2 adds: after each conv (R=4): C,C,P,FC,GAP -> 5 each; after FC: FC(8); after GAP: none.
    assert count_architectures(state_graph(tiny.replace(max_depth=2)), tiny.start()) == 5 + 10 + 1


def test_count_matches_sampling_support_on_digits():
    space = PRESETS["digits"]
    graph = state_graph(space)
    total = count_architectures(graph, space.start())
    rng = np.random.default_rng(0)
    seen = {space.sample(rng) for _ in range(500)}
    assert len(seen) <= total
    assert all(space.is_valid(a) for a in seen)
    for arch in seen:  # every sampled architecture is a start-to-terminal path of the graph
        states = list(space.states(arch))
        assert all(graph.has_edge(a, b) for a, b in itertools.pairwise(states))
        assert states[-1].terminal and graph.out_degree(states[-1]) == 0


def test_architecture_graph_tracks_sizes():
    space = PRESETS["mnist"]
    arch = Architecture.parse("[C(64,3,1), P(2,2), C(128,3,1), P(5,3), FC(256), SM(10)]")
    graph = architecture_graph(arch, space)
    assert list(nx.topological_sort(graph)) == list(range(len(arch) + 1))
    assert [graph.nodes[i]["size"] for i in graph.nodes] == [28, 28, 14, 14, 4, 1, 1]
    assert graph.nodes[2]["label"] == "P(2,2)" and graph.nodes[2]["kind"] == "pool"
    assert architecture_graph(arch).nodes[1]["size"] is None
