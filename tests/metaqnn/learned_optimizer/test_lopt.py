"""The learned optimizer: one update rule for the Optimizer and the functional unroll, vmap over
the population, checkpoints that resume exactly, and clear errors."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from metaqnn.learned_optimizer.checkpoints import CheckpointError, ESConfig, load_lopt_checkpoint
from metaqnn.learned_optimizer.es import ESTrainer, unroll
from metaqnn.learned_optimizer.optimizer import (
    LearnedOptimizer,
    LOptConfig,
    SmallConvNet,
    init_state,
    init_theta,
    lopt_update,
    theta_shapes,
)
from metaqnn.learned_optimizer.task import LOptTask, batch_indices


def _model(seed: int) -> nn.Module:
    return SmallConvNet(1, 3, (2, 3), (2, 1), generator=torch.Generator().manual_seed(seed))


def _task() -> LOptTask:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(24, 1, 4, 4, generator=gen)
    y = torch.randint(3, (24,), generator=gen)

    def corrupt(images: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return images + 0.1 * torch.randn(images.shape, generator=g)

    return LOptTask(_model, x[:16], y[:16], x[16:], y[16:], corrupt)


def _es(**overrides) -> ESConfig:
    values = dict(outer_steps=4, pairs=2, truncation=3, inner_steps=5, batch_size=4,
                  val_batch=6, sigma=0.05, outer_lr=0.01, checkpoint_every=100)  # fmt: skip
    return ESConfig(**{**values, **overrides})


def test_optimizer_and_functional_unroll_agree():
    """The Optimizer and the pure unroll apply the same update rule to the same batches."""
    config = LOptConfig(step_mult=0.05)
    theta = init_theta(config, seed=3)
    task = _task()
    batches = []
    for t in range(4):
        i = batch_indices(16, 4, 7, t)
        batches.append((task.train_x[i], task.train_y[i]))
    model = _model(1)
    start = {k: v.detach().clone() for k, v in model.named_parameters()}
    params, _ = unroll(model, theta, start, init_state(start, config), 0, batches, config)

    opt = LearnedOptimizer(model.parameters(), theta, config)
    for x, y in batches:
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), params[name], rtol=1e-5, atol=1e-6)
        assert not torch.equal(p.detach(), start[name])  # it did move
    assert opt.steps_taken == 4


def test_update_moves_against_the_gradient_with_a_descent_theta():
    """A theta that outputs -(g / rms(g)) on the Adam-like feature is a descent method: the
    update rule really reads its features and applies ``step_mult * d * exp(exp_mult m)``."""
    config = LOptConfig(step_mult=0.01)
    theta = {k: torch.zeros(s) for k, s in theta_shapes(config).items()}
    adam_feature = 3 + len(config.momentum_decays)  # g / sqrt(v) after g, p, log|p|, momenta
    theta["w1"][adam_feature, 0], theta["w1"][adam_feature, 1] = 1.0, -1.0
    theta["w2"][0, 0], theta["w2"][1, 0] = 1.0, -1.0  # d = relu(f) - relu(-f) = f
    target = torch.randn(8, generator=torch.Generator().manual_seed(0))
    w = nn.Parameter(torch.zeros(8))
    opt = LearnedOptimizer([w], theta, config)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = (w - target).square().sum()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


def test_optimizer_trains_any_module_and_keeps_params_without_grad():
    """Parameter groups, a frozen parameter and a module with BatchNorm work."""
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    frozen = model[2].bias
    frozen.requires_grad_(False)
    before = frozen.detach().clone()
    groups = lambda: [  # noqa: E731
        {"params": list(model[0].parameters())},
        {"params": [model[1].weight, model[2].weight]},
    ]
    opt = LearnedOptimizer(groups(), init_theta(LOptConfig(), seed=0))
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(1))
    F.cross_entropy(model(x), torch.tensor([0, 1, 0, 1, 0])).backward()
    w_before = model[0].weight.detach().clone()
    opt.step()
    assert torch.equal(frozen, before)
    assert not torch.equal(model[0].weight, w_before)
    state = opt.state_dict()
    again = LearnedOptimizer(groups(), init_theta(LOptConfig(), seed=9))
    again.load_state_dict(state)
    assert again.steps_taken == 1
    assert torch.equal(again.theta["w1"], opt.theta["w1"])


def test_vmap_population_equals_one_at_a_time():
    task = _task()
    a = ESTrainer(task, _es(vmap=True))
    b = ESTrainer(task, _es(vmap=False))
    theta = {k: v.detach() for k, v in a.theta.items()}
    thetas = {k: torch.stack([v, v + 0.1, v - 0.2]) for k, v in theta.items()}
    results = []
    for trainer in (a, b):
        inner = trainer._current_run()
        with torch.no_grad():
            results.append(trainer.population_losses(thetas, inner, 3, torch.Generator()))
    (la, pa, sa), (lb, pb, sb) = results
    assert la.shape == (3,) and len(set(la.tolist())) == 3  # three different optimizers
    torch.testing.assert_close(la, lb, rtol=1e-5, atol=1e-6)
    for k in pa:
        torch.testing.assert_close(pa[k], pb[k], rtol=1e-5, atol=1e-6)
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=1e-5, atol=1e-6)


def test_es_step_moves_theta_and_carries_the_inner_run_on():
    trainer = ESTrainer(_task(), _es())
    start = {k: v.detach().clone() for k, v in trainer.theta.items()}
    records = trainer.run(progress=False)
    assert [r.inner_step for r in records] == [3, 5, 3, 5]  # truncations of 3 in runs of 5
    assert trainer.inner is not None and trainer.inner.run == 1
    assert any(not torch.equal(start[k], trainer.theta[k]) for k in start)
    assert all(r.grad_norm > 0 for r in records)


def test_resume_repeats_a_straight_run_exactly(tmp_path):
    straight = ESTrainer(_task(), _es())
    straight.run(progress=False)

    first = ESTrainer(_task(), _es(), checkpoint_path=tmp_path / "checkpoint.pt")
    first.run(progress=False, until=2)
    state = load_lopt_checkpoint(tmp_path)
    assert state["step"] == 2
    resumed = ESTrainer(_task(), _es())
    resumed.load_state(state)
    resumed.run(progress=False)
    for k in straight.theta:
        assert torch.equal(straight.theta[k], resumed.theta[k])
    assert [r.meta_loss for r in straight.history] == [r.meta_loss for r in resumed.history]


def test_same_seed_same_result_other_seed_differs():
    a, b, c = (ESTrainer(_task(), _es(seed=s)) for s in (0, 0, 1))
    for t in (a, b, c):
        t.run(progress=False, until=2)
    assert torch.equal(a.theta["w1"], b.theta["w1"])
    assert not torch.equal(a.theta["w1"], c.theta["w1"])


def test_diverging_unrolls_are_clipped_not_fatal():
    config = LOptConfig(step_mult=1e3)  # huge steps: the inner model blows up
    trainer = ESTrainer(_task(), _es(max_loss=5.0), config)
    record = trainer.outer_step()
    assert record.diverged > 0
    assert all(torch.isfinite(v).all() for v in trainer.theta.values())


def test_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no such"):
        load_lopt_checkpoint(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_lopt_checkpoint(bad)
    trainer = ESTrainer(_task(), _es())
    good = trainer.save(tmp_path / "run" / "checkpoint.pt")
    state = load_lopt_checkpoint(good)
    torch.save({**state, "kind": "gtn-meta"}, bad)
    with pytest.raises(CheckpointError, match="not a learned-optimizer checkpoint"):
        load_lopt_checkpoint(bad)
    torch.save({**state, "format_version": 99}, bad)
    with pytest.raises(CheckpointError, match="format version 99"):
        load_lopt_checkpoint(bad)
    torch.save({k: v for k, v in state.items() if k != "theta"}, bad)
    with pytest.raises(CheckpointError, match="lacks"):
        load_lopt_checkpoint(bad)


@pytest.mark.parametrize(
    ("cls", "field", "value", "message"),
    [
        (LOptConfig, "hidden", 0, "hidden=0"),
        (LOptConfig, "momentum_decays", (0.5, 1.0), "decay 1.0"),
        (LOptConfig, "step_mult", 0.0, "step_mult=0.0"),
        (ESConfig, "pairs", 0, "pairs=0"),
        (ESConfig, "sigma", -1.0, "sigma=-1.0"),
        (ESConfig, "truncation", 2.5, "truncation=2.5"),
    ],
)
def test_bad_configs_name_the_value(cls, field, value, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(cls(), **{field: value})


def test_theta_of_the_wrong_shape_is_refused():
    theta = init_theta(LOptConfig(hidden=8))
    with pytest.raises(ValueError, match="theta shapes"):
        LearnedOptimizer([nn.Parameter(torch.zeros(2))], theta, LOptConfig())


def test_lopt_update_is_pure():
    config = LOptConfig()
    params = {"w": torch.randn(3, 2, generator=torch.Generator().manual_seed(0))}
    grads = {"w": torch.ones(3, 2)}
    state = init_state(params, config)
    copies = [{k: v.clone() for k, v in d.items()} for d in (params, grads, state)]
    new_p, new_s = lopt_update(init_theta(config), params, grads, state, 0, config)
    for before, after in zip(copies, (params, grads, state), strict=True):
        for k in before:
            assert torch.equal(before[k], after[k])
    assert new_s["m/w"].shape == (len(config.momentum_decays), 3, 2)
    assert new_p["w"].shape == (3, 2)


def test_adam_start_descends_and_unknown_start_is_refused():
    config = LOptConfig(step_mult=0.05)
    target = torch.randn(6, 4, generator=torch.Generator().manual_seed(1))
    w = nn.Parameter(torch.zeros(6, 4))
    opt = LearnedOptimizer([w], init_theta(config, seed=0, kind="adam"), config)
    losses = []
    for _ in range(40):
        opt.zero_grad()
        loss = (w - target).square().sum()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    with pytest.raises(ValueError, match="'sgd'"):
        init_theta(config, kind="sgd")
    with pytest.raises(ValueError, match="theta_init='sgd'"):
        ESConfig(theta_init="sgd")


def test_antithetic_estimate_descends_a_linear_meta_loss(monkeypatch):
    """With a meta-loss linear in theta, L = <c, theta>, the antithetic estimate is an unbiased
    estimate of c: with many pairs Adam's first step has the sign of -c almost everywhere."""
    small = LOptConfig(hidden=4, time_scales=(1.0,))  # 74 weights
    trainer = ESTrainer(_task(), _es(pairs=3000, sigma=0.1, max_loss=1e9, log_loss=False), small)
    c = {k: torch.randn(v.shape, generator=torch.Generator().manual_seed(5)) for k, v in
         trainer.theta.items()}  # fmt: skip

    def linear(thetas, inner, count, gen):
        size = next(iter(thetas.values())).shape[0]
        losses = sum((thetas[k] * c[k]).flatten(1).sum(1) for k in thetas)  # (size,)
        stack = lambda d: {k: v.expand(size, *v.shape) for k, v in d.items()}  # noqa: E731
        return losses, stack(inner.params), stack(inner.state)

    monkeypatch.setattr(trainer, "population_losses", linear)
    before = {k: v.detach().clone() for k, v in trainer.theta.items()}
    trainer.outer_step()
    agree = total = 0
    for k in c:
        step = trainer.theta[k].detach() - before[k]
        agree += int((torch.sign(step) == -torch.sign(c[k])).sum())
        total += c[k].numel()
    assert agree / total > 0.9


