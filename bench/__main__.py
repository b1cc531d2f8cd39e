"""Run the benchmarks side by side and write ``bench/RESULTS.md``.

    python -m bench --data-root ../shared/data [--gtn-checkpoint RUN] [--only cost,floor]
        [--quick]

Each benchmark is its own script in ``bench/`` (run alone for more options); this runner calls
them in turn as subprocesses, prints their output as it comes, and writes everything, with the
machine, the date and the commands, to ``bench/RESULTS.md`` (``--out``). Ratios measured in one
run are what to quote: absolute times drift on shared machines.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _benches(args: argparse.Namespace) -> dict[str, list[str]]:
    root = ["--data-root", args.data_root] if args.data_root else []
    ckpt = ["--checkpoint", args.gtn_checkpoint] if args.gtn_checkpoint else []
    quick = args.quick
    return {
        "cost": ["gtn_cost.py", "--dataset", "mnist", *root, *ckpt,
                 "--repeats", "2" if quick else "3"],
        "floor": ["gtn_floor.py", "--dataset", "mnist", *root, *ckpt,
                  "--samples", "2" if quick else "4", "--repeats", "2" if quick else "3"],
        "meta": ["gtn_meta_memory.py", "--dataset", "mnist", *root,
                 "--steps", "8" if quick else "8,16,32", "--repeats", "1" if quick else "2",
                 "--architecture", "[C(16,3,1), P(2,2), FC(32), SM(10)]"],
        "throughput": ["search_throughput.py", "--dataset", "mnist", *root,
                       *(["--gtn-checkpoint", args.gtn_checkpoint] if args.gtn_checkpoint
                         else ["--reward", "real", "--epochs", "1"]),
                       "--width-divisor", "16", "--models", "6" if quick else "30"],
        "gpu": ["gpu_path.py", "--dataset", "mnist", *root, *ckpt, "--device", args.device,
                "--rewards", "2" if quick else "10", "--outer-steps", "2" if quick else "10"],
    }  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", default=None)
    p.add_argument("--gtn-checkpoint", default=None, help="a meta-trained MNIST GTN run")
    p.add_argument("--only", default=None,
                   help="comma list of: cost, floor, meta, throughput, gpu")  # fmt: skip
    p.add_argument("--device", default="cpu", help="device of the gpu benchmark (fast paths)")
    p.add_argument("--quick", action="store_true", help="fewer repeats and sizes")
    p.add_argument("--out", default=str(HERE / "RESULTS.md"))
    args = p.parse_args()
    benches = _benches(args)
    names = args.only.split(",") if args.only else list(benches)
    unknown = sorted(set(names) - set(benches))
    if unknown:
        p.error(f"unknown benchmarks {unknown}; choose from {sorted(benches)}")
    from metaqnn.runinfo import run_metadata

    meta = run_metadata(args.device)
    sections = [
        "# Benchmarks", "",
        f"Written by `python -m bench {' '.join(sys.argv[1:])}` on "
        f"{datetime.now().strftime('%Y-%m-%d %H:%M')}, {meta['device_name']}, torch "
        f"{meta['torch']}, commit {meta['git_commit']}.", "",
    ]  # fmt: skip
    for name in names:
        cmd = [sys.executable, str(HERE / benches[name][0]), *benches[name][1:]]
        shown = "python bench/" + " ".join(f"'{a}'" if " " in a else a for a in benches[name])
        print(f"\n$ {shown}", flush=True)
        start = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True)
        print(out.stdout, end="", flush=True)
        if out.returncode:
            print(out.stderr, file=sys.stderr)
            raise SystemExit(f"benchmark {name} failed")
        sections += [f"## {name}", "", f"`{shown}` ({time.perf_counter() - start:.0f} s)", "",
                     "```", out.stdout.strip("\n").rstrip(), "```", ""]  # fmt: skip
    Path(args.out).write_text("\n".join(sections))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
