"""How densely a search found the top of its reward: read-only, over stored search databases.

For each database: the models that trained, their mean reward, the mean of the 10 best, how
many came within ``--within`` of the best reward of all the databases given (so a pair run at
one seed is counted against the same bar), and the epsilon at which the 3 best were drawn.

    python experiments/artifacts/search_top.py \\
        experiments/artifacts/design_mnist_qlearning_s2 \\
        experiments/artifacts/design_mnist_random_s2
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stored_search import open_store, run_name

from metaqnn.errors import CheckpointError


def rewards(db: Path) -> list[tuple[float, float]]:
    """(reward, epsilon) of every model that trained, best first (the store opened read-only)."""
    try:
        store = open_store(db)
    except CheckpointError as exc:
        raise SystemExit(f"search_top: {exc}") from None
    models = [m for m in store.models() if m.status == "ok"]
    store.close()
    return [(m.reward, m.epsilon) for m in sorted(models, key=lambda m: (-m.reward, m.id))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dbs", nargs="+", type=Path,
                        help="search.db or search.db.gz files, or run folders")  # fmt: skip
    parser.add_argument("--within", type=float, default=0.01,
                        help="count models within this of the best reward")  # fmt: skip
    args = parser.parse_args()
    runs = {db: rewards(db) for db in args.dbs}
    best = max(r[0][0] for r in runs.values() if r)
    bar = best - args.within
    print(f"best reward {best:.4f}; counting models with reward >= {bar:.4f}")
    print("| search.db | models | mean reward | mean of 10 best | within bar | epsilon of 3 best |")
    print("|---|---|---|---|---|---|")
    for db, rows in runs.items():
        top = [r for r, _ in rows[:10]]
        name = run_name(db)
        print(f"| {name} | {len(rows)} | {sum(r for r, _ in rows) / len(rows):.3f} | "
              f"{sum(top) / len(top):.4f} | {sum(r >= bar for r, _ in rows)} | "
              f"{', '.join(f'{e:g}' for _, e in rows[:3])} |")  # fmt: skip


if __name__ == "__main__":
    main()