def test_zero_output_on_the_adam_base_is_exactly_adam():
    """theta with a zero output layer under ``base="adam"`` takes torch Adam's steps: the same
    trajectory as ``torch.optim.Adam(lr=base_lr)`` (up to float rounding), as an Optimizer and
    as the functional unroll ES uses."""
    config = LOptConfig(base="adam", base_lr=0.02, exp_mult=0.1)
    theta = init_theta(config, seed=4, kind="zero_output")
    assert not theta["w1"].eq(0).all() and theta["w2"].eq(0).all()
    task = _task()
    batches = [(task.train_x[i], task.train_y[i]) for i in
               (batch_indices(16, 4, 3, t) for t in range(12))]  # fmt: skip
    models = [_model(2), _model(2)]
    start = {k: v.detach().clone() for k, v in models[0].named_parameters()}
    optimizers = [LearnedOptimizer(models[0].parameters(), theta, config),
                  torch.optim.Adam(models[1].parameters(), lr=0.02)]  # fmt: skip
    for x, y in batches:
        for model, opt in zip(models, optimizers, strict=True):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
    unrolled, _ = unroll(models[0], theta, start, init_state(start, config), 0, batches, config)
    for (name, p), q in zip(models[0].named_parameters(), models[1].parameters(), strict=True):
        assert not torch.equal(p.detach(), start[name])
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(unrolled[name], q.detach(), rtol=1e-5, atol=1e-6)


