"""The fast paths of a GTN reward side by side, and GTN meta-training outer steps per second.

    python bench/gpu_path.py --device cuda --data-root ../shared/data [--checkpoint RUN_DIR]

Variants of one GTN reward for the paper's MNIST learner (32 steps of 128 + 1,000 validation
images): plain fp32, channels-last, bf16 autocast, both; and several initialisations per
reward taught one after another or at once (``torch.func.vmap``). Each is timed after a
warm-up over ``--rewards`` rewards; it prints rewards per minute, the ratio to fp32, the
reward itself (does the fast path keep the accuracy?) and, on a GPU, its mean utilisation
sampled by ``nvidia-smi``. Then ``--outer-steps`` outer steps of meta-training on the paper's
learner give outer steps per second and the extrapolated time of the paper's 2,000 steps.
Runs on any device; the targets it checks (300 rewards per minute, 2,000 outer steps in 10
minutes) are the H100's.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import threading
import time
from collections.abc import Callable

import torch

from envs.layers import Architecture
from gtn.meta import MetaConfig, MetaTrainer
from metaqnn.core.data import load_dataset
from metaqnn.rewards.gtn import GTNReward
from metaqnn.runinfo import run_metadata
from metaqnn.teacher.shapes import GTN_LEARNER, PAPER_LEARNERS, fixed_learner_factory, load_teacher

#: name -> GTNReward options.
VARIANTS: dict[str, dict[str, object]] = {
    "fp32": {},
    "channels-last": {"channels_last": True},
    "bf16": {"precision": "bf16"},
    "bf16+channels-last": {"precision": "bf16", "channels_last": True},
    "5seeds-sequential": {"seeds": 5, "vectorize": False},
    "5seeds-vmap": {"seeds": 5, "vectorize": True},
}


class GPUSampler:
    """Mean GPU utilisation (%) while active, from ``nvidia-smi`` polled every 100 ms; None
    without a GPU or without nvidia-smi."""

    def __init__(self, device: torch.device) -> None:
        self.enabled = device.type == "cuda" and shutil.which("nvidia-smi") is not None
        index = device.index if device.index is not None else 0
        self.cmd = [
            "nvidia-smi",
            f"--id={index}",
            "--query-gpu=utilization.gpu",
            "--format=csv,noheader,nounits",
        ]
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _poll(self) -> None:
        while not self._stop.is_set():
            out = subprocess.run(self.cmd, capture_output=True, text=True, check=False)
            if out.returncode == 0 and out.stdout.strip():
                self.samples.append(float(out.stdout.split()[0]))
            self._stop.wait(0.1)

    def __enter__(self) -> GPUSampler:
        if self.enabled:
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    @property
    def mean(self) -> float | None:
        return statistics.mean(self.samples) if self.samples else None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], object], n: int, device: torch.device) -> tuple[float, float | None]:
    """Seconds per call over ``n`` calls after one warm-up, and the GPU utilisation."""
    fn()
    _sync(device)
    with GPUSampler(device) as gpu:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        _sync(device)
        elapsed = time.perf_counter() - start
    return elapsed / n, gpu.mean


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--data-root", default=None)
    p.add_argument("--architecture", default=None, help="default: the paper's learner")
    p.add_argument("--checkpoint", default=None, help="a GTN run (default: a fresh teacher)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--rewards", type=int, default=5, help="timed rewards per variant")
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma list of variants")
    p.add_argument("--outer-steps", type=int, default=5, help="timed meta-training steps")
    args = p.parse_args()

    device = torch.device(args.device)
    data = load_dataset(args.dataset, root=args.data_root, device=device)
    arch = Architecture.parse(args.architecture or PAPER_LEARNERS[data.name])
    teacher = load_teacher(data, args.checkpoint, device)
    print(f"machine: {run_metadata(device)['device_name']}, torch {torch.__version__}")
    val = min(1000, len(data.val) or len(data.test))
    print(
        f"architecture: {arch} on {data.source}; {teacher.config.inner_steps} steps of "
        f"{teacher.config.inner_batch}, {val} validation images"
    )
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        p.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    base = None
    print(
        f"{'variant':<22} {'s/reward':>9} {'rewards/min':>12} {'x fp32':>7} {'reward':>7} "
        f"{'GPU util':>8}"
    )
    for name in names:
        options = VARIANTS[name]
        reward = GTNReward(
            teacher, data, val_size=1000, net_config=GTN_LEARNER, device=device, **options
        )  # type: ignore[arg-type]
        value = reward.evaluate(arch).reward
        per, util = _timed(lambda r=reward: r.evaluate(arch), args.rewards, device)
        base = base or per
        seeds = int(options.get("seeds", 1))  # type: ignore[call-overload]
        util_s = "-" if util is None else f"{util:.0f} %"
        print(
            f"{name:<22} {per:>9.3f} {60 / per:>12.1f} {base / per:>7.2f} {value:>7.4f} "
            f"{util_s:>8}" + (f"  ({seeds} learners per reward)" if seeds > 1 else "")
        )

    if args.outer_steps:
        factory = fixed_learner_factory(arch, data, GTN_LEARNER, device)
        fresh = load_teacher(data, None, device)
        meta = MetaConfig(outer_steps=args.outer_steps + 1, checkpoint_every=10**9, log_every=10**9)
        trainer = MetaTrainer(fresh, factory, data.train.x, data.train.y, meta)
        per, util = _timed(trainer.outer_step, args.outer_steps, device)
        util_s = "" if util is None else f", GPU utilisation {util:.0f} %"
        print(
            f"meta-training (paper learner, full backprop through {fresh.config.inner_steps} "
            f"steps, meta-batch {meta.meta_batch}): {per:.3f} s per outer step = "
            f"{1 / per:.2f} steps/s{util_s}; 2,000 outer steps extrapolated: "
            f"{2000 * per / 60:.1f} min"
        )


if __name__ == "__main__":
    main()
