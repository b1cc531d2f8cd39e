import json
import math

import numpy as np
import pytest

from metaqnn.errors import ConfigError
from metaqnn.evaluation.correlation import (
    bootstrap_ci,
    kendall,
    load_reward_pairs,
    plot_scatter,
    rank_correlation,
    spearman,
    spearman_top_half,
    top_k_overlap,
)

REFERENCE = [0.1, 0.5, 0.3, 0.9, 0.7, 0.2, 0.8, 0.4, 0.6, 0.0]


def test_perfect_and_inverse_rankings():
    monotone = [math.exp(5 * r) for r in REFERENCE]  # same order, other scale
    assert spearman(monotone, REFERENCE) == pytest.approx(1.0)
    assert kendall(monotone, REFERENCE) == pytest.approx(1.0)
    assert top_k_overlap(monotone, REFERENCE, 3) == 1.0
    inverse = [-r for r in REFERENCE]
    assert spearman(inverse, REFERENCE) == pytest.approx(-1.0)
    assert kendall(inverse, REFERENCE) == pytest.approx(-1.0)
    assert top_k_overlap(inverse, REFERENCE, 5) == 0.0
    assert top_k_overlap(inverse, REFERENCE, 10) == 1.0


def test_top_k_known_answer():
    cheap, reference = [5, 4, 3, 2, 1], [5, 4, 1, 2, 3]
    assert top_k_overlap(cheap, reference, 2) == 1.0
    assert top_k_overlap(cheap, reference, 3) == pytest.approx(2 / 3)
    with pytest.raises(ConfigError, match=r"k in 1\.\.5"):
        top_k_overlap(cheap, reference, 6)


def test_known_spearman_and_kendall_values():
    # One swapped neighbour pair among 5: rho = 1 - 6*2/(5*24) = 0.9, tau = (9 - 1)/10 = 0.8.
    assert spearman([1, 2, 3, 5, 4], [1, 2, 3, 4, 5]) == pytest.approx(0.9)
    assert kendall([1, 2, 3, 5, 4], [1, 2, 3, 4, 5]) == pytest.approx(0.8)


def test_top_half_uses_the_best_reference_half():
    cheap = [0.0, 0.0, 0.0, 0.0, 0.6, 0.7, 0.8, 0.9]  # bottom half tied, top half in order
    reference = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
    assert spearman_top_half(cheap, reference) == pytest.approx(1.0)


def test_bootstrap_is_seeded_and_covers_the_value():
    rng = np.random.default_rng(0)
    reference = rng.random(40)
    cheap = reference + 0.2 * rng.standard_normal(40)
    low, high = bootstrap_ci(spearman, cheap, reference, resamples=200, seed=3)
    assert low <= spearman(cheap, reference) <= high
    assert (low, high) == bootstrap_ci(spearman, cheap, reference, resamples=200, seed=3)
    assert (low, high) != bootstrap_ci(spearman, cheap, reference, resamples=200, seed=4)


def test_rank_correlation_result():
    result = rank_correlation([math.sqrt(r) for r in REFERENCE], REFERENCE, ks=(3, 20),
                              resamples=100)  # fmt: skip
    assert result.n == 10 and result.spearman.value == pytest.approx(1.0)
    assert set(result.top_k) == {3}  # k above n is skipped
    assert result.spearman.low <= 1.0 + 1e-12 and result.kendall.high == pytest.approx(1.0)
    json.dumps(result.to_dict())


def test_too_few_or_bad_rewards():
    with pytest.raises(ConfigError, match="at least 3"):
        rank_correlation([1, 2], [1, 2])
    with pytest.raises(ConfigError, match="equally long"):
        spearman([1, 2, 3], [1, 2])
    with pytest.raises(ConfigError, match="finite"):
        spearman([1, math.nan, 3], [1, 2, 3])


def test_constant_rewards_give_nan_not_an_error():
    assert math.isnan(spearman([1, 1, 1, 1], [1, 2, 3, 4]))


def test_load_csv_and_json(tmp_path):
    csv_file = tmp_path / "r.csv"
    csv_file.write_text("architecture,gtn,real\n[SM(10)],0.5,0.9\nA,0.2,0.3\nB,,0.4\nC,0.1,0.2\n")
    pairs = load_reward_pairs(csv_file, "gtn", "real")
    assert pairs.labels == ("[SM(10)]", "A", "C") and pairs.cheap == (0.5, 0.2, 0.1)
    assert pairs.reference == (0.9, 0.3, 0.2) and pairs.dropped == 1
    records = tmp_path / "r.json"
    records.write_text(json.dumps([{"gtn": 1, "real": 2}, {"gtn": None, "real": 1},
                                   {"gtn": 3, "real": 4}]))  # fmt: skip
    pairs = load_reward_pairs(records, "gtn", "real")
    assert pairs.cheap == (1.0, 3.0) and pairs.labels == ("1", "3") and pairs.dropped == 1
    columns = tmp_path / "c.json"
    columns.write_text(json.dumps({"gtn": [1, 2, 3], "real": [3, 2, 1]}))
    assert load_reward_pairs(columns, "gtn", "real").reference == (3.0, 2.0, 1.0)


def test_load_errors_name_the_problem(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_reward_pairs(tmp_path / "missing.csv", "a", "b")
    bad = tmp_path / "r.csv"
    bad.write_text("gtn,real\n0.5,high\n")
    with pytest.raises(ConfigError, match="'high'"):
        load_reward_pairs(bad, "gtn", "real")
    with pytest.raises(ConfigError, match=r"no column 'acc'.*\['gtn', 'real'\]"):
        load_reward_pairs(bad, "acc", "real")
    broken = tmp_path / "r.json"
    broken.write_text("{not json")
    with pytest.raises(ConfigError, match="JSON"):
        load_reward_pairs(broken, "a", "b")


def test_scatter_plot(tmp_path):
    result = rank_correlation(REFERENCE, REFERENCE, resamples=10)
    path = plot_scatter(REFERENCE, REFERENCE, tmp_path / "s" / "scatter.png", result=result)
    assert path.is_file() and path.stat().st_size > 1000
