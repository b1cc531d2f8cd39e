"""Offline, over stored make demo run folders: the best three designs of each classifier head
(conv, FC, GAP) by search reward, the first two of each trained as the final phase trains
(5-fold cross-validation + refit, the run's seed and recipe) unless the run trained it already.

    python experiments/artifacts/finalist_picks/train_heads.py runs/demo-X-s0 ...
    python experiments/artifacts/finalist_picks/train_heads.py --list runs/demo-X-s0  # no training
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from envs.layers import Architecture
from metaqnn.design.finals import Candidate, full_width, train_final
from metaqnn.design.picks import HEADS, head
from metaqnn.design.pipeline import FINAL_NET, DesignState, final_train_config, load_data
from metaqnn.search.store import SearchStore

OUT = Path("experiments/artifacts/finalist_picks/heads.json")
#: Designs kept per head, and how many of them are trained when the run did not train them.
KEEP, TRAIN = 3, 2


def picks(run: Path, state: DesignState) -> dict[str, list[tuple[str, float, int]]]:
    """The best :data:`KEEP` designs of each head at full width, as (architecture, search
    reward, rank by reward among the run's models): hand nets and repeats skipped."""
    config = state.config
    store = SearchStore.open(run / "search", readonly=True)
    models = sorted((m for m in store.models() if m.status == "ok"),
                    key=lambda m: (-m.reward, m.id))  # fmt: skip
    store.close()
    hand = {c["architecture"] for c in state.data["final_pool"] if c["kind"] == "baseline"}
    by: dict[str, list[tuple[str, float, int]]] = {h: [] for h in HEADS}
    for rank, m in enumerate(models, start=1):
        wide = str(full_width(Architecture.parse(m.architecture), config.full_space(),
                              config.divisor))  # fmt: skip
        kept = by[head(m.architecture)]
        if wide not in hand and len(kept) < KEEP and all(w != wide for w, _, _ in kept):
            kept.append((wide, m.reward, rank))
    return by


def trained(state: DesignState, wide: str) -> tuple[float, float] | None:
    """(validation, test accuracy) of ``wide`` if the run trained it at full width."""
    got = None
    for f in state.data["finals"].values():
        if f["architecture"] == wide and f["width_divisor"] == 1:
            got = (f["val_accuracy"], f["test_accuracy"])
    return got


def study(run: Path, *, train: bool) -> dict:
    """One run's row of ``heads.json``; ``train=False`` only prints the picks."""
    state = DesignState.open(run)
    config = state.config
    data = load_data(config) if train else None
    res: dict = {}
    for h, kept in picks(run, state).items():
        for k, (wide, reward, rank) in enumerate(kept):
            key = f"{h}{k + 1}"
            got = trained(state, wide)
            if got is None and k < TRAIN and data is not None:
                Path("runs/finalist_picks").mkdir(parents=True, exist_ok=True)
                t = train_final(Candidate(key, "design", wide, None, reward), data,
                                final_train_config(config), FINAL_NET, "cpu",
                                Path(f"runs/finalist_picks/{run.name}-{key}.pt"),
                                progress=False, folds=config.folds)  # fmt: skip
                got = (t.val_accuracy, t.test_accuracy)
            shown = f"cv {100 * got[0]:.2f} err {100 - 100 * got[1]:.2f}" if got else "-"
            print(run.name, key, rank, f"{reward:.3f}", wide, shown, flush=True)
            if got:
                res[key] = dict(arch=wide, reward=reward, rank=rank, cv=got[0],
                                test_err=100 - 100 * got[1])  # fmt: skip
    hand = max((f for f in state.data["finals"].values() if f["kind"] == "baseline"),
               key=lambda f: f["test_accuracy"])  # fmt: skip
    res["hand"] = dict(cv=hand["val_accuracy"], test_err=100 - 100 * hand["test_accuracy"])
    summary = json.loads((run / "summary.json").read_text())
    won = next(f for f in summary["finals"] if f["architecture"] == summary["winner"])
    res["commit"] = summary.get("commit")
    res["run_winner"] = dict(arch=summary["winner"], cv=won["val_accuracy"],
                             test_err=summary["test_error_pct"],
                             finalist_pick=summary.get("finalist_pick", "reward"),
                             width_divisor=won["width_divisor"])  # fmt: skip
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="make demo run folders")
    parser.add_argument("--list", action="store_true",
                        help="print each run's picks and what it trained; train nothing, "
                             "write nothing")  # fmt: skip
    args = parser.parse_args()
    out = {}
    for run in args.runs:
        out[run.name] = study(run, train=not args.list)
        if not args.list:
            OUT.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
