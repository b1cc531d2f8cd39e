"""The design-fidelity experiment: config checks, the spread-out choice of architectures within
the design's cost cap, the teacher check, the computed recommendation, and (slow) the quick
run's results."""

from __future__ import annotations

import dataclasses
import json
import math
from types import SimpleNamespace

import pytest

from envs.space import get_space
from experiments.__main__ import run_named
from experiments.common.design_fidelity_report import ProxyScores, correlate, recommend
from experiments.common.selection import quantile_bins, select_architectures
from experiments.design_fidelity import Config, check_teacher
from experiments.harness import CONFIG_DIR, load_config
from metaqnn.core.data import load_dataset
from metaqnn.design.cost import design_flops
from metaqnn.design.pipeline import DesignConfig
from metaqnn.errors import ConfigError
from metaqnn.evaluation.correlation import Estimate

CONFIG = CONFIG_DIR / "design_fidelity.toml"


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"dataset": "svhn"}, r"dataset=.*unknown"),
        ({"recipe": "fast"}, r"recipe=.*unknown"),
        ({"reference": "train"}, r"reference=.*unknown"),
        ({"architectures": 2}, "architectures=2"),
        ({"pool_size": 10}, "pool_size=10"),
        ({"final_width_divisor": 32}, "final_width_divisor=32"),
        ({"truth_seed": 0}, "truth_seed=0 must differ"),
        ({"gtn_width_divisors": (16, 16)}, r"gtn_width_divisors=\[16, 16\]"),
        ({"gtn_width_divisors": ()}, r"gtn_width_divisors=\[\]"),
        ({"top_k": (60,)}, r"top_k=\[60\]"),
        ({"final_epochs": 0}, "final_epochs=0"),
        ({"train_size": -1}, "train_size=-1"),
        ({"teacher": ""}, "teacher=''"),
    ],
)
def test_config_rejects_bad_values(changes, match):
    with pytest.raises(ConfigError, match=match):
        dataclasses.replace(Config(), **changes)


@pytest.mark.parametrize("quick", [False, True])
def test_the_toml_config_loads(quick):
    config = load_config(Config, CONFIG, quick=quick)
    assert config.architectures >= (4 if quick else 40)
    assert config.truth_seed != config.seed
    assert config.teacher == ("digits" if quick else "mnist")


def test_quantile_bins_keep_equal_values_together():
    bins = quantile_bins([1, 1, 1, 1, 2, 3, 4, 5], 4)
    assert bins[:4] == [bins[0]] * 4
    assert bins == sorted(bins) and min(bins) >= 0 and max(bins) == 3


def _mnist(**changes):
    config = dataclasses.replace(Config(), architectures=16, pool_size=300, **changes)
    return config, DesignConfig(dataset="mnist", width_divisor=16).cost_cap()


def test_selection_is_spread_within_the_design_cap_and_deterministic():
    config, cap = _mnist()
    sel = select_architectures(config, cap)
    archs = sel.archs
    assert len(archs) == 16 and len({str(a) for a in archs}) == 16 and sel.pool == 300
    space = get_space("mnist")
    assert all(design_flops(a, cap, space, 16) <= cap.max_flops for a in archs)
    # every depth bin and every FLOPs bin is drawn from, as evenly as the strata allow
    assert {d for d, _ in sel.strata} == set(range(config.depth_strata))
    assert {f for _, f in sel.strata} == set(range(config.flops_strata))
    counts = [sel.strata.count(key) for key in set(sel.strata)]
    assert max(counts) - min(counts) <= 1
    assert max(sel.depths) - min(sel.depths) >= 6
    # the draw order (the truth's) is a permutation whose first 16 cover 16 strata
    assert sorted(sel.order) == list(range(16))
    first = [sel.strata[i] for i in sel.order[: len(set(sel.strata))]]
    assert len(set(first)) == len(first)
    again = select_architectures(config, cap)
    assert [str(a) for a in again.archs] == [str(a) for a in archs] and again.order == sel.order
    other = select_architectures(dataclasses.replace(config, arch_seed=7), cap)
    assert [str(a) for a in other.archs] != [str(a) for a in archs]


def test_selection_says_when_the_space_is_too_small(monkeypatch):
    import experiments.common.selection as module

    monkeypatch.setattr(module, "get_space", lambda name: get_space(name, max_depth=1))
    config = dataclasses.replace(Config(), dataset="digits", width_divisor=4,
                                 final_width_divisor=2, architectures=50, pool_size=50)  # fmt: skip
    with pytest.raises(ConfigError, match=r"architectures=50: .* gave only"):
        select_architectures(config, None)


def test_teacher_must_match_the_split():
    config = dataclasses.replace(Config(), dataset="digits", teacher="digits", seed=1,
                                 truth_seed=2)  # fmt: skip
    with pytest.raises(ConfigError, match="seed=0"):
        check_teacher(config, load_dataset("digits", seed=1))
    check_teacher(dataclasses.replace(config, seed=0), load_dataset("digits", seed=0))


