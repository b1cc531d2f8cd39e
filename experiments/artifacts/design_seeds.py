"""The seeds table of ``metaqnn design`` runs, read from their folders (``summary.json``, and
the search database for the model count): each run's winner and best hand net by test error,
then each agent's mean and sd over its seeds, and, where both agents ran a seed and recorded
their test errors image by image, the two winners compared (exact McNemar). Read-only.

    python experiments/artifacts/design_seeds.py experiments/artifacts/design_mnist_capped \\
        experiments/artifacts/design_mnist_random_s0 experiments/artifacts/design_mnist_*_s[123]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from stored_search import find_db, open_store

from metaqnn.evaluation.paired import paired_errors


def _models(run: Path) -> int | None:
    """Models that trained in the run's search (None when its database is not there)."""
    if find_db(run) is None:
        return None
    store = open_store(run)
    n = sum(m.status == "ok" for m in store.models())
    store.close()
    return n


def load(run: Path) -> dict:
    """The summary of one finished run, with its winner's final row and the model count."""
    path = run / "summary.json"
    if not path.is_file():
        raise SystemExit(f"design_seeds: no summary.json in {run} (is the run finished?)")
    summary = json.loads(path.read_text())
    summary["run"] = run.name
    summary["winner_row"] = next(f for f in summary["finals"]
                                 if f["architecture"] == summary["winner"])  # fmt: skip
    summary["models"] = _models(run)
    return summary


def _pm(values: list[float], sign: str = "") -> str:
    """Mean ± sd (the value alone for one seed); ``sign="+"`` prints the mean's sign."""
    if len(values) == 1:
        return f"{values[0]:{sign}.2f}"
    return f"{statistics.mean(values):{sign}.2f} ± {statistics.stdev(values):.2f}"


def hand_gap(summary: dict) -> float:
    """The winner's test error minus that of the best hand net trained beside it, in points.

    The final phase sizes its epochs from the timed epochs of all its models, so two runs'
    winners can differ by final epochs as much as by search; this gap compares each winner with
    the hand net that had the same epochs, in the same run.
    """
    return summary["test_error_pct"] - summary["hand_baseline_test_error_pct"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="design run folders")
    runs = [load(r) for r in parser.parse_args().runs]
    runs.sort(key=lambda s: (s["seeds"][0], s["agent"]))
    print("| seed | agent | run | commit | machine | models | final epochs | winner test error % "
          "| best hand net % |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for s in runs:
        print(f"| {s['seeds'][0]} | {s['agent']} | {s['run']} | {s['commit']} | {s['machine']} | "
              f"{s['models']} | {s['final_epochs']} | {s['test_error_pct']:.2f} | "
              f"{s['hand_baseline_test_error_pct']:.2f} |")  # fmt: skip
    print()
    agents = sorted({s["agent"] for s in runs})
    for agent in agents:
        mine = [s for s in runs if s["agent"] == agent]
        seeds = ", ".join(str(s["seeds"][0]) for s in mine)
        print(f"{agent}: winner {_pm([s['test_error_pct'] for s in mine])} % over seeds {seeds}"
              f" (mean ± sd); best hand net "
              f"{_pm([s['hand_baseline_test_error_pct'] for s in mine])} %; winner minus the "
              f"hand net of its run {_pm([hand_gap(s) for s in mine], '+')} points")  # fmt: skip
    pairs = [
        [s for s in runs if s["seeds"][0] == seed] for seed in sorted({s["seeds"][0] for s in runs})
    ]
    pairs = [p for p in pairs if len(p) == 2 and p[0]["agent"] != p[1]["agent"]]
    if pairs:
        a, b = pairs[0][0]["agent"], pairs[0][1]["agent"]
        lower = sum(p[0]["test_error_pct"] < p[1]["test_error_pct"] for p in pairs)
        higher = sum(p[0]["test_error_pct"] > p[1]["test_error_pct"] for p in pairs)
        print(f"{a}'s winner lower than {b}'s at {lower} of {len(pairs)} seeds, higher at {higher}")
        closer = sum(hand_gap(p[0]) < hand_gap(p[1]) for p in pairs)
        print(f"{a}'s winner minus its run's hand net lower than {b}'s at "
              f"{closer} of {len(pairs)} seeds")  # fmt: skip
    for a, b in pairs:
        seed = a["seeds"][0]
        if not (a["winner_row"].get("test_wrong") and b["winner_row"].get("test_wrong")):
            continue
        p = paired_errors(a["winner_row"]["test_wrong"], b["winner_row"]["test_wrong"])
        print(f"seed {seed}: only {a['agent']}'s winner wrong on {p.only_a} test images, only "
              f"{b['agent']}'s on {p.only_b} (exact McNemar p = {p.p_value:.3g})")  # fmt: skip


if __name__ == "__main__":
    main()