def test_adam_base_outputs_scale_the_step_and_add_a_direction():
    """Output biases act as documented: ``m`` multiplies Adam's step by ``exp(exp_mult m)``,
    ``d`` adds ``step_mult * d`` to every entry."""
    config = LOptConfig(base="adam", base_lr=0.1, exp_mult=0.5, step_mult=0.01)
    params = {"w": torch.randn(4, 3, generator=torch.Generator().manual_seed(0))}
    grads = {"w": torch.randn(4, 3, generator=torch.Generator().manual_seed(1))}
    state = init_state(params, config)
    zero = init_theta(config, kind="zero_output")
    adam_p, _ = lopt_update(zero, params, grads, state, 0, config)
    first_adam_step = params["w"] - adam_p["w"]  # Adam's first step is lr * sign(g)
    torch.testing.assert_close(first_adam_step, 0.1 * grads["w"].sign(), rtol=1e-5, atol=1e-6)
    scaled = {**zero, "b2": torch.tensor([2.0, 2.0])}  # d = 2, m = 2
    new_p, _ = lopt_update(scaled, params, grads, state, 0, config)
    expected = first_adam_step * torch.exp(torch.tensor(1.0)) + 0.01 * 2.0
    torch.testing.assert_close(params["w"] - new_p["w"], expected, rtol=1e-5, atol=1e-6)


