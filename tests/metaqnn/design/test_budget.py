"""Budgets, presets and the final phase's arithmetic of ``metaqnn design``."""

from __future__ import annotations

import pytest

from envs.layers import Architecture
from envs.space import get_space
from metaqnn.core.nets import count_flops
from metaqnn.design.budget import BudgetPlan, format_duration, parse_duration
from metaqnn.design.finals import (
    choose_epochs,
    epochs_label,
    full_width,
    rescale,
    widest_fitting,
)
from metaqnn.design.presets import PRESETS, get_preset
from metaqnn.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("2h", 7200), ("90m", 5400), ("1h30m", 5400), ("45s", 45), ("600", 600), ("1.5h", 5400)],
)
def test_durations_parse(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "2 hours", "-5m", "0", "nan", "inf", "h", "5x"])
def test_bad_durations_are_one_line_errors(text):
    with pytest.raises(ConfigError, match="--budget"):
        parse_duration(text)


def test_durations_format():
    assert [format_duration(s) for s in (5400, 75, 7200, 0.4)] == ["1h30m", "1m15s", "2h", "0s"]


def test_the_budget_splits_by_shares_and_refuses_bad_ones():
    plan = BudgetPlan.split(7200, (0.25, 0.35, 0.4))
    assert (plan.teacher_s, plan.search_s, plan.final_s) == pytest.approx((1800, 2520, 2880))
    assert "final training" in plan.describe() and "40%" in plan.describe()
    assert "search (random, real reward)" in plan.describe("random, real reward")
    for shares in [(0.5, 0.5, 0.5), (-0.1, 0.6, 0.5), (1.0, 0.0)]:
        with pytest.raises(ConfigError, match="shares"):
            BudgetPlan.split(100, shares)


def test_the_final_share_beyond_what_the_final_training_can_use_goes_to_the_search():
    plan = BudgetPlan.split(300, (0.25, 0.35, 0.4))
    assert plan.reserve_final(None) == plan and plan.reserve_final(500.0) == plan
    cut = plan.reserve_final(50.0)
    assert (cut.teacher_s, cut.search_s, cut.final_s) == pytest.approx((75, 175, 50))
    assert cut.given_to_search_s == pytest.approx(70) and cut.total_s == 300
    assert "1m10s of the final share" in cut.describe()
    assert "final share" not in plan.describe()


def test_the_final_need_is_the_recipes_epochs_of_every_model_with_a_margin(tmp_path):
    from metaqnn.design import final_budget
    from metaqnn.design.final_budget import final_need_s
    from metaqnn.design.pipeline import DesignConfig, DesignState

    config = DesignConfig(dataset="digits", budget_s=300.0, logdir=str(tmp_path), finalists=3,
                          shares=(0.25, 0.35, 0.4))  # fmt: skip
    costs = {"hand a": 0.2, "hand b": 0.3}  # seconds per epoch of the strong recipe (15 epochs)
    designs = 3 * final_budget.DESIGN_EPOCH_ALLOWANCE * 0.3
    need = final_budget.FINAL_NEED_MARGIN * 15 * (0.5 + designs) / 0.9
    assert final_need_s(config, costs) == pytest.approx(need) == pytest.approx(57.5)
    no_hands = DesignConfig(dataset="digits", budget_s=300.0, baselines=False, finalists=3)
    assert final_need_s(no_hands, costs) == pytest.approx(1.5 * 15 * designs / 0.9)
    assert final_need_s(DesignConfig(dataset="digits", budget_s=300.0,
                                     final_width_divisor=2), costs) is None  # fmt: skip

    # the run's plan: the search gets the rest of the final share, and what the plan and the
    # teacher left of theirs
    state = DesignState.create(tmp_path, config)
    assert state.plan() == config.plan()  # a run from before the need was recorded
    state.data["final_need_s"] = final_need_s(config, costs)
    assert state.plan().final_s == pytest.approx(57.5)
    assert state.plan().search_s == pytest.approx(105 + 120 - 57.5)
    state.add_time("plan", 2.0)
    state.add_time("teacher", 68.0)
    assert state.search_left() == pytest.approx(300 - 57.5 - 70)
    state.add_time("search", 100.0)
    assert state.search_left() == pytest.approx(300 - 57.5 - 170)


