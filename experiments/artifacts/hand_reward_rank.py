"""Where the search's reward ranks the hand-designed baselines of a ``metaqnn design`` run.

For each run folder (``design.json`` and its search database): the reward the run's search
would have given each baseline, built as the run built it (reward, teacher, seed, search
width; the GTN reward is deterministic for a seed), and its rank among the models the search
trained. A baseline's widths need not be the space's (the MNIST nets' 32 and 64 filters are
half the space's narrowest): it is scored as the search would score the space's architecture
that it is at widths / k (the smallest power of two k that makes it one), at the search
width; whether the space's rules allow that architecture is printed beside it. A baseline
ranked low that the final phase then ranks first says the reward, not the search, stands
between the designs and the hand net.

    python experiments/artifacts/hand_reward_rank.py \\
        experiments/artifacts/design_fashion-mnist_qlearning_heads_s0
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from stored_search import find_db, open_store

from envs.layers import Architecture, Conv, FullyConnected
from envs.space import RuleViolation, SearchSpace, get_space
from metaqnn.core.widths import rescale
from metaqnn.design.pipeline import DesignState
from metaqnn.rewards.spec import RewardSpec, build_reward


def _rewards(run: Path) -> list[float]:
    """Rewards of the models that trained in the run's search."""
    if find_db(run) is None:
        raise SystemExit(f"hand_reward_rank: no search database in {run}")
    store = open_store(run)
    rewards = [m.reward for m in store.models() if m.status == "ok"]
    store.close()
    return rewards


def in_space(arch: Architecture, space: SearchSpace) -> tuple[Architecture, int]:
    """``arch`` with its widths times the smallest power of two k that makes every width one
    of ``space``'s, and k."""
    for k in (1, 2, 4, 8, 16):
        layers = tuple(
            Conv(ly.filters * k, ly.kernel, ly.stride) if isinstance(ly, Conv)
            else FullyConnected(ly.width * k) if isinstance(ly, FullyConnected) else ly
            for ly in arch.layers
        )  # fmt: skip
        if all(ly.filters in space.conv_filters for ly in layers if isinstance(ly, Conv)) and all(
            ly.width in space.fc_widths for ly in layers if isinstance(ly, FullyConnected)
        ):
            return Architecture(layers), k
    raise SystemExit(f"hand_reward_rank: no power of two maps {arch} onto {space.name}'s widths")


def _broken(arch: Architecture, space: SearchSpace) -> str | None:
    """The first rule of ``space`` that ``arch`` breaks and where (None: it is in the space)."""
    try:
        space.validate(arch)
    except RuleViolation as e:
        return f"{e.rule} at layer {e.index} {arch.layers[e.index]}"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="design run folders")
    parser.add_argument("--out", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()
    rows = []
    for run in args.runs:
        config = DesignState.open(run).config
        spec = RewardSpec(name=config.reward, dataset=config.dataset,
                          data_root=config.data_root, seed=config.seed, device=config.device,
                          epochs=config.real_epochs, gtn_checkpoint=config.gtn_checkpoint,
                          score_size=config.score_size)  # fmt: skip
        reward = build_reward(spec)
        searched = sorted(_rewards(run), reverse=True)
        space = get_space(config.dataset)
        for name, arch in config.preset.baselines.items():
            wide, k = in_space(Architecture.parse(arch), space)
            narrow = rescale(wide, space, 1, config.divisor)
            broken = _broken(wide, space)
            r = reward.evaluate(narrow).reward
            rank = 1 + sum(s > r for s in searched)
            rows.append({"run": run.name, "seed": config.seed, "baseline": name,
                         "space_architecture": str(wide), "k": k, "rules_broken": broken,
                         "search_architecture": str(narrow), "reward": r, "rank": rank,
                         "searched": len(searched), "best_reward": searched[0]})  # fmt: skip
            where = "in the space" if broken is None else f"outside the space: {broken}"
            print(f"{run.name} (seed {config.seed}): {name} = {wide} / {k}, searched as {narrow}"
                  f" ({where}): reward {r:.4f}, rank {rank} of {len(searched)} (best "
                  f"{searched[0]:.4f})", flush=True)  # fmt: skip
    if args.out is not None:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
