"""How the final phase picks its finalists from the search's ranking (metaqnn.design.picks)."""

from __future__ import annotations

import pytest

from metaqnn.design.picks import FINALIST_PICKS, head, order
from metaqnn.design.pipeline import DesignConfig, DesignState, design_candidates
from metaqnn.errors import ConfigError

CONV_A = "[C(16,3,1), SM(10)]"
CONV_B = "[C(16,3,1), C(8,1,1), SM(10)]"
CONV_C = "[C(8,5,1), SM(10)]"
FC = "[C(16,3,1), P(2,2), FC(64), SM(10)]"
GAP = "[C(16,3,1), C(32,3,1), GAP, SM(10)]"
#: A search's ranking, best reward first: conv heads on top, as on digits.
RANKED = [(CONV_A, 0.95), (CONV_B, 0.94), (CONV_C, 0.93), (FC, 0.90), (GAP, 0.70)]


@pytest.mark.parametrize(
    ("arch", "want"),
    [(CONV_A, "conv"), ("[C(16,3,1), P(2,2), SM(10)]", "conv"), (FC, "FC"), (GAP, "GAP"),
     ("[FC(64), SM(10)]", "FC"), ("[SM(10)]", "conv")],
)  # fmt: skip
def test_the_head_is_what_the_softmax_reads(arch, want):
    assert head(arch) == want


def test_heads_takes_the_heads_in_turn_best_first():
    assert order("heads", RANKED) == [RANKED[i] for i in (0, 3, 4, 1, 2)]
    fc2, gap2 = ("[C(8,3,1), P(2,2), FC(32), SM(10)]", 0.5), ("[C(8,3,1), GAP, SM(10)]", 0.4)
    assert order("heads", [*RANKED, fc2, gap2]) == [RANKED[i] for i in (0, 3, 4, 1)] + [
        fc2, gap2, RANKED[2]]  # fmt: skip
    assert order("reward", RANKED) == RANKED
    assert order("heads", []) == []
    # the heads come in the order of their best reward
    assert [a for a, _ in order("heads", [(GAP, 0.9), (CONV_A, 0.8), (FC, 0.7)])] == [
        GAP, CONV_A, FC]  # fmt: skip
    with pytest.raises(ConfigError, match="unknown finalist pick 'best'"):
        order("best", RANKED)
    assert set(FINALIST_PICKS) == {"reward", "heads"}


def test_the_finalists_follow_the_pick_and_default_to_the_preset():
    digits = DesignConfig(dataset="digits", final_width_divisor=2)
    assert digits.finalist_pick == "heads" and DesignConfig(dataset="mnist").finalist_pick == (
        "reward")  # fmt: skip
    picked = [c.search_architecture for c in design_candidates(digits, RANKED)][:3]
    assert picked == [CONV_A, FC, GAP]
    by_reward = DesignConfig(dataset="digits", final_width_divisor=2, finalist_pick="reward")
    assert [c.search_architecture for c in design_candidates(by_reward, RANKED)][:3] == [
        CONV_A, CONV_B, CONV_C]  # fmt: skip
    with pytest.raises(ConfigError, match="unknown finalist pick"):
        DesignConfig(dataset="digits", finalist_pick="best")


def test_a_run_from_before_picks_resumes_by_reward(tmp_path):
    state = DesignState.create(tmp_path, DesignConfig(dataset="digits", budget_s=300.0))
    assert state.data["config"]["finalist_pick"] == "heads"  # stored as in force
    state.data["config"].pop("finalist_pick")  # what a run before picks stored
    assert state.config.finalist_pick == "reward"


def test_every_pick_describes_itself_for_help_and_report():
    from metaqnn.design import picks

    assert all(p.help for p in FINALIST_PICKS.values())
    assert picks.sentence("reward") == ""
    assert "heads in turn" in picks.sentence("heads") and "GAP" in picks.sentence("heads")
    assert picks.help_text().startswith("reward (the best by search reward); heads (")
    with pytest.raises(ConfigError, match="unknown finalist pick 'x'"):
        picks.sentence("x")