def test_full_width_undoes_the_search_width():
    space = get_space("mnist")
    narrow = Architecture.parse("[C(4,3,1), P(2,2), C(32,5,1), FC(16), FC(8), SM(10)]")
    wide = full_width(narrow, space, 16)
    assert str(wide) == "[C(64,3,1), P(2,2), C(512,5,1), FC(256), FC(128), SM(10)]"
    assert full_width(wide, space, 1) == wide
    with pytest.raises(ConfigError, match="5 filters"):
        full_width(Architecture.parse("[C(5,3,1), SM(10)]"), space, 16)


def test_rescale_moves_between_any_two_widths():
    space = get_space("mnist")
    narrow = Architecture.parse("[C(4,3,1), P(2,2), C(32,5,1), FC(16), SM(10)]")
    assert str(rescale(narrow, space, 16, 4)) == "[C(16,3,1), P(2,2), C(128,5,1), FC(64), SM(10)]"
    assert rescale(narrow, space, 16, 16) == narrow


def test_widest_fitting_narrows_only_as_far_as_the_flops_cap_needs():
    space = get_space("mnist")
    shape = {"in_channels": 1, "input_size": 28}
    narrow = Architecture.parse("[C(32,5,1), C(32,5,1), P(2,2), FC(32), SM(10)]")
    flops = {d: count_flops(rescale(narrow, space, 16, d), **shape) for d in (1, 2, 4, 8, 16)}
    assert flops[1] > flops[2] > flops[4] > flops[8] > flops[16]
    assert widest_fitting(narrow, space, 16, flops[1], **shape)[1] == 1
    wide, divisor = widest_fitting(narrow, space, 16, flops[4] + 1, **shape)
    assert divisor == 4 and wide == rescale(narrow, space, 16, 4)
    # nothing fits: the search width itself, never narrower
    assert widest_fitting(narrow, space, 16, 1, **shape) == (narrow, 16)


def test_epochs_fit_the_time_left():
    assert choose_epochs(100, [1.0, 2.0], most=20) == 20
    assert choose_epochs(100, [10.0, 20.0], most=20) == 3  # 0.9 * 100 / 30
    # the budget binds: tenths of an epoch, rounded down, so no whole epoch's slack is idle
    assert choose_epochs(110, [10.0, 20.0], most=20) == 3.3  # 0.9 * 110 / 30 = 3.3
    assert choose_epochs(115, [10.0, 20.0], most=20) == 3.4  # 3.45
    assert choose_epochs(10, [10.0, 20.0], most=20) == 0.3  # < 1: refused by the final phase
    assert epochs_label(7) == epochs_label(7.0) == "7" and epochs_label(3.4) == "3.4"


def test_a_fractional_epoch_count_becomes_a_step_budget():
    from metaqnn.design.pipeline import DesignConfig, final_train_config

    config = DesignConfig(dataset="mnist")
    whole = final_train_config(config, 7, train_size=1000)
    assert whole.epochs == 7 and whole.steps is None
    part = final_train_config(config, 3.4, train_size=1000)  # 7 steps of 128 per pass
    assert part.steps == 24 and part.epochs == 4 and part.schedule == whole.schedule
    with pytest.raises(ValueError, match="train_size"):
        final_train_config(config, 3.4)


def test_the_final_precision_reaches_every_final_training_config():
    from metaqnn.design.pipeline import DesignConfig, final_train_config

    assert final_train_config(DesignConfig(dataset="mnist")).precision == "fp32"
    config = DesignConfig(dataset="mnist", precision="bf16")
    assert final_train_config(config).precision == "bf16"
    assert final_train_config(config, 3.4, train_size=1000).precision == "bf16"


