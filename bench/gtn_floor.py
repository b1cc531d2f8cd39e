"""Distance of one GTN reward to the compute floor, side by side in one run.

    python bench/gtn_floor.py --dataset mnist --data-root ../shared/data [--checkpoint RUN]

The floor is what training on any data must cost: ``steps`` x (one forward + backward + SGD
update of the learner on a batch of the same size) + one forward pass over the validation
subset, timed with a plain ``torch.optim.SGD`` loop on a fixed batch. The GTN reward is
:class:`metaqnn.rewards.gtn.GTNReward` (functional inner loop on the teacher's materialized
batches, then validation). Their ratio is the overhead (target: at most 1.25). The one-off cost of
generating the batches (once per reward object, shared by every architecture) is reported
apart. Each time is the median of ``--repeats``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from envs.layers import Architecture
from envs.space import get_space
from metaqnn.core.data import load_dataset
from metaqnn.rewards.gtn import GTNReward
from metaqnn.runinfo import device_name
from metaqnn.teacher.shapes import GTN_LEARNER, PAPER_LEARNERS, fixed_learner_factory, load_teacher


def _median_time(fn, repeats: int, device: torch.device) -> float:
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def floor(arch, data, reward: GTNReward, device, repeats: int) -> float:
    """steps x plain SGD steps on a fixed batch + one validation forward pass."""
    factory = fixed_learner_factory(arch, data, reward.net_config, device)
    batch = reward.teacher.config.inner_batch
    x, y = data.train.x[:batch], data.train.y[:batch]  # (B, C, H, W), (B,)

    def run() -> None:
        model = factory(0)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.5)
        for _ in range(reward.steps):
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        with torch.no_grad():
            model(reward.val.x).argmax(1).eq(reward.val.y).float().mean().item()

    run()  # warm-up
    return _median_time(run, repeats, device)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--data-root", default=None)
    p.add_argument("--checkpoint", default=None, help="a GTN run (default: a fresh teacher)")
    p.add_argument("--samples", type=int, default=4, help="search-space architectures too")
    p.add_argument("--width-divisor", type=int, default=16)
    p.add_argument("--val-size", type=int, default=1000, help="validation images scored")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    device = torch.device(args.device)
    data = load_dataset(args.dataset, root=args.data_root, device=device)
    teacher = load_teacher(data, args.checkpoint, device)
    start = time.perf_counter()
    reward = GTNReward(teacher, data, val_size=args.val_size, net_config=GTN_LEARNER,
                       device=device)  # fmt: skip
    materialize_s = time.perf_counter() - start
    archs = [Architecture.parse(PAPER_LEARNERS[data.name])] if data.name in PAPER_LEARNERS else []
    space = get_space(data.spec.preset).scale_widths(args.width_divisor)
    rng = np.random.default_rng(0)
    archs += [space.sample(rng) for _ in range(args.samples)]
    print(
        f"{device_name(device)}, torch {torch.__version__}; {reward.steps} steps of "
        f"{teacher.config.inner_batch}, {len(reward.val)} validation images; batches "
        f"materialized once in {materialize_s:.2f} s"
    )
    print("| architecture | GTN reward s | floor s | ratio |")
    print("|---|---|---|---|")
    ratios = []
    for arch in archs:
        reward.evaluate(arch)  # warm-up
        gtn_s = _median_time(lambda a=arch: reward.evaluate(a), args.repeats, device)
        floor_s = floor(arch, data, reward, device, args.repeats)
        ratios.append(gtn_s / floor_s)
        print(f"| `{arch}` | {gtn_s:.3f} | {floor_s:.3f} | {gtn_s / floor_s:.2f} |", flush=True)
    print(
        f"\nmedian ratio {statistics.median(ratios):.2f}, max {max(ratios):.2f} "
        "(target: at most 1.25)"
    )


if __name__ == "__main__":
    main()
