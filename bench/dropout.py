"""Dropout on the CPU: ``nn.Dropout`` (``bernoulli_`` mask) against
:class:`metaqnn.core.dropout.FastDropout`, side by side in one run: the op alone, and whole
training steps (forward, backward, SGD) of nets built as the design's final phase builds them.

    python bench/dropout.py [--threads 2] [--steps 10]

Each architecture is built once per kind (same seed, same initial weights), its dropout modules
swapped, and timed over ``--steps`` steps of batch 128 on random 28x28 images after 3 warm-up
steps; the median of ``--repeats`` is reported.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from envs.layers import Architecture
from metaqnn.core.dropout import FastDropout
from metaqnn.core.nets import NetConfig, build_model
from metaqnn.runinfo import device_name

ARCHITECTURES = (
    "[C(32,5,1), C(128,3,1), SM(10)]",  # the fidelity run's first truth unit (widths / 4)
    "[C(32,3,1), C(64,3,1), P(2,2), FC(128), SM(10)]",  # hand: the PyTorch MNIST example
    "[C(32,3,1), P(2,2), C(64,3,1), P(2,2), FC(128), SM(10)]",  # hand: the README net
    "[C(8,1,1), C(16,3,1), C(4,3,1), P(2,2), C(16,5,1), P(5,3), C(32,3,1), FC(16), FC(16), SM(10)]",
)
KINDS = {"nn.Dropout": nn.Dropout, "FastDropout": FastDropout}


def swap(model: nn.Module, kind: type[nn.Dropout]) -> nn.Module:
    """``model`` with every dropout module replaced by ``kind`` at the same rate."""
    for name, child in model.named_children():
        if isinstance(child, nn.Dropout):
            setattr(model, name, kind(child.p))
        else:
            swap(child, kind)
    return model


def step_seconds(arch: Architecture, kind: type[nn.Dropout], steps: int) -> float:
    """Seconds per training step of ``arch`` with ``kind`` dropout."""
    torch.manual_seed(0)
    model = swap(build_model(arch, in_channels=1, input_size=28, config=NetConfig()), kind)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    x, y = torch.randn(128, 1, 28, 28), torch.randint(0, 10, (128,))

    def step() -> None:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def op_seconds(kind: type[nn.Dropout], steps: int) -> float:
    """Seconds of one forward of ``kind(0.5)`` on a (128, 128, 28, 28) activation."""
    x, module = torch.randn(128, 128, 28, 28), kind(0.5)
    module(x)
    start = time.perf_counter()
    for _ in range(steps):
        module(x)
    return (time.perf_counter() - start) / steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--architectures", nargs="*", default=list(ARCHITECTURES))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {device_name(torch.device('cpu'))}, torch {torch.__version__}")
    ops = {k: statistics.median(op_seconds(cls, args.steps) for _ in range(args.repeats))
           for k, cls in KINDS.items()}  # fmt: skip
    print(f"dropout(0.5) forward on 128x128x28x28: nn.Dropout {ops['nn.Dropout'] * 1e3:.1f} ms, "
          f"FastDropout {ops['FastDropout'] * 1e3:.1f} ms, ratio "
          f"{ops['nn.Dropout'] / ops['FastDropout']:.2f}x")  # fmt: skip
    print("| architecture (batch 128, 28x28) | nn.Dropout ms/step | FastDropout ms/step | ratio |")
    print("|---|---|---|---|")
    ratios = []
    for text in args.architectures:
        arch = Architecture.parse(text)
        times = {k: [] for k in KINDS}
        for _ in range(args.repeats):  # interleaved, so drift hits both alike
            for k, cls in KINDS.items():
                times[k].append(step_seconds(arch, cls, args.steps))
        slow, fast = (statistics.median(times[k]) for k in KINDS)
        ratios.append(slow / fast)
        print(
            f"| `{text}` | {slow * 1e3:.1f} | {fast * 1e3:.1f} | {slow / fast:.2f}x |", flush=True
        )
    print(f"median step ratio {statistics.median(ratios):.2f}x")


if __name__ == "__main__":
    main()