def test_a_partial_last_pass_counts_as_a_fraction_of_an_epoch(tmp_path):
    import dataclasses
    from types import SimpleNamespace

    import torch

    from metaqnn.core.data import Split
    from metaqnn.core.nets import NetConfig
    from metaqnn.core.recipes import recipe_config
    from metaqnn.design.finals import Candidate, train_final

    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(256, 1, 8, 8, generator=gen), torch.randint(0, 10, (256,), generator=gen)
    train, small = Split(x, y), Split(x[:32], y[:32])
    data = SimpleNamespace(name="digits", spec=SimpleNamespace(input_shape=(1, 8, 8)),
                           train=train, val=small, test=small, mean=(0.0,), std=(1.0,))  # fmt: skip
    config = dataclasses.replace(recipe_config("strong", epochs=2), steps=3)  # 2 steps a pass
    arch = "[C(4,3,1), SM(10)]"
    candidate = Candidate(name="hand: tiny", kind="baseline", architecture=arch,
                          search_reward=None)  # fmt: skip
    result = train_final(candidate, data, config, NetConfig(), "cpu", tmp_path / "m.pt",
                         progress=False, split={"seed": 7, "val_size": 32})  # fmt: skip
    assert result.epochs == 1.5
    # the checkpoint says which split held out the validation images, for `metaqnn evaluate`
    from metaqnn.core.checkpoint import load_checkpoint

    assert load_checkpoint(tmp_path / "m.pt").split == {"seed": 7, "val_size": 32}


def test_every_preset_has_buildable_baselines():
    for name, preset in PRESETS.items():
        assert preset.baselines and preset.width_divisor >= 1, name
        for arch in preset.baselines.values():
            assert Architecture.parse(arch).num_classes == 10
    with pytest.raises(ConfigError, match="no preset for dataset 'svhn'"):
        get_preset("svhn")


def test_the_flops_cap_shares_what_the_baselines_leave():
    from types import SimpleNamespace

    from metaqnn.design.final_budget import final_flops_cap
    from metaqnn.design.pipeline import DesignConfig, final_train_config

    config = DesignConfig(dataset="mnist", finalists=2)
    data = SimpleNamespace(spec=SimpleNamespace(input_shape=(1, 28, 28)))
    flops = {n: count_flops(Architecture.parse(a), in_channels=1, input_size=28)
             for n, a in config.preset.baselines.items()}  # fmt: skip
    costs = {n: 1e-8 * f for n, f in flops.items()}  # 1e-8 s per FLOP, exactly
    epochs = final_train_config(config).epochs
    # room for the baselines and two designs of 30 s per epoch each
    left = (sum(costs.values()) + 2 * 30.0) * epochs / 0.9
    assert final_flops_cap(config, data, costs, left) == pytest.approx(30.0 / 1e-8)
    # no room left: a design may still cost as much as the cheapest baseline
    assert final_flops_cap(config, data, costs, 1.0) == pytest.approx(min(flops.values()))


def test_a_finalist_that_costs_too_much_gives_its_place_and_the_pool_is_kept(tmp_path, monkeypatch):
    from types import SimpleNamespace

    import metaqnn.design.final_pool as pool_module
    from metaqnn.design.pipeline import DesignConfig, DesignState

    config = DesignConfig(dataset="digits", budget_s=1000.0, finalists=2, logdir=str(tmp_path),
                          width_divisor=1)  # the ranked designs are at full width  # fmt: skip
    state = DesignState.create(tmp_path, config)
    state.data["baseline_epoch_costs"] = {n: 1.0 for n in config.preset.baselines}
    data = SimpleNamespace(spec=SimpleNamespace(input_shape=(1, 8, 8)))
    ranked = [("[C(64,3,1), C(64,3,1), C(64,3,1), SM(10)]", 0.9),  # deep and wide: dear
              ("[C(16,3,1), SM(10)]", 0.8), ("[C(32,3,1), SM(10)]", 0.7)]  # fmt: skip
    measured = []

    def fake_epoch(config, data, arch):
        measured.append(str(arch))
        return 1000.0 if str(arch).count("C(64") == 3 else 1.0

    monkeypatch.setattr(pool_module, "final_epoch_seconds", fake_epoch)
    pool = pool_module.final_pool(state, data, ranked)
    designs = [c for c in pool if c.kind == "design"]
    assert [c.architecture for c in designs] == [ranked[1][0], ranked[2][0]]
    assert [c.name for c in designs] == ["design 1", "design 2"]
    assert len(measured) == 3
    # a resume trains the same pool without measuring again
    monkeypatch.setattr(pool_module, "final_epoch_seconds", lambda *a, **k: 1 / 0)
    again = pool_module.final_pool(DesignState.open(tmp_path), data, ranked)
    assert again == pool


