"""Meta-training cost: time and peak memory of one GTN outer step with full backpropagation
through the unroll, with gradient checkpointing, and with truncation, against unroll length.

    python bench/gtn_meta_memory.py --dataset mnist --data-root ../shared/data \\
        [--architecture "[...]"] [--steps 8,16,32] [--modes full,checkpoint,truncate8]

Every (mode, unroll length) runs in its own process, so peak memory is that process's own
(``ru_maxrss`` on CPU, ``torch.cuda.max_memory_allocated`` on a GPU), measured from after the
data are loaded. The first outer step is a warm-up; the time is the median of the next ones.
Ratios to the full-backpropagation row of the same length are what to quote.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch

MODES = {
    "full": {},
    "checkpoint": {"checkpoint": True},
    "truncate8": {"truncate": 8},
}


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _current_rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def measure(args: argparse.Namespace) -> dict:
    """One (mode, unroll length): this process's time per outer step and peak memory."""
    from envs.layers import Architecture
    from gtn.meta import MetaConfig, MetaTrainer
    from gtn.teacher import GTNTeacher
    from metaqnn.core.data import load_dataset
    from metaqnn.teacher.shapes import (
        GTN_LEARNER,
        PAPER_LEARNERS,
        fixed_learner_factory,
        teacher_config,
    )

    torch.manual_seed(0)
    device = torch.device(args.device)
    data = load_dataset(args.dataset, root=args.data_root, device=device)
    arch = Architecture.parse(args.architecture or PAPER_LEARNERS[data.name])
    teacher = GTNTeacher(
        teacher_config(data, inner_steps=args.length, inner_batch=args.inner_batch)
    ).to(device)
    factory = fixed_learner_factory(arch, data, GTN_LEARNER, device)
    meta = MetaConfig(outer_steps=args.repeats + 1, meta_batch=args.meta_batch,
                      **MODES[args.mode])  # fmt: skip
    trainer = MetaTrainer(teacher, factory, data.train.x, data.train.y, meta)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() / 2**20
    else:
        base = _current_rss_mib()
    times = []
    for i in range(args.repeats + 1):
        start = time.perf_counter()
        trainer.outer_step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else _rss_mib()
    return {"mode": args.mode, "length": args.length, "seconds": statistics.median(times),
            "peak_mib": peak - base}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--data-root", default=None)
    p.add_argument("--architecture", default=None, help="default: the paper's learner")
    p.add_argument("--steps", default="8,16,32", help="unroll lengths")
    p.add_argument("--modes", default="full,checkpoint,truncate8")
    p.add_argument("--inner-batch", type=int, default=128)
    p.add_argument("--meta-batch", type=int, default=128)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--mode", help=argparse.SUPPRESS)
    p.add_argument("--length", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.mode:  # a child process: one measurement, as JSON
        print(json.dumps(measure(args)))
        return

    from metaqnn.runinfo import device_name

    modes = args.modes.split(",")
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        p.error(f"unknown modes {unknown}; choose from {sorted(MODES)}")
    rows = []
    for length in (int(s) for s in args.steps.split(",")):
        for mode in modes:
            if mode.startswith("truncate") and MODES[mode]["truncate"] >= length:
                continue
            cmd = [sys.executable, __file__, "--mode", mode, "--length", str(length)]
            for flag in ("dataset", "data_root", "architecture", "inner_batch", "meta_batch",
                         "repeats", "device"):  # fmt: skip
                value = getattr(args, flag)
                if value is not None:
                    cmd += [f"--{flag.replace('_', '-')}", str(value)]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode:
                print(out.stderr, file=sys.stderr)
                raise SystemExit(f"measurement {mode} x {length} failed")
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            r = rows[-1]
            print(f"  {mode:>11} {length:>3} steps: {r['seconds']:.2f} s/outer step, "
                  f"peak +{r['peak_mib']:.0f} MiB", flush=True)  # fmt: skip
    print(f"\n{device_name(args.device)}, torch {torch.__version__}, "
          f"architecture {args.architecture or 'the paper learner'}")  # fmt: skip
    print("| unroll | mode | s / outer step | time vs full | peak memory (MiB) | vs full |")
    print("|---|---|---|---|---|---|")
    full = {r["length"]: r for r in rows if r["mode"] == "full"}
    for r in rows:
        ref = full.get(r["length"])
        t = f"{r['seconds'] / ref['seconds']:.2f}x" if ref else "-"
        m = f"{r['peak_mib'] / ref['peak_mib']:.2f}x" if ref else "-"
        print(f"| {r['length']} | {r['mode']} | {r['seconds']:.2f} | {t} | "
              f"{r['peak_mib']:.0f} | {m} |")  # fmt: skip


if __name__ == "__main__":
    main()
