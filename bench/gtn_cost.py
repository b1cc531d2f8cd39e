"""Cost of one GTN reward against one epoch of real-data training, side by side in one run.

    python bench/gtn_cost.py --dataset mnist --data-root ../shared/data [--checkpoint RUN_DIR]

One GTN reward = a fresh learner taught for the teacher's inner steps + accuracy on the
validation subset. The teacher's weights do not change the cost, so without ``--checkpoint`` a
freshly initialised teacher of the paper's shape is timed. Each measurement is repeated and the
median is reported; the ratio is what to quote (absolute times drift on a shared machine).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from envs.layers import Architecture
from metaqnn.core.data import load_dataset
from metaqnn.core.training import TrainConfig, train_architecture
from metaqnn.rewards.gtn import GTNReward
from metaqnn.runinfo import run_metadata
from metaqnn.teacher.shapes import GTN_LEARNER, PAPER_LEARNERS, load_teacher


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--data-root", default=None)
    p.add_argument("--architecture", default=None, help="default: the paper's learner")
    p.add_argument("--checkpoint", default=None, help="a GTN run folder or checkpoint")
    p.add_argument("--val-size", type=int, default=1000, help="validation images scored")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()

    device = torch.device(args.device)
    data = load_dataset(args.dataset, root=args.data_root, device=device)
    arch = Architecture.parse(args.architecture or PAPER_LEARNERS[data.name])
    teacher = load_teacher(data, args.checkpoint, device)
    reward = GTNReward(teacher, data, val_size=args.val_size, net_config=GTN_LEARNER, device=device)
    reward.evaluate(arch)  # warm-up
    gtn_s = _median_time(lambda: reward.evaluate(arch), args.repeats)
    config = TrainConfig(epochs=1, batch_size=teacher.config.inner_batch, max_restarts=0)
    epoch_s = _median_time(
        lambda: train_architecture(
            arch, data.train, data.val, config, net_config=GTN_LEARNER, device=device
        ),
        max(1, args.repeats - 2),
    )
    steps = teacher.config.inner_steps
    print(f"machine: {run_metadata(device)['device_name']}, torch {torch.__version__}")
    print(f"architecture: {arch} on {data.source}")
    print(
        f"GTN reward ({steps} steps of {teacher.config.inner_batch} + {len(reward.val)} "
        f"validation images): {gtn_s:.2f} s (median of {args.repeats})"
    )
    print(
        f"one epoch of real data ({len(data.train)} images, batch {config.batch_size}, "
        f"+ validation): {epoch_s:.2f} s"
    )
    print(
        f"ratio epoch / GTN reward: {epoch_s / gtn_s:.1f}x; MetaQNN's 20-epoch recipe "
        f"extrapolated: {20 * epoch_s / gtn_s:.0f}x"
    )


if __name__ == "__main__":
    main()
