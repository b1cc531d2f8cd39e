"""The cost-aware search: FLOPs counted torch-free agree with ``count_flops``; the cost mask
forbids exactly the layers over the cap and never terminate; every architecture a random or a
Q-learning agent builds under it keeps to the cap; replayed trajectories see the same masks; a
capped search resumes with its cap, and ``metaqnn search`` refuses a new one on resume."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from envs.cnn_design import CNNDesignEnv, IllegalActionError, zero_reward
from envs.layers import Architecture, Softmax
from envs.space import get_space
from metaqnn.core.limits import layer_flops
from metaqnn.core.nets import count_flops
from metaqnn.core.shapes import trace_shapes
from metaqnn.core.widths import forward_flops, rescale
from metaqnn.errors import ConfigError
from metaqnn.rewards.spec import RewardSpec
from metaqnn.search.agent import QLearningAgent, play, trajectory_of
from metaqnn.search.config import SearchConfig
from metaqnn.search.cost import RULE, CostMask, cost_masked, sample
from metaqnn.search.loop import Search
from metaqnn.search.store import SearchStore

REPO = Path(__file__).resolve().parents[3]
MNIST = get_space("mnist")
SHAPE = {"in_channels": 1, "input_size": 28}
CAP = 65_133_568.0  # 2x the PyTorch MNIST example net, the design preset's cap


def _env(cap: float = CAP, search: int = 16, cost: int = 4, **kw) -> CostMask:
    inner = CNNDesignEnv(MNIST.scale_widths(search), reward_fn=zero_reward, **kw)
    return CostMask(inner, cap, space=MNIST, search_divisor=search, cost_divisor=cost)


def _prefix_flops(layers, search: int = 16, cost: int = 4) -> int:
    """FLOPs before the classifier at the cost width, as count_flops sums them."""
    arch = Architecture((*layers, Softmax(10)))
    wide = rescale(arch, MNIST, search, cost)
    shapes = trace_shapes(wide, **SHAPE)
    return sum(layer_flops(x, s) for x, s in zip(wide.layers[:-1], shapes[:-1], strict=True))


def _classifier_flops(arch: Architecture) -> int:
    return layer_flops(arch.layers[-1], trace_shapes(arch, **SHAPE)[-1])


@pytest.mark.parametrize("space_name", ["mnist", "digits", "cifar10"])
def test_torch_free_flops_agree_exactly_with_count_flops(space_name):
    space = get_space(space_name)
    shape = {"in_channels": space.input_channels, "input_size": space.input_size}
    rng = np.random.default_rng(0)
    for _ in range(300):
        arch = space.scale_widths(8).sample(rng)
        for to in (1, 4, 8):
            wide = rescale(arch, space, 8, to)
            assert forward_flops(wide.layers, **shape) == count_flops(wide, **shape), wide


def test_the_widths_moved_to_core_are_still_the_final_phases():
    from metaqnn.core import widths
    from metaqnn.design import finals

    assert finals.rescale is widths.rescale and finals.full_width is widths.full_width
    assert finals.widest_fitting is widths.widest_fitting


def test_the_mask_forbids_exactly_the_layers_over_the_cap_and_never_terminate():
    env = _env()
    terminate = env.unwrapped.space.terminate_action
    rng = np.random.default_rng(1)
    over = 0
    for _ in range(60):
        _, info = env.reset()
        layers = []
        while True:
            mask = info["action_mask"]
            assert np.array_equal(mask, env.action_masks())
            rules = env.unwrapped.action_masks()
            assert mask[terminate]
            for a in np.flatnonzero(rules[:terminate]):
                layer = env.unwrapped.space.actions[a]
                fits = _prefix_flops([*layers, layer]) <= CAP
                assert mask[a] == fits, (layers, layer)
                over += not fits
            assert not (mask & ~rules).any()  # never more than the rules allow
            action = int(rng.choice(np.flatnonzero(mask)))
            _, _, done, _, info = env.step(action)
            if done:
                assert not info["action_mask"].any()
                break
            layers.append(env.unwrapped.space.actions[action])
            assert env.flops == _prefix_flops(layers)
    assert over > 50  # the cap did bite


def test_a_cap_below_every_layer_leaves_terminate_and_free_layers():
    env = _env(cap=1.0)
    _, info = env.reset()
    allowed = [str(env.unwrapped.space.actions[a]) for a in np.flatnonzero(info["action_mask"])]
    assert allowed == ["GAP", "SM(10)"]  # GAP costs no FLOPs
    rng = np.random.default_rng(0)
    assert {str(sample(env, rng)) for _ in range(20)} == {"[SM(10)]", "[GAP, SM(10)]"}


def _check(arch_text: str) -> None:
    arch = Architecture.parse(arch_text)
    assert _prefix_flops(arch.layers[:-1]) <= CAP, arch
    wide = rescale(arch, MNIST, 16, 4)
    assert count_flops(wide, **SHAPE) <= CAP + _classifier_flops(wide), arch


def test_random_and_q_learning_agents_build_only_what_the_cap_allows():
    env = _env()
    rng = np.random.default_rng(2)
    agent = QLearningAgent(env.action_space.n, alpha=0.5)
    seen = set()
    for i in range(200):
        epsilon = 1.0 if i < 100 else 0.1
        trajectory = agent.episode(env, epsilon, rng)
        # a reward that loves depth: uncapped, the greedy agent would stack convs
        agent.update(trajectory, len(trajectory.transitions) / 13)
        _check(trajectory.architecture)
        seen.add(trajectory.architecture)
    _check(agent.greedy(env).architecture)
    assert len(seen) > 50


def test_replayed_trajectories_see_the_same_masks():
    env = _env()
    rng = np.random.default_rng(3)
    for _ in range(40):
        trajectory = play(env, lambda obs, mask: int(rng.choice(np.flatnonzero(mask))))
        again = trajectory_of(_env(), trajectory.architecture)  # a fresh env, as on resume
        assert again == trajectory
        assert trajectory_of(env, trajectory.architecture) == trajectory
    dear = "[C(32,5,1), C(32,5,1), C(32,5,1), SM(10)]"  # 1.3 GFLOPs at widths / 4
    with pytest.raises(ConfigError, match="not a legal path"):
        trajectory_of(env, dear)
    assert trajectory_of(CNNDesignEnv(MNIST.scale_widths(16), reward_fn=zero_reward), dear)


def test_an_over_cap_action_is_penalized_or_raised_as_the_env_says():
    layer = "C(32,5,1)"
    env = _env()
    env.reset()
    action = env.unwrapped.space.actions.index(Architecture.parse(f"[{layer}, SM(10)]").layers[0])
    env.step(action)
    assert not env.action_masks()[action]
    _, reward, done, _, info = env.step(action)
    assert done and reward == -1.0 and info["illegal_action"] and RULE in info["invalid_action"]
    assert not info["action_mask"].any() and not env.action_masks().any()
    with pytest.raises(RuntimeError, match="reset"):
        env.step(action)
    env.reset()
    assert env.flops == 0 and env.action_masks()[action]

    strict = _env(illegal_action="raise")
    strict.reset()
    strict.step(action)
    with pytest.raises(IllegalActionError, match="over the cap") as caught:
        strict.step(action)
    assert caught.value.rules == (RULE,)
    assert len(strict.unwrapped.layers) == 1  # the episode goes on


def test_a_wrapped_step_costs_well_under_a_millisecond():
    env = _env()
    rng = np.random.default_rng(4)
    for _round in range(2):  # the first fills the caches
        steps, start = 0, time.perf_counter()
        for _ in range(300):
            _, info = env.reset()
            done = False
            while not done:
                _, _, done, _, info = env.step(int(rng.choice(np.flatnonzero(info["action_mask"]))))
                steps += 1
        per_step = (time.perf_counter() - start) / steps
    assert per_step < 1e-3, per_step


def test_search_config_checks_and_old_configs_load(tmp_path):
    spec = RewardSpec(name="real", dataset="mnist")
    with pytest.raises(ConfigError, match="flops_width_divisor=3"):
        SearchConfig(reward=spec, width_divisor=16, max_flops=1e6, flops_width_divisor=3)
    with pytest.raises(ConfigError, match="max_flops=-1"):
        SearchConfig(reward=spec, max_flops=-1)
    config = SearchConfig(reward=spec, width_divisor=16, max_flops=CAP, flops_width_divisor=4)
    assert SearchConfig.from_dict(config.to_dict()) == config
    assert cost_masked(CNNDesignEnv(config.search_space(), reward_fn=zero_reward), config)
    # a search.db stored before the cap (a copy: the committed file stays as it is)
    old = tmp_path / "search.db"
    shutil.copyfile(REPO / "experiments/artifacts/design_mnist/search.db", old)
    store = SearchStore.open(old)
    assert "max_flops" not in store.config
    loaded = SearchConfig.from_stored(store.config, store.path)
    store.close()
    assert (loaded.max_flops, loaded.flops_width_divisor, loaded.width_divisor) == (None, 1, 16)
    plain = CNNDesignEnv(loaded.search_space(), reward_fn=zero_reward)
    assert cost_masked(plain, loaded) is plain


def _reward(arch: Architecture) -> float:
    return min(1.0, len(arch.layers) / 10)  # depth pays: the cap must hold the agent back


def test_a_capped_search_keeps_its_cap_and_resumes_with_it(tmp_path):
    spec = RewardSpec(name="real", dataset="mnist")
    config = SearchConfig(reward=spec, width_divisor=16, max_flops=CAP, flops_width_divisor=4,
                          schedule="1.0:15,0.1:15", replay=10)  # fmt: skip
    search = Search.create(config, tmp_path / "run", reward=_reward)
    assert isinstance(search.env, CostMask)
    search.run(progress=False, max_models=20)
    search.close()
    again = Search.resume(tmp_path / "run", reward=_reward)
    assert again.config.max_flops == CAP and again.config.flops_width_divisor == 4
    assert isinstance(again.env, CostMask)
    again.run(progress=False)
    again.close()
    store = SearchStore.open(tmp_path / "run")
    models = store.models()
    assert len(models) == 30 and store.config["max_flops"] == CAP
    store.close()
    for m in models:
        _check(m.architecture)


SEARCH = ["search", "--dataset", "digits", "--reward", "real", "--epochs", "1", "--no-progress"]


@pytest.mark.slow
def test_search_cli_records_the_cap(capsys, tmp_path):
    from metaqnn.cli import main

    run = tmp_path / "run"
    cap = ["--max-design-flops", "200000", "--flops-width-divisor", "1"]
    assert main([*SEARCH, *cap, "--schedule", "1.0:3", "--logdir", str(run)]) == 0
    assert "cost cap: 200,000 FLOPs" in capsys.readouterr().out
    store = SearchStore.open(run)
    assert store.config["max_flops"] == 200000 and store.config["flops_width_divisor"] == 1
    archs = [Architecture.parse(m.architecture) for m in store.models()]
    store.close()
    digits = {"in_channels": 1, "input_size": 8}
    assert len(archs) == 3 and all(forward_flops(a.layers[:-1], **digits) <= 200000 for a in archs)
    assert main(["search", "--resume", str(run), "--max-design-flops", "1e9"]) == 2
    assert "--max-design-flops" in capsys.readouterr().err


@pytest.mark.parametrize("flag", [["--max-design-flops", "1e9"], ["--flops-width-divisor", "2"]])
def test_a_resume_refuses_a_new_cap_in_one_line(capsys, tmp_path, flag):
    from metaqnn.cli import main

    assert main(["search", "--resume", str(tmp_path / "run"), *flag]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"keeps the run's own {flag[0]}" in err[0], err


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--max-design-flops", "0"], "--max-design-flops 0.0: must be a positive number"),
        (["--max-design-flops", "1e6", "--flops-width-divisor", "3", "--width-divisor", "2"],
         "flops_width_divisor=3 must be a positive integer that divides width_divisor=2"),
        (["--flops-width-divisor", "0"], "--flops-width-divisor 0: must be an integer"),
    ],
)  # fmt: skip
def test_bad_cap_options_are_one_line_errors(capsys, tmp_path, argv, words):
    from metaqnn.cli import main

    run = tmp_path / "run"
    assert main([*SEARCH, *argv, "--logdir", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err
    assert not run.exists()
