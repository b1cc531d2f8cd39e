"""The table of experiments/RESULTS.md ("Finalists from every classifier head") from heads.json:
per stored demo search, the winner that each finalist pick would take (the best
cross-validated accuracy, ties to the earlier finalist) and its test error.

    python experiments/artifacts/finalist_picks/tally.py
"""

import json
from pathlib import Path

HERE = Path(__file__).parent
PICKS = {
    "heads, 3": ["conv1", "FC1", "GAP1"],
    "heads, 5": ["conv1", "FC1", "GAP1", "conv2", "FC2"],
}


def winner(res: dict, keys: list[str]) -> tuple[str, dict]:
    """The finalist with the best cv accuracy (ties: the earlier one)."""
    best = max(keys, key=lambda k: (res[k]["cv"], -keys.index(k)))
    return best, res[best]


def main() -> None:
    runs = json.loads((HERE / "heads.json").read_text())
    print("| search at | seed | reward rank of the best FC / GAP design | winner by reward "
          "(the run's): test error % | " + " | ".join(f"{p}: winner, cv acc %, test error %"
                                                    for p in PICKS)
          + " | best hand net: cv acc %, test error % |")  # fmt: skip
    print("|---" * (4 + len(PICKS)) + "|---|")
    errors: dict[str, list[float]] = {"by reward": [], **{p: [] for p in PICKS}, "hand": []}
    record = {p: [0, 0, 0] for p in PICKS}  # beats, ties, trails the hand net
    for name, res in runs.items():
        ran = res["run_winner"]
        by_reward = "not run"
        if ran["finalist_pick"] == "reward":
            by_reward = f"{ran['test_err']:.2f}"
            errors["by reward"].append(ran["test_err"])
        hand = res["hand"]["test_err"]
        errors["hand"].append(hand)
        cells = []
        for pick, keys in PICKS.items():
            key, won = winner(res, keys)
            errors[pick].append(won["test_err"])
            diff = round(won["test_err"] - hand, 6)
            record[pick][0 if diff < 0 else 1 if diff == 0 else 2] += 1
            cells.append(f"{key}: {100 * won['cv']:.2f}, {won['test_err']:.2f}")
        print(f"| {res['commit']} | {name.rsplit('-s', 1)[1]} | {res['FC1']['rank']} / "
              f"{res['GAP1']['rank']} | {by_reward} | {' | '.join(cells)} | "
              f"{100 * res['hand']['cv']:.2f}, {hand:.2f} |")  # fmt: skip
    for label, values in errors.items():
        print(f"{label}: mean test error {sum(values) / len(values):.2f} % over {len(values)}")
    for pick, (beats, ties, trails) in record.items():
        print(f"{pick}: beats the hand net in {beats}, ties in {ties}, trails in {trails}")


if __name__ == "__main__":
    main()
