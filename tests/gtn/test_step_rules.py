"""Step rules of the inner optimiser: ``sgd`` (the gradient) and ``relative`` (per-tensor steps
in proportion to each tensor's norm)."""

import pytest
import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from gtn.inner_loop import (
    RELATIVE_FLOOR,
    STEP_RULES,
    LearnedSGD,
    model_params,
    sgd_step,
    unroll,
)
from gtn.population import stack_learners, unroll_population
from gtn.teacher import GTNTeacher, TeacherConfig
from tests.gtn.tiny import blobs, central_difference, flat, learner
from tests.gtn.tiny import float64_problem as _problem
from tests.gtn.tiny import meta_loss as _meta_loss
from tests.gtn.tiny import mlp as _tiny


def test_relative_step_moves_every_tensor_by_lr_of_its_norm():
    """With zero velocity and momentum, each tensor moves by lr * (its norm + the floor),
    whatever its gradient's size; a zero tensor (a bias) still moves, by lr * the floor."""
    model = _tiny(torch.float32)
    with torch.no_grad():
        model[1].bias.zero_()
    params, buffers = model_params(model)
    velocity = {n: torch.zeros_like(p) for n, p in params.items()}
    x, y = torch.randn(8, 6), torch.randint(3, (8,))
    lr, zero = torch.tensor(0.05), torch.tensor(0.0)
    new, _, _ = sgd_step(model, params, buffers, velocity, x, y, lr, zero, create_graph=False,
                         rule="relative")  # fmt: skip
    for name, p in params.items():
        moved = (new[name] - p).norm().item()
        floor = RELATIVE_FLOOR * p.numel() ** 0.5
        assert moved == pytest.approx(0.05 * (p.norm().item() + floor), rel=1e-4), name
    assert (new["1.bias"] - params["1.bias"]).abs().sum() > 0


def test_relative_rule_ignores_the_gradient_scale_and_sgd_is_the_gradient():
    g = torch.Generator().manual_seed(3)
    p, grad = torch.randn(4, 5, generator=g), torch.randn(4, 5, generator=g)
    relative = STEP_RULES["relative"]
    torch.testing.assert_close(relative(p, 1000 * grad), relative(p, grad))
    torch.testing.assert_close(relative(2 * p, grad), 2 * relative(p, grad), rtol=2e-2, atol=0)
    assert torch.equal(STEP_RULES["sgd"](p, grad), grad)


def test_relative_meta_gradient_is_exact_for_the_last_step_and_finite_elsewhere():
    """The rescaling factor is a constant of the meta-gradient, so the derivative in the last
    step's learning rate and momentum (which the factor does not depend on) equals central
    differences (float64); the rest is finite and non-zero."""
    steps = 4
    syn, syn_y, real_x, real_y = _problem(steps)
    sched = LearnedSGD(steps, lr=0.1, momentum=0.6, rule="relative").double()
    model = _tiny()
    loss = _meta_loss(model, syn, syn_y, sched, real_x, real_y, steps)
    d_syn, d_lr, d_m = torch.autograd.grad(loss, [syn, sched.log_lr, sched.momentum_logit])

    def numeric(tensor, index):
        return central_difference(
            lambda: _meta_loss(model, syn, syn_y, sched, real_x, real_y, steps), tensor, index
        )

    last = steps - 1
    assert d_lr[last].item() == pytest.approx(numeric(sched.log_lr, last).item(), rel=1e-5)
    assert d_m[last].item() == pytest.approx(numeric(sched.momentum_logit, last).item(), rel=1e-5)
    for grad in (d_syn, d_lr, d_m[1:]):
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_a_tensor_with_a_zero_gradient_keeps_the_meta_gradient_finite_and_stays():
    """A weight-normalised layer with one input (GAP of one channel, then the classifier) has a
    direction whose gradient is zero up to rounding; the relative rule leaves it in place
    (rather than blowing the residue up into a full step) and keeps the meta-gradient finite."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 1), nn.Tanh(), weight_norm(nn.Linear(1, 3))).double()
    steps = 4
    syn, syn_y, real_x, real_y = _problem(steps, seed=4)
    sched = LearnedSGD(steps, lr=0.1, momentum=0.6, rule="relative").double()
    params, buffers = model_params(model)
    result = unroll(model, params, buffers, lambda t: (syn[t], syn_y[t]), sched, steps)
    direction = "2.parametrizations.weight.original1"
    assert (result.params[direction] - params[direction]).abs().max() < 1e-6
    logits = torch.func.functional_call(model, (result.params, buffers), (real_x,))
    loss = nn.functional.cross_entropy(logits, real_y)
    grads = torch.autograd.grad(loss, [syn, sched.log_lr, sched.momentum_logit])
    assert all(torch.isfinite(g).all() for g in grads)
    assert grads[0].abs().sum() > 0


def test_relative_rule_differs_from_sgd_and_checkpointing_keeps_its_meta_gradient():
    steps = 5
    syn, syn_y, real_x, real_y = _problem(steps, seed=1)
    sched = LearnedSGD(steps, lr=0.1, momentum=0.6, rule="relative").double()
    grads = []
    for checkpoint in (False, True):
        loss = _meta_loss(_tiny(), syn, syn_y, sched, real_x, real_y, steps, checkpoint=checkpoint)
        grads.append((loss.detach(), torch.autograd.grad(loss, [syn, sched.log_lr])))
    (loss_a, ga), (loss_b, gb) = grads
    assert torch.equal(loss_a, loss_b)
    for a, b in zip(ga, gb, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    sgd = LearnedSGD(steps, lr=0.1, momentum=0.6).double()
    assert _meta_loss(_tiny(), syn, syn_y, sgd, real_x, real_y, steps).item() != pytest.approx(
        loss_a.item(), rel=1e-3
    )


def test_vmapped_population_applies_the_relative_rule_per_member():
    schedule = LearnedSGD(4, lr=0.05, momentum=0.5, rule="relative")
    learners = [learner(seed) for seed in range(3)]
    batches = [blobs(16, seed=t) for t in range(4)]
    params, buffers = stack_learners(learners)
    trained = unroll_population(learners[0], params, buffers, batches, schedule, 4)
    for i, one in enumerate(learners):
        p, b = model_params(one)
        alone = unroll(one, p, b, lambda t: batches[t], schedule, 4, create_graph=False)
        member = torch.cat([trained[n][i].flatten() for n, _ in one.named_parameters()])
        reference = torch.cat([alone.params[n].flatten() for n, _ in one.named_parameters()])
        torch.testing.assert_close(member, reference, rtol=1e-4, atol=1e-5)
        assert not torch.equal(member, flat(one))


def test_unknown_rule_is_named_and_teacher_config_carries_the_rule():
    with pytest.raises(ValueError, match=r"'adam'.*sgd, relative"):
        LearnedSGD(4, rule="adam")
    config = TeacherConfig(inner_steps=2, inner_batch=8, inner_rule="relative")
    assert TeacherConfig.from_dict(config.to_dict()) == config
    old = config.to_dict()
    del old["inner_rule"]  # a checkpoint written before step rules existed
    assert TeacherConfig.from_dict(old).inner_rule == "sgd"
    assert GTNTeacher(config).schedule.rule == "relative"
    with pytest.raises(ValueError, match="'lars'"):
        GTNTeacher(TeacherConfig(inner_steps=2, inner_batch=8, inner_rule="lars"))
