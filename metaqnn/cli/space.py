"""``metaqnn space``, ``validate``, ``sample`` and ``datasets``: look at the search space and the
data without training anything."""

from __future__ import annotations

import argparse

import numpy as np

from envs.graph import count_architectures, state_graph, summarize_state_graph
from envs.space import RULES
from metaqnn.cli.options import add_limit_options, limits_of
from metaqnn.core.spaces import space_of
from metaqnn.markdown import markdown_table


def configure_space(p: argparse.ArgumentParser) -> None:
    p.add_argument("--space", default="mnist", help="search-space preset")


def run_space(args: argparse.Namespace) -> int:
    space = space_of(args.space)
    graph = state_graph(space)
    summary = summarize_state_graph(graph)
    print(f"search space {space.name!r}")
    for name, value in vars(space).items():
        print(f"  {name:15s} {value}")
    print(f"actions           {len(space.actions)} ({', '.join(map(str, space.actions))})")
    print(f"reachable states  {summary.states} ({summary.terminal_states} terminal)")
    print(f"legal (state, action) pairs  {summary.actions}")
    print(f"architectures     {count_architectures(graph, space.start()):,}")
    print("rules:")
    for name, rule in RULES.items():
        print(f"  {name:30s} {rule.description}")
    return 0


def configure_validate(p: argparse.ArgumentParser) -> None:
    p.add_argument("architecture", help='e.g. "[C(64,3,1), P(2,2), FC(512), SM(10)]"')
    p.add_argument("--space", default="mnist", help="search-space preset whose rules to check")
    add_limit_options(p)


def run_validate(args: argparse.Namespace) -> int:
    from metaqnn.core.limits import check_limits
    from metaqnn.core.shapes import trace_shapes

    space = space_of(args.space)
    arch = space.validate(args.architecture)
    shapes = trace_shapes(arch, in_channels=space.input_channels, input_size=space.input_size)
    cost = check_limits(arch, shapes, limits_of(args))
    print(f"{arch} obeys every rule of search space {space.name!r}")
    rows = [
        [
            str(i),
            str(layer),
            f"{s.out_channels}" + ("" if s.flat else f"x{s.out_size}x{s.out_size}"),
        ]
        for i, (layer, s) in enumerate(zip(arch, shapes, strict=True))
    ]
    print(markdown_table(["#", "layer", "output shape"], rows))
    print(f"FLOPs per image: {cost.flops:,}")
    return 0


def configure_sample(p: argparse.ArgumentParser) -> None:
    p.add_argument("--space", default="mnist", help="search-space preset")
    p.add_argument("-n", "--count", type=int, default=5, help="architectures to sample")
    p.add_argument("--seed", type=int, default=0, help="seed of the random sampling")


def run_sample(args: argparse.Namespace) -> int:
    space = space_of(args.space)
    rng = np.random.default_rng(args.seed)
    for _ in range(args.count):
        print(space.sample(rng))
    return 0


def configure_datasets(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", default=None, help="data root (default: $METAQNN_DATA)")


def run_datasets(args: argparse.Namespace) -> int:
    from metaqnn.core.datasets import describe

    info = describe(args.data_root)
    print(f"data root: {info[0]['root']}")
    rows = [
        [d["name"], "x".join(map(str, d["input_shape"])), str(d["num_classes"]),
         "yes" if d["available"] else "no", d["description"]]
        for d in info
    ]  # fmt: skip
    print(markdown_table(["dataset", "shape", "classes", "available", "description"], rows))
    return 0
