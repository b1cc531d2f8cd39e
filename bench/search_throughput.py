"""Search throughput: architectures evaluated per minute with 1 worker (in process, all CPU
threads) and with N worker processes (threads split between them), side by side in one run.

    python bench/search_throughput.py --dataset digits --gtn-checkpoint runs/demo/gtn \\
        --models 40 --workers 1,2

Each setting runs a fresh search (same seed, epsilon 1.0 so the agent's choices do not depend
on the rewards) for ``--models`` unique models in a temporary folder; the time includes the
workers' start-up (loading data and the teacher), as a real search pays it once.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from metaqnn.rewards.spec import RewardSpec
from metaqnn.runinfo import device_name
from metaqnn.search.loop import Search, SearchConfig


def run(spec: RewardSpec, workers: int, models: int, width_divisor: int) -> tuple[float, float]:
    """(seconds, mean reward) of a search of ``models`` unique models."""
    config = SearchConfig(reward=spec, schedule=f"1.0:{models}", workers=workers,
                          width_divisor=width_divisor,
                          backend="inline" if workers == 1 else "process")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        search = Search.create(config, Path(tmp) / "run")
        records = search.run(progress=False)
        search.close()
        seconds = time.perf_counter() - start
    return seconds, sum(r.reward for r in records) / len(records)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="digits")
    p.add_argument("--data-root", default=None)
    p.add_argument("--reward", default="gtn", choices=["gtn", "real"])
    p.add_argument("--gtn-checkpoint", default=None)
    p.add_argument("--epochs", type=int, default=1, help="real reward: epochs")
    p.add_argument("--score-size", type=int, default=1000)
    p.add_argument("--width-divisor", type=int, default=1)
    p.add_argument("--models", type=int, default=40)
    p.add_argument("--workers", default="1,2")
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    spec = RewardSpec(name=args.reward, dataset=args.dataset, data_root=args.data_root,
                      gtn_checkpoint=args.gtn_checkpoint, epochs=args.epochs,
                      score_size=args.score_size, device=args.device)  # fmt: skip
    rows = []
    for workers in (int(w) for w in args.workers.split(",")):
        seconds, mean = run(spec, workers, args.models, args.width_divisor)
        rows.append((workers, seconds, args.models / seconds * 60, mean))
        print(f"  {workers} worker(s): {seconds:.1f} s, {rows[-1][2]:.1f} models/min", flush=True)
    base = rows[0][2]
    print(
        f"\n{device_name(args.device)}; {args.models} models, reward {args.reward} on "
        f"{args.dataset}"
    )
    print("| workers | seconds | models / min | vs first | mean reward |")
    print("|---|---|---|---|---|")
    for workers, seconds, rate, mean in rows:
        print(f"| {workers} | {seconds:.1f} | {rate:.1f} | {rate / base:.2f}x | {mean:.4f} |")


if __name__ == "__main__":
    main()
