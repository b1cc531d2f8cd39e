"""Several learners taught at once with vmap: the same result as teaching them one by one."""

import pytest
import torch
from torch import nn

from gtn.inner_loop import LearnedSGD
from gtn.population import evaluate_population, stack_learners, unroll_population
from tests.gtn.tiny import blobs, flat, learner


def _batches(steps: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [blobs(16, seed=t) for t in range(steps)]


def _sequential(model: nn.Module, batches, schedule: LearnedSGD) -> torch.Tensor:
    """The inner loop's update written out for one learner (the reference)."""
    params = [p.detach().clone() for p in model.parameters()]
    velocity = [torch.zeros_like(p) for p in params]
    names = [n for n, _ in model.named_parameters()]
    lrs, momenta = schedule.lrs().detach(), schedule.momenta().detach()
    for t, (x, y) in enumerate(batches):
        current = {n: p.requires_grad_() for n, p in zip(names, params, strict=True)}
        logits = torch.func.functional_call(model, current, (x,))
        grads = torch.autograd.grad(nn.functional.cross_entropy(logits, y), params)
        velocity = [momenta[t] * v + g for v, g in zip(velocity, grads, strict=True)]
        params = [(p - lrs[t] * v).detach() for p, v in zip(params, velocity, strict=True)]
    return torch.cat([p.flatten() for p in params])


def test_vmapped_unroll_matches_one_learner_at_a_time():
    schedule = LearnedSGD(4, lr=0.1, momentum=0.5)
    with torch.no_grad():
        schedule.log_lr += torch.linspace(-0.5, 0.5, 4)  # a non-constant schedule
    learners = [learner(seed) for seed in range(3)]
    batches = _batches(4)
    params, buffers = stack_learners(learners)
    trained = unroll_population(learners[0], params, buffers, batches, schedule, 4)
    for i, one in enumerate(learners):
        member = torch.cat([trained[n][i].flatten() for n, _ in one.named_parameters()])
        reference = _sequential(one, batches, schedule)
        assert torch.allclose(member, reference, atol=1e-5), i
        assert not torch.equal(member, flat(one))  # it trained


def test_evaluate_population_scores_every_member():
    learners = [learner(seed) for seed in range(3)]
    x, y = blobs(50, seed=9)
    params, buffers = stack_learners(learners)
    acc, loss = evaluate_population(learners[0], params, buffers, x, y, batch_size=20)
    for i, one in enumerate(learners):
        with torch.no_grad():
            logits = one(x)
        assert acc[i].item() == pytest.approx((logits.argmax(1) == y).float().mean().item())
        assert loss[i].item() == pytest.approx(
            nn.functional.cross_entropy(logits, y).item(), rel=1e-5
        )
    assert acc.shape == (3,)


def test_stack_learners_refuses_mismatched_or_stateful_learners():
    with pytest.raises(ValueError, match="at least one"):
        stack_learners([])
    other = nn.Sequential(nn.Conv2d(1, 2, 3))
    with pytest.raises(ValueError, match="learner 1 differs"):
        stack_learners([learner(0), other])
    bn = nn.Sequential(nn.BatchNorm2d(1))
    with pytest.raises(ValueError, match="running statistics"):
        stack_learners([bn, bn])


def test_unroll_population_checks_the_step_count():
    learners = [learner(0), learner(1)]
    params, buffers = stack_learners(learners)
    with pytest.raises(ValueError, match="5 inner steps requested"):
        unroll_population(learners[0], params, buffers, _batches(2), LearnedSGD(5), 5)
