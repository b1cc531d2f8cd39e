"""The cost cap of ``metaqnn design``: worked out at plan time from the baselines' FLOPs,
printed with the plan, recorded in ``design.json``, handed to the search; in the final phase a
design within it is never trained narrower than the cost width; digits has none."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from envs.cnn_design import CNNDesignEnv
from envs.layers import Architecture
from envs.space import get_space
from metaqnn.core.widths import forward_flops, rescale
from metaqnn.design.cost import CostCap, design_flops, narrowest_divisor
from metaqnn.design.pipeline import DesignConfig, DesignState, design_candidates
from metaqnn.errors import ConfigError
from metaqnn.rewards.result import RewardResult
from metaqnn.rewards.spec import RewardSpec
from metaqnn.search.cost import CostMask

REPO = Path(__file__).resolve().parents[3]
MNIST = get_space("mnist")
SHAPE = {"in_channels": 1, "input_size": 28}
PYTORCH_NET_FLOPS = 32_566_784  # the costliest MNIST baseline


def test_the_mnist_cap_is_twice_the_costliest_baseline_at_a_quarter_width():
    cap = DesignConfig(dataset="mnist").cost_cap()
    assert cap.max_flops == 2 * PYTORCH_NET_FLOPS and cap.width_divisor == 4
    assert cap.baseline == "hand: PyTorch MNIST example" and cap.multiple == 2.0
    assert "65.1 MFLOPs per image at widths / 4" in cap.describe()
    assert DesignConfig(dataset="fashion-mnist").cost_cap() == cap
    assert DesignConfig(dataset="mnist", cost_multiple=0).cost_cap() is None
    assert DesignConfig(dataset="mnist", cost_multiple=1).cost_cap().max_flops == PYTORCH_NET_FLOPS
    # the cost width must divide the search width: the widest that does
    for search, cost in ((16, 4), (8, 4), (2, 2), (1, 1)):
        assert DesignConfig(dataset="mnist", width_divisor=search).cost_cap().width_divisor == cost
    assert DesignConfig(dataset="mnist", cost_width_divisor=1).cost_cap().width_divisor == 1
    assert DesignConfig(dataset="digits").cost_cap() is None  # make demo: no cap
    assert DesignConfig(dataset="cifar10").cost_cap() is None


def test_at_a_quarter_width_the_cap_keeps_half_the_space():
    """The arithmetic behind the preset: of random architectures of the search space (widths
    / 16), about 56 % fit the cap at / 4, 39 % at / 2 and 32 % at full width."""
    cap = DesignConfig(dataset="mnist").cost_cap()
    rng = np.random.default_rng(0)
    archs = [MNIST.scale_widths(16).sample(rng) for _ in range(2000)]
    share = {
        d: np.mean([forward_flops(rescale(a, MNIST, 16, d).layers[:-1], **SHAPE) <= cap.max_flops
                    for a in archs])
        for d in (4, 2, 1)
    }  # fmt: skip
    assert share[4] == pytest.approx(0.56, abs=0.04), share
    assert share[2] == pytest.approx(0.39, abs=0.04), share
    assert share[1] == pytest.approx(0.32, abs=0.04), share


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--cost-multiple", "-1"], "--cost-multiple -1.0: must be a number of at least 0"),
        (["--cost-width-divisor", "0"], "--cost-width-divisor 0: must be an integer"),
    ],
)
def test_bad_cost_options_are_one_line_errors(capsys, tmp_path, argv, words):
    from metaqnn.cli import main

    run = tmp_path / "design"
    assert main(["design", "--budget", "10m", "--logdir", str(run), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err
    assert not run.exists()
    with pytest.raises(ConfigError, match="--cost-multiple nan"):
        DesignConfig(dataset="mnist", cost_multiple=float("nan"))


class _Planned(Exception):
    """Stops a design run after its plan."""


def _plan(capsys, monkeypatch, tmp_path, dataset: str) -> tuple[str, dict]:
    import metaqnn.design.run as design_run

    config = DesignConfig(dataset=dataset, budget_s=3600.0, logdir=str(tmp_path / dataset),
                          gtn_checkpoint="teacher")  # fmt: skip
    monkeypatch.setattr(design_run, "check_teacher", lambda config: None)
    monkeypatch.setattr(design_run, "load_data", lambda config: None)
    costs = {name: 1.0 for name in config.preset.baselines}
    monkeypatch.setattr(design_run, "check_budget", lambda config, data: costs)

    def stop(state, *, progress):
        raise _Planned

    monkeypatch.setattr(design_run, "teacher_phase", stop)
    with pytest.raises(_Planned):
        design_run.run_design(config, progress=False)
    out = capsys.readouterr().out
    return out, json.loads((tmp_path / dataset / "design.json").read_text())


def test_the_plan_prints_and_records_the_cap(capsys, monkeypatch, tmp_path):
    out, state = _plan(capsys, monkeypatch, tmp_path, "mnist")
    assert "search cost cap: designs of at most 65.1 MFLOPs per image at widths / 4" in out
    assert state["cost_cap"]["max_flops"] == 2 * PYTORCH_NET_FLOPS
    assert state["cost_cap"]["width_divisor"] == 4
    assert CostCap.from_dict(state["cost_cap"]) == DesignConfig(dataset="mnist").cost_cap()


def test_digits_plans_no_cap(capsys, monkeypatch, tmp_path):
    out, state = _plan(capsys, monkeypatch, tmp_path, "digits")
    assert "cost cap" not in out and state["cost_cap"] is None


class _FakeReward:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def evaluate(self, arch: Architecture) -> RewardResult:
        self.seen.append(str(arch))
        return RewardResult(str(arch), 0.5, "ok", "", 0.5, None, 10, 20, 1, 0, 0.0)


def test_the_search_gets_the_cap_and_probes_within_it(monkeypatch, tmp_path):
    import metaqnn.design.searching as searching

    reward = _FakeReward()
    monkeypatch.setattr(searching, "build_reward", lambda spec: reward)
    spec = RewardSpec(name="real", dataset="mnist")
    cap = DesignConfig(dataset="mnist").cost_cap()
    search, info = searching.sized_search(spec, tmp_path / "run", agent="qlearning", seconds=5,
                                          width_divisor=16, seed=0, max_flops=cap.max_flops,
                                          flops_width_divisor=4)  # fmt: skip
    assert isinstance(search.env, CostMask)
    assert (search.config.max_flops, search.config.flops_width_divisor) == (cap.max_flops, 4)
    assert (info["max_flops"], info["flops_width_divisor"]) == (cap.max_flops, 4)
    assert searching.COST_PROBES <= len(reward.seen) == info["probes"] <= searching.MAX_PROBES
    assert len(set(reward.seen)) == len(reward.seen)  # distinct architectures
    for arch in reward.seen:
        assert design_flops(Architecture.parse(arch), cap, MNIST, 16) <= cap.max_flops
    search.close()


def test_a_design_run_hands_its_recorded_cap_to_the_search(monkeypatch, tmp_path):
    import metaqnn.design.run as design_run

    config = DesignConfig(dataset="mnist", logdir=str(tmp_path))
    state = DesignState.create(tmp_path, config)
    state.data["cost_cap"] = config.cost_cap().to_dict()
    seen = {}

    def fake_sized(spec, run_dir, **kwargs):
        seen.update(kwargs)
        return "search", {"seconds_per_model": 1.0, "planned_models": 10}

    monkeypatch.setattr(design_run, "sized_search", fake_sized)
    assert design_run._new_search(state, None, tmp_path / "search", 60.0) == "search"
    assert seen["max_flops"] == 2 * PYTORCH_NET_FLOPS and seen["flops_width_divisor"] == 4
    # a run from before caps (no "cost_cap" in design.json) searches without one
    del state.data["cost_cap"]
    design_run._new_search(state, None, tmp_path / "search", 60.0)
    assert seen["max_flops"] is None and seen["flops_width_divisor"] == 1


def test_a_design_within_the_cap_is_never_trained_narrower_than_the_cost_width():
    config = DesignConfig(dataset="mnist")
    cap = config.cost_cap()
    within = "[C(16,5,1), P(5,3), C(32,5,1), C(16,1,1), C(32,1,1), SM(10)]"  # 30.8 MFLOPs at / 4
    over = "[C(32,5,1), C(32,5,1), P(2,2), FC(32), SM(10)]"  # from a search without the cap
    assert design_flops(Architecture.parse(within), cap, MNIST, 16) <= cap.max_flops
    assert narrowest_divisor(Architecture.parse(within), cap, MNIST, 16) == 4
    assert narrowest_divisor(Architecture.parse(over), cap, MNIST, 16) is None
    assert narrowest_divisor(Architecture.parse(within), None, MNIST, 16) is None
    ranked = [(within, 0.9), (over, 0.8)]
    tiny = 1.0  # a final phase with no time: everything narrows as far as it may
    designs = list(design_candidates(config, ranked, tiny, cap))
    assert [d.width_divisor for d in designs] == [4, 16]
    assert designs[0].architecture == str(rescale(Architecture.parse(within), MNIST, 16, 4))
    assert [d.width_divisor for d in design_candidates(config, ranked, tiny)] == [16, 16]
    assert [d.width_divisor for d in design_candidates(config, ranked, 1e15, cap)] == [1, 1]


def test_the_final_pool_lets_a_design_cost_what_the_cap_allows(capsys, monkeypatch, tmp_path):
    import metaqnn.design.final_pool as pool_module

    config = DesignConfig(dataset="mnist", budget_s=1.0, finalists=1, logdir=str(tmp_path))
    state = DesignState.create(tmp_path, config)
    flops = {n: forward_flops(Architecture.parse(a).layers, **SHAPE)
             for n, a in config.preset.baselines.items()}  # fmt: skip
    state.data["baseline_epoch_costs"] = {n: 1e-8 * f for n, f in flops.items()}  # 1e-8 s/FLOP
    state.data["cost_cap"] = config.cost_cap().to_dict()
    data = SimpleNamespace(spec=SimpleNamespace(input_shape=(1, 28, 28)))
    within = "[C(16,5,1), P(5,3), C(32,5,1), C(16,1,1), C(32,1,1), SM(10)]"

    def fake_epoch(config, data, arch):
        return 1e-8 * forward_flops(Architecture.parse(arch).layers, **SHAPE)

    monkeypatch.setattr(pool_module, "final_epoch_seconds", fake_epoch)
    pool = pool_module.final_pool(state, data, [(within, 0.9)])
    design = next(c for c in pool if c.kind == "design")
    # no time left for more than the cheapest baseline's 8.5 MFLOPs, yet the design keeps
    # the cost width, and its 31 MFLOPs epoch is not refused as too dear
    assert design.width_divisor == 4
    assert state.data["final_width"]["max_flops"] < 10e6
    assert state.data["final_width"]["design_epoch_share"] >= 1e-8 * 30e6
    assert "more than twice" not in capsys.readouterr().out


def test_an_old_design_run_loads_without_a_cap(tmp_path):
    import metaqnn.design.final_pool as pool_module

    run = tmp_path / "old"
    run.mkdir()
    shutil.copyfile(REPO / "experiments/artifacts/design_mnist/design.json", run / "design.json")
    state = DesignState.open(run)
    assert state.config.dataset == "mnist" and state.config.cost_multiple is None
    assert pool_module.cost_cap(state) is None


def _half(arch: Architecture) -> float:
    return 0.5


def test_the_search_env_of_digits_is_unwrapped(tmp_path):
    from metaqnn.search.loop import Search, SearchConfig

    config = SearchConfig(schedule="1.0:2")
    search = Search.create(config, tmp_path / "run", reward=_half)
    assert type(search.env) is CNNDesignEnv
    search.close()


class _Clock:
    """A fake ``time`` module: ``perf_counter`` moves only when a probe is evaluated."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


