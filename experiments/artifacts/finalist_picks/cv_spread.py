"""The 5-fold cross-validated error of the seed_spread_heads nets over 3 seeds (each seed moves
both the fold split and the trainings' seeds), on digits, with the final recipe.

    python experiments/artifacts/finalist_picks/cv_spread.py [--data-root ../shared/data]
"""

import argparse
import json
import statistics
from pathlib import Path

from envs.layers import Architecture
from metaqnn.core.data import load_dataset
from metaqnn.core.recipes import recipe_config
from metaqnn.design.pipeline import FINAL_NET
from metaqnn.design.selection import measure

nets = {
    "hand": "[C(32,3,1), C(64,3,1), P(2,2), FC(128), SM(10)]",
    "GAP a": "[C(64,5,1), C(32,5,1), P(3,2), GAP, SM(10)]",
    "GAP b": "[C(16,5,1), C(64,3,1), C(32,5,1), P(3,2), GAP, SM(10)]",
    "GAP c": "[C(16,5,1), C(32,5,1), C(64,5,1), P(3,2), GAP, SM(10)]",
    "FC": "[C(64,5,1), C(64,5,1), P(2,2), FC(128), SM(10)]",
}
parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--data-root", default="../shared/data", help="folder holding digits")
data = load_dataset("digits", root=parser.parse_args().data_root, device="cpu", seed=0)
out = {}
for name, a in nets.items():
    accs = []
    for seed in range(3):
        base = recipe_config("strong", epochs=15, seed=100 * seed)

        def config_for(n, base=base):
            return base

        m = measure(Architecture.parse(a), data, config_for, FINAL_NET, "cpu", folds=5)
        accs.append(100 - 100 * m.selection_accuracy)
    out[name] = accs
    print(name, [round(x, 2) for x in accs], round(statistics.mean(accs), 2), flush=True)
Path(__file__).with_name("cv_spread.json").write_text(json.dumps(out, indent=1))
