"""Run the benchmarks side by side and write ``bench/RESULTS.md``.

    python -m bench --data-root ../shared/data [--gtn-checkpoint RUN] [--only cost,floor]
        [--quick]

Each benchmark is its own script in ``bench/`` (run alone for more options); this runner calls
them in turn as subprocesses, prints their output as it comes, and writes each one's section,
with the machine, the date, the commit and the command, to ``bench/RESULTS.md`` (``--out``),
keeping the sections of benchmarks not rerun. Ratios measured in one run are what to quote:
absolute times drift on shared machines.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
HEADER = """# Benchmarks

Written by `python -m bench`. Each section names its command, run time, date, machine and
commit; `python -m bench --only NAME` reruns and rewrites that section and keeps the others.
Quote ratios measured within one section: absolute times drift on shared machines."""


def read_sections(path: Path) -> dict[str, str]:
    """The ``## name`` sections of an earlier ``RESULTS.md`` (name -> body), in file order."""
    if not path.is_file():
        return {}
    sections: dict[str, str] = {}
    name = None
    for line in path.read_text().splitlines():
        if line.startswith("## "):
            name = line[3:].strip()
            sections[name] = ""
        elif name is not None:
            sections[name] += line + "\n"
    return {n: body.strip("\n") for n, body in sections.items()}


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
        "dropout": ["dropout.py", "--steps", "3" if quick else "10",
                    "--repeats", "1" if quick else "3"],
    }  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", default=None)
    p.add_argument("--gtn-checkpoint", default=None, help="a meta-trained MNIST GTN run")
    p.add_argument("--only", default=None,
                   help="comma list of: cost, floor, meta, throughput, gpu, dropout")  # fmt: skip
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
    stamp = (f"{datetime.now().strftime('%Y-%m-%d %H:%M')}, {meta['device_name']}, torch "
             f"{meta['torch']}, commit {meta['git_commit']}")  # fmt: skip
    sections = read_sections(Path(args.out))
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
        sections[name] = "\n".join([
            f"`{shown}` ({time.perf_counter() - start:.0f} s; {stamp})", "",
            "```", out.stdout.strip("\n").rstrip(), "```",
        ])  # fmt: skip
    order = [n for n in benches if n in sections] + sorted(set(sections) - set(benches))
    text = [HEADER, ""] + [f"## {n}\n\n{sections[n]}\n" for n in order]
    Path(args.out).write_text("\n".join(text))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