def test_base_options_are_checked():
    with pytest.raises(ValueError, match="base='sgd'"):
        LOptConfig(base="sgd")
    with pytest.raises(ValueError, match=r"base_beta1=0\.8"):
        LOptConfig(base="adam", base_beta1=0.8)
    with pytest.raises(ValueError, match=r"base_lr=0\.0"):
        LOptConfig(base="adam", base_lr=0.0)
    assert LOptConfig.from_dict({"hidden": 32}).base == "none"  # checkpoints before the bases


def test_burn_in_scores_only_the_end_of_each_inner_run():
    """With burn_in = inner_steps - truncation every ES step scores the last truncation of a
    fresh inner run, and the steps before it are the unperturbed optimizer's own."""
    config = LOptConfig(base="adam", exp_mult=0.1)
    es = _es(inner_steps=6, truncation=2, burn_in=4, theta_init="zero_output")
    trainer = ESTrainer(_task(), es, config)
    records = trainer.run(progress=False)
    assert [r.inner_step for r in records] == [6, 6, 6, 6]
    assert trainer.inner is not None and trainer.inner.run == 3  # one inner run per ES step

    # the burn-in equals the central theta's own unroll over the run's first batches
    fresh = ESTrainer(_task(), es, config)
    inner = fresh._current_run()
    params, state = inner.params, inner.state
    theta = {k: v.detach() for k, v in fresh.theta.items()}
    expected, _ = unroll(fresh._model, theta, params, state, 0, fresh._batches(inner, 4), config)
    fresh._burn_in(inner)
    assert inner.step == 4
    for k in expected:
        torch.testing.assert_close(inner.params[k], expected[k])
    with pytest.raises(ValueError, match="burn_in=6"):
        _es(inner_steps=6, burn_in=6)
    with pytest.raises(ValueError, match="burn_in=-1"):
        _es(burn_in=-1)


def test_burn_in_resumes_exactly(tmp_path):
    es = _es(inner_steps=6, truncation=2, burn_in=3)
    straight = ESTrainer(_task(), es)
    straight.run(progress=False)
    first = ESTrainer(_task(), es, checkpoint_path=tmp_path / "checkpoint.pt")
    first.run(progress=False, until=3)
    resumed = ESTrainer(_task(), es)
    resumed.load_state(load_lopt_checkpoint(tmp_path))
    resumed.run(progress=False)
    assert [r.meta_loss for r in straight.history] == [r.meta_loss for r in resumed.history]
    assert [r.inner_step for r in straight.history] == [5, 6, 5, 6]