def test_the_report_names_the_schedule_the_search_was_resized_to():
    """The report once printed only the schedule planned from the probes (5,791 models in the
    2-hour MNIST run), not the 1,295 the search was re-sized to and ran."""
    from metaqnn.design.report import _search_sentence

    planned = {"seconds_per_model": 0.5, "schedule": "1.0:10"}
    assert _search_sentence(planned) == (
        "0.50 s per model measured before the search, schedule `1.0:10`"
    )
    ran = planned | {"models": 4, "final_schedule": "1.0:4"}
    text = _search_sentence(ran)
    assert text.startswith("4 models; 0.50 s per model") and text.endswith("to `1.0:4`")
    assert _search_sentence(planned | {"models": 10, "final_schedule": "1.0:10"}) == (
        _search_sentence(planned)
    )


class _FakeTraining:
    """A stand-in for ``train_architecture`` on a fake clock: ``fixed`` seconds per run plus
    ``step`` per step, ``first`` more on the first run (a one-off cost) and ``noise[i]`` more
    on the i-th run."""

    def __init__(self, fixed: float, step: float, first: float = 0.0, noise=(), val: float = 0.0,
                 epoch_steps: int = 1):  # fmt: skip
        self.now, self.fixed, self.step, self.first = 0.0, fixed, step, first
        self.noise, self.calls = list(noise), []
        self.val, self.epoch_steps = val, epoch_steps  # a validation at each epoch's end

    def clock(self) -> float:
        return self.now

    def __call__(self, arch, train, val, config, **kwargs):
        extra = self.first if not self.calls else 0.0
        extra += self.noise[len(self.calls)] if len(self.calls) < len(self.noise) else 0.0
        self.calls.append(config.steps)
        extra += self.val * -(-config.steps // self.epoch_steps)  # the last epoch may be partial
        self.now += self.fixed + self.step * config.steps + extra


def test_the_epoch_probe_spreads_the_building_over_the_epochs_on_a_small_dataset(monkeypatch):
    """Digits: 10 steps an epoch, so the 13-step run crosses an epoch's end and its difference
    from the 3-step run holds a validation; building the model is paid once per training."""
    from types import SimpleNamespace

    import metaqnn.design.finals as finals
    from metaqnn.core.training import TrainConfig

    fake = _FakeTraining(fixed=1.0, step=0.01, val=0.1, epoch_steps=10)
    monkeypatch.setattr(finals, "train_architecture", fake)
    monkeypatch.setattr(finals, "time", SimpleNamespace(perf_counter=fake.clock))
    data = SimpleNamespace(train=range(128 * 10), val=None)
    arch = Architecture.parse("[C(8,3,1), SM(10)]")
    config = TrainConfig(batch_size=128, epochs=15)
    estimate = finals.epoch_seconds(arch, data, config, None, "cpu")
    true = 0.01 * 10 + 0.1 + 1.0 / 15  # an epoch's steps and validation, building / epochs
    assert fake.calls == [3, 3, 13]
    assert true <= estimate <= true * 1.05, estimate  # before: 1.27 s, 4.8x too much


@pytest.mark.parametrize(
    ("first", "noise"),
    [(0.0, ()), (5.0, ()),  # a one-off cost on the first run
     (0.0, (0.0, 3.0)),  # the 3-step run slowed down: the difference vanishes
     (0.0, (0.0, 0.0, -2.0))],  # the longer run sped up: the difference turns negative
)  # fmt: skip
def test_the_epoch_probe_does_not_under_count(monkeypatch, first, noise):
    """The 2-hour Fashion-MNIST run probed a finalist's epoch at 14.8 s; it took 128 s: the
    difference of a 3-step and a 13-step run, taken once, was drowned."""
    from types import SimpleNamespace

    import metaqnn.design.finals as finals
    from metaqnn.core.training import TrainConfig

    fake = _FakeTraining(fixed=2.0, step=0.1, first=first, noise=noise)
    monkeypatch.setattr(finals, "train_architecture", fake)
    monkeypatch.setattr(finals, "time", SimpleNamespace(perf_counter=fake.clock))
    data = SimpleNamespace(train=range(128 * 400), val=None)
    arch = Architecture.parse("[C(8,3,1), SM(10)]")
    estimate = finals.epoch_seconds(arch, data, TrainConfig(batch_size=128), None, "cpu")
    true = 2.0 + 0.1 * 400
    assert true * 0.95 <= estimate <= true * 1.5, (estimate, fake.calls)
    assert fake.calls[:2] == [3, 3]  # the short run twice: the faster counts


def test_the_epoch_probe_stops_at_its_time_limit(monkeypatch):
    from types import SimpleNamespace

    import metaqnn.design.finals as finals
    from metaqnn.core.training import TrainConfig

    fake = _FakeTraining(fixed=100.0, step=0.0)  # steps cost nothing next to the fixed part
    monkeypatch.setattr(finals, "train_architecture", fake)
    monkeypatch.setattr(finals, "time", SimpleNamespace(perf_counter=fake.clock))
    data = SimpleNamespace(train=range(128 * 400), val=None)
    arch = Architecture.parse("[C(8,3,1), SM(10)]")
    estimate = finals.epoch_seconds(arch, data, TrainConfig(batch_size=128), None, "cpu",
                                    max_probe_s=30.0)  # fmt: skip
    assert fake.calls == [3, 3, 13]
    assert estimate >= 100.0  # never below the run it measured


def test_a_design_the_time_left_cannot_train_is_skipped_and_retried_on_resume(
    tmp_path, monkeypatch
):
    """The probes under-count design 1 by 4x: design 2 no longer fits the budget and its
    10 % margin, so it is skipped rather than overrunning; a resume with a larger budget
    trains it."""
    from types import SimpleNamespace

    import metaqnn.design.run as design_run
    from metaqnn.design.finals import Candidate, FinalResult
    from metaqnn.design.pipeline import DesignConfig, DesignState

    config = DesignConfig(dataset="digits", budget_s=1000.0, logdir=str(tmp_path))
    state = DesignState.create(tmp_path, config)
    state.data["final_epochs"] = 2
    costs = {"hand": 10.0, "design 1": 50.0, "design 2": 100.0}
    state.data["final_epoch_costs"] = costs
    state.add_time("search", 500.0)
    pool = [
        Candidate("hand", "baseline", "[C(8,3,1), SM(10)]"),
        Candidate("design 1", "design", "[C(16,3,1), SM(10)]", "[C(4,3,1), SM(10)]", 0.9),
        Candidate("design 2", "design", "[C(32,3,1), SM(10)]", "[C(8,3,1), SM(10)]", 0.8),
    ]
    trained = []

    def fake_train(
        c, data, train, net, device, out, *, progress, folds=0, config_for=None, split=None
    ):
        trained.append(c.name)
        seconds = train.epochs * costs[c.name] * (4 if c.name == "design 1" else 1)
        return FinalResult(c.name, c.kind, c.architecture, c.search_reward, "ok", 0.9, 0.9,
                           100, train.epochs, seconds, str(out))  # fmt: skip

    monkeypatch.setattr(design_run, "train_final", fake_train)
    data = SimpleNamespace(
        spec=SimpleNamespace(input_shape=(1, 8, 8)), train=range(1200), val=range(300)
    )
    results = design_run._finals(state, data, pool, progress=False)
    # spent: 500 + 20 + 400 = 920; design 2 needs 2 x 100 x 4 (the median error, 4 / 1 -> 4)
    assert trained == ["hand", "design 1"]
    assert [r["status"] for r in results] == ["ok", "ok", "skipped"]
    assert results[2]["epochs"] == 0 and results[2]["parameters"] > 0
    state = DesignState.open(tmp_path)
    state.data["config"]["budget_s"] = 2000.0
    results = design_run._finals(state, data, pool, progress=False)
    assert trained[2:] == ["design 2"] and results[2]["status"] == "ok"


@pytest.mark.parametrize(("full_cost", "widened"), [(4.0, True), (50.0, False)])
def test_a_design_the_flops_estimate_narrowed_is_widened_when_its_measured_epoch_fits(
    tmp_path, monkeypatch, full_cost, widened
):
    """Digits at make demo's scale: the FLOPs estimate has no fixed costs in it, so it narrows
    designs whose measured epoch, at full width, fits the share (4 s here, of 10)."""
    from types import SimpleNamespace

    import metaqnn.design.final_pool as pool_module
    from metaqnn.design.pipeline import DesignConfig, DesignState

    config = DesignConfig(dataset="digits", budget_s=350.0, finalists=1, logdir=str(tmp_path))
    assert config.divisor == 2  # the ranked design is at the search width
    state = DesignState.create(tmp_path, config)
    state.data["baseline_epoch_costs"] = {n: 10.0 for n in config.preset.baselines}  # share 10
    data = SimpleNamespace(spec=SimpleNamespace(input_shape=(1, 8, 8)))
    narrow, full = (
        "[C(32,5,1), C(32,5,1), C(32,5,1), SM(10)]",
        "[C(64,5,1), C(64,5,1), C(64,5,1), SM(10)]",
    )
    measured = []

    def fake_epoch(config, data, arch):
        measured.append(str(arch))
        return full_cost if str(arch) == full else 5.0

    monkeypatch.setattr(pool_module, "final_epoch_seconds", fake_epoch)
    (design,) = [c for c in pool_module.final_pool(state, data, [(narrow, 0.9)])
                 if c.kind == "design"]  # fmt: skip
    assert measured == [narrow, full]  # narrowed by FLOPs first, then the full width measured
    assert (design.architecture, design.width_divisor) == ((full, 1) if widened else (narrow, 2))
    assert state.data["final_width"]["epoch_costs"]["design 1"] == (4.0 if widened else 5.0)


def test_the_verdict_says_whether_the_winner_beats_ties_or_trails_the_hand_net():
    from metaqnn.design.report import _outcome

    pairs = ((0.9933, 0.9899), (0.9899, 0.9899), (0.9865, 0.9899))
    assert [_outcome(win, base) for win, base in pairs] == ["beats", "ties", "trails"]


@pytest.mark.parametrize(("full_cost", "widened"), [(14.0, True), (30.0, False)])
def test_what_cheap_finalists_leave_widens_a_narrowed_one(tmp_path, monkeypatch, full_cost,
                                                          widened):  # fmt: skip
    """Two finalists with shares of 10 s an epoch: the first costs 2 s, so the second may
    cost up to 18 s, though more than its own share of 10."""
    from types import SimpleNamespace

    import metaqnn.design.final_pool as pool_module
    from metaqnn.design.pipeline import DesignConfig, DesignState

    config = DesignConfig(dataset="digits", budget_s=350.0 * 4 / 3, finalists=2,
                          finalist_pick="reward", logdir=str(tmp_path))  # fmt: skip
    state = DesignState.create(tmp_path, config)
    state.data["baseline_epoch_costs"] = {n: 10.0 for n in config.preset.baselines}
    data = SimpleNamespace(spec=SimpleNamespace(input_shape=(1, 8, 8)))
    cheap = "[C(8,3,1), SM(10)]"
    narrow, full = (
        "[C(32,5,1), C(32,5,1), C(32,5,1), SM(10)]",
        "[C(64,5,1), C(64,5,1), C(64,5,1), SM(10)]",
    )
    costs = {full: full_cost, narrow: 5.0}
    monkeypatch.setattr(pool_module, "final_epoch_seconds",
                        lambda config, data, arch: costs.get(str(arch), 2.0))  # fmt: skip
    pool = pool_module.final_pool(state, data, [(cheap, 0.95), (narrow, 0.9)])
    share = state.data["final_width"]["design_epoch_share"]
    assert share == pytest.approx(10.0, rel=0.05)  # full width (14 s) is over its own share
    design = next(c for c in pool if c.name == "design 2")
    assert (design.architecture, design.width_divisor) == ((full, 1) if widened else (narrow, 2))
    assert state.data["final_width"]["epoch_costs"]["design 2"] == (full_cost if widened else 5.0)