def _proxy(name, kind, cpu):
    return ProxyScores(name, kind, [0.0, 1.0, 2.0], [cpu] * 3, [cpu] * 3, "")


def _stats(**spearman):
    """Fake statistics: name -> (value, low, high) of Spearman."""
    return {k: SimpleNamespace(spearman=Estimate(*v)) for k, v in spearman.items()}


def test_recommendation_is_the_cheapest_near_best_proxy_above_the_floor():
    proxies = [_proxy("dear", "real", 10.0), _proxy("cheap", "gtn", 1.0),
               _proxy("poor", "gtn", 0.1), _proxy("params", "zero", 0.0),
               _proxy("flops", "zero", 0.0)]  # fmt: skip
    stats = _stats(dear=(0.8, 0.6, 0.9), cheap=(0.7, 0.5, 0.8), poor=(0.3, 0.0, 0.5),
                   params=(0.4, 0.1, 0.6), flops=(0.2, 0.0, 0.4))  # fmt: skip
    advice = recommend(proxies, stats, "mnist")
    assert advice["floor_proxy"] == "params" and advice["floor"] == 0.4
    assert advice["best"] == "dear" and advice["proxy"] == "cheap" and advice["clears_interval"]
    assert advice["line"].startswith("Recommended proxy for mnist: cheap")
    # the cheap one significantly worse than the best: the best is recommended
    stats["cheap"] = SimpleNamespace(spearman=Estimate(0.5, 0.3, 0.7))
    assert recommend(proxies, stats, "mnist")["proxy"] == "dear"
    # nothing above the floor: nothing recommended
    stats |= _stats(dear=(0.35, 0.1, 0.5), cheap=(0.1, -0.2, 0.3))
    advice = recommend(proxies, stats, "mnist")
    assert advice["proxy"] is None and "no trained proxy clears" in advice["line"]


def test_statistics_of_a_perfect_and_a_reversed_proxy():
    truth = [float(i) for i in range(8)]
    proxies = [ProxyScores("same", "gtn", truth, [1.0] * 8, [1.0] * 8, ""),
               ProxyScores("reversed", "zero", truth[::-1], [0.0] * 8, [0.0] * 8, "")]  # fmt: skip
    stats = correlate(proxies, truth, ks=(3,), resamples=20)
    assert stats["same"].spearman.value == pytest.approx(1.0)
    assert stats["reversed"].kendall.value == pytest.approx(-1.0)
    assert stats["same"].top_k[3].value == 1.0 and stats["reversed"].top_k[3].value == 0.0


@pytest.mark.slow
def test_quick_run_reports_every_proxy_with_finite_correlations(tmp_path):
    argv = ["--quick", "--no-progress", "--out", str(tmp_path / "out"), "--work",
            str(tmp_path / "work")]  # fmt: skip
    assert run_named("design_fidelity", argv) == 0
    record = json.loads((tmp_path / "out" / "results.json").read_text())
    summary = record["summary"]
    kinds = [p["kind"] for p in summary["proxies"]]
    assert kinds == ["gtn", "gtn", "real", "real", "zero", "zero"]
    for p in summary["proxies"]:
        assert math.isfinite(p["spearman"]["value"]) and math.isfinite(p["kendall"]["value"])
        assert p["mean_cpu_s"] >= 0 and p["top_k"]
    assert summary["recommendation"]["line"] and len(record["rows"]) == 6
    assert len(list((tmp_path / "out").glob("scatter_*.png"))) == 6
    memo_path = next((tmp_path / "work").glob("*/memo.json"))
    memo = json.loads(memo_path.read_text())
    assert sum(k.startswith("truth:") for k in memo) == 6  # every unit memoised: a rerun resumes
    # an interim report on 3 measured truths trains nothing and reuses the same memo
    dropped = [k for k in memo if k.startswith("truth:")][:3]
    memo_path.write_text(json.dumps({k: v for k, v in memo.items() if k not in dropped}))
    interim = [*argv, "--set", "interim=true", "--out", str(tmp_path / "interim")]
    assert run_named("design_fidelity", interim) == 0
    record = json.loads((tmp_path / "interim" / "results.json").read_text())
    assert record["summary"]["interim"] and len(record["rows"]) == 3
    assert record["summary"]["recommendation"]["line"].startswith("Interim, 3 of 6")
    assert {r["final_architecture"] for r in record["rows"]} == {k.split(":", 2)[2] for k in memo
                                                                  if k.startswith("truth:")
                                                                  and k not in dropped}  # fmt: skip
    assert len(json.loads(memo_path.read_text())) == len(memo) - 3  # nothing trained
    left = [k for k in memo if k.startswith("truth:") and k not in dropped]
    memo_path.write_text(json.dumps({k: v for k, v in memo.items()
                                     if k not in dropped and k != left[0]}))  # fmt: skip
    assert run_named("design_fidelity", interim) == 2  # 2 truths: too few, one line
