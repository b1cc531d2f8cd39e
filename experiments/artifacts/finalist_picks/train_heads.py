"""Offline, over stored make demo run folders: the best three designs of each classifier head
(conv, FC, GAP) by search reward, the first two of each trained as the final phase trains
(5-fold cross-validation + refit, the run's seed and recipe) unless the run trained it already.

    python experiments/artifacts/finalist_picks/train_heads.py runs/demo-X-s0 ...
"""

import json
import sqlite3
import sys
from pathlib import Path

from envs.layers import Architecture
from envs.space import get_space
from metaqnn.design.finals import Candidate, full_width, train_final
from metaqnn.design.picks import head
from metaqnn.design.pipeline import FINAL_NET, DesignState, final_train_config, load_data

out = {}
Path("runs/finalist_picks").mkdir(parents=True, exist_ok=True)
for run in sys.argv[1:]:
    rd = Path(run)
    state = DesignState.open(rd)
    config = state.config
    data = load_data(config)
    space = get_space("digits")
    db = sqlite3.connect(rd / "search/search.db")
    rows = db.execute(
        "select architecture, reward from models where status='ok' order by reward desc, id"
    ).fetchall()
    base = {c["architecture"] for c in state.data["final_pool"] if c["kind"] == "baseline"}
    by = {"conv": [], "FC": [], "GAP": []}
    for i, (a, r) in enumerate(rows):
        wide = str(full_width(Architecture.parse(a), space, config.divisor))
        if wide in base or any(w == wide for w, _, _ in by[head(a)]):
            continue
        by[head(a)].append((wide, r, i + 1))
    res = {}
    for h in ("conv", "FC", "GAP"):
        for k in range(3):
            wide, r, rank = by[h][k]
            key = f"{h}{k + 1}"
            got = None
            for f in state.data["finals"].values():
                if f["architecture"] == wide and f["width_divisor"] == 1:
                    got = (f["val_accuracy"], f["test_accuracy"])
            if got is None and k < 2:
                t = train_final(
                    Candidate(key, "design", wide, None, r),
                    data,
                    final_train_config(config),
                    FINAL_NET,
                    "cpu",
                    Path(f"runs/finalist_picks/{rd.name}-{key}.pt"),
                    progress=False,
                    folds=config.folds,
                )
                got = (t.val_accuracy, t.test_accuracy)
            if got:
                res[key] = dict(
                    arch=wide, reward=r, rank=rank, cv=got[0], test_err=100 - 100 * got[1]
                )
                print(
                    rd.name,
                    key,
                    rank,
                    f"{r:.3f}",
                    wide,
                    f"cv {100 * got[0]:.2f} err {100 - 100 * got[1]:.2f}",
                    flush=True,
                )
    hand = max(
        (f for f in state.data["finals"].values() if f["kind"] == "baseline"),
        key=lambda f: f["test_accuracy"],
    )
    res["hand"] = dict(cv=hand["val_accuracy"], test_err=100 - 100 * hand["test_accuracy"])
    summary = json.loads((rd / "summary.json").read_text())
    won = next(f for f in summary["finals"] if f["architecture"] == summary["winner"])
    res["commit"] = summary.get("commit")
    res["run_winner"] = dict(arch=summary["winner"], cv=won["val_accuracy"],
                             test_err=summary["test_error_pct"],
                             finalist_pick=summary.get("finalist_pick", "reward"),
                             width_divisor=won["width_divisor"])  # fmt: skip
    out[rd.name] = res
    Path("experiments/artifacts/finalist_picks/heads.json").write_text(json.dumps(out, indent=1))
