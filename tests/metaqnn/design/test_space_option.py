"""``metaqnn design --space``: a search-space preset other than the dataset's own (the fc14
spaces, where the hand baselines' FC-on-14x14 shape is an architecture of the space)."""

from __future__ import annotations

import pytest

from envs.layers import Architecture
from metaqnn.cli import main
from metaqnn.design.pipeline import DesignConfig, DesignState, design_candidates
from metaqnn.errors import ConfigError
from metaqnn.rewards.result import RewardResult
from metaqnn.rewards.spec import RewardSpec

#: PyTorch's MNIST example net as the fc14 space has it at widths / 16 (the search width).
PYTORCH_AT_16 = "[C(4,3,1), C(8,3,1), P(2,2), FC(16), SM(10)]"


def test_the_space_defaults_to_the_datasets_and_can_be_named():
    assert DesignConfig(dataset="fashion-mnist").full_space().name == "fashion-mnist"
    config = DesignConfig(dataset="fashion-mnist", space="fashion-mnist-fc14")
    assert config.full_space().fc_max_size == 14
    assert config.cost_cap() == DesignConfig(dataset="fashion-mnist").cost_cap()  # same nets


@pytest.mark.parametrize(("dataset", "space", "message"), [
    ("fashion-mnist", "nope", "unknown search-space preset 'nope'"),
    ("digits", "mnist-fc14", "--space mnist-fc14 is for 1x28x28 images"),
])  # fmt: skip
def test_a_bad_space_is_a_one_line_error(capsys, tmp_path, dataset, space, message):
    with pytest.raises(ConfigError, match=message):
        DesignConfig(dataset=dataset, space=space)
    code = main(["design", "--dataset", dataset, "--space", space, "--budget", "5m",
                 "--logdir", str(tmp_path / "run")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "run").exists()  # refused before any work


def test_a_design_run_hands_its_space_to_the_search(monkeypatch, tmp_path):
    import metaqnn.design.run as design_run

    config = DesignConfig(dataset="mnist", space="mnist-fc14", logdir=str(tmp_path))
    state = DesignState.create(tmp_path, config)
    seen = {}

    def fake_sized(spec, run_dir, **kwargs):
        seen.update(kwargs)
        return "search", {"seconds_per_model": 1.0, "planned_models": 10}

    monkeypatch.setattr(design_run, "sized_search", fake_sized)
    design_run._new_search(state, None, tmp_path / "search", 60.0)
    assert seen["space"] == "mnist-fc14"
    assert DesignState.open(tmp_path).config.space == "mnist-fc14"  # a resume keeps it


class _Reward:
    def evaluate(self, arch: Architecture) -> RewardResult:
        return RewardResult(str(arch), 0.5, "ok", "", 0.5, None, 10, 20, 1, 0, 0.0)


def test_the_search_runs_in_the_named_space(monkeypatch, tmp_path):
    import metaqnn.design.searching as searching

    monkeypatch.setattr(searching, "build_reward", lambda spec: _Reward())
    spec = RewardSpec(name="real", dataset="mnist")
    search, _ = searching.sized_search(spec, tmp_path / "run", agent="random", seconds=2,
                                       width_divisor=16, seed=0, space="mnist-fc14")  # fmt: skip
    assert search.config.space == "mnist-fc14" and search.space.fc_max_size == 14
    assert search.space.is_valid(Architecture.parse(PYTORCH_AT_16))
    search.close()


def test_a_design_that_is_a_hand_net_is_not_a_finalist():
    """At widths / 2 the fc14 space's [C(64,3,1), C(128,3,1), P(2,2), FC(256), SM(10)] is
    PyTorch's example net, which the final phase trains as a baseline already."""
    config = DesignConfig(dataset="mnist", space="mnist-fc14", final_width_divisor=2)
    other = "[C(4,3,1), P(2,2), FC(16), SM(10)]"
    picked = list(design_candidates(config, [(PYTORCH_AT_16, 0.9), (other, 0.8)]))
    assert [c.search_architecture for c in picked] == [other]
    assert picked[0].architecture == "[C(32,3,1), P(2,2), FC(128), SM(10)]"