def test_the_cost_probe_times_distinct_architectures_for_its_share_of_the_time(monkeypatch):
    import metaqnn.design.searching as searching

    clock = _Clock()
    monkeypatch.setattr(searching, "time", clock)
    small, big = Architecture.parse("[SM(10)]"), Architecture.parse("[C(8,3,1), SM(10)]")
    costs = {str(small): 0.1, str(big): 2.0}
    # a space of two architectures: the draws end before COST_PROBES distinct ones
    draws = itertools.chain([small, small, small, big, small], itertools.repeat(big))
    timed = []

    def evaluate(arch):
        timed.append(str(arch))
        clock.now += costs[str(arch)]

    # the repeats of the small architecture are not timed again: mean of 0.1 s and 2.0 s
    assert searching.probe_cost(evaluate, lambda: next(draws), 0.0) == (1.05, 2)
    assert timed == [str(small), str(big)]

    # at least COST_PROBES, then until the seconds have passed
    archs = iter(Architecture.parse(f"[C({n},1,1), SM(10)]") for n in range(1, 1000))
    per, n = searching.probe_cost(lambda a: setattr(clock, "now", clock.now + 1.0),
                                  lambda: next(archs), 7.5)  # fmt: skip
    assert (per, n) == (1.0, 8)
    per, n = searching.probe_cost(lambda a: setattr(clock, "now", clock.now + 1.0),
                                  lambda: next(archs), 0.5)  # fmt: skip
    assert n == searching.COST_PROBES
    per, n = searching.probe_cost(lambda a: setattr(clock, "now", clock.now + 1.0),
                                  lambda: next(archs), 1e9)  # fmt: skip
    assert n == searching.MAX_PROBES
