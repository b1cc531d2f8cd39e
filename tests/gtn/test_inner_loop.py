import pytest
import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from gtn.inner_loop import LearnedSGD, model_params, unroll
from tests.gtn.tiny import central_difference, float64_problem
from tests.gtn.tiny import meta_loss as _meta_loss
from tests.gtn.tiny import mlp as _tiny_learner


def test_meta_gradient_matches_finite_differences():
    """d(meta-loss)/d(synthetic data, log lr, momentum logit), float64, central differences."""
    steps = 4
    syn, syn_y, real_x, real_y = float64_problem(steps)
    sched = LearnedSGD(steps, lr=0.3, momentum=0.6).double()
    learner = _tiny_learner()
    loss = _meta_loss(learner, syn, syn_y, sched, real_x, real_y, steps)
    d_syn, d_lr, d_m = torch.autograd.grad(loss, [syn, sched.log_lr, sched.momentum_logit])

    def numeric(tensor, index):
        return central_difference(
            lambda: _meta_loss(learner, syn, syn_y, sched, real_x, real_y, steps), tensor, index
        )

    for index in [(0, 0, 0), (1, 2, 3), (3, 3, 5)]:
        assert d_syn[index].item() == pytest.approx(numeric(syn, index).item(), rel=1e-5, abs=1e-9)
    for t in range(steps):
        assert d_lr[t].item() == pytest.approx(numeric(sched.log_lr, t).item(), rel=1e-5, abs=1e-9)
    assert d_m[0].item() == 0.0  # step 0's momentum multiplies a zero velocity
    for t in range(1, steps):
        assert d_m[t].item() == pytest.approx(numeric(sched.momentum_logit, t).item(), rel=1e-5,
                                              abs=1e-9)  # fmt: skip


@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("truncate", [None, 3])
def test_gradient_checkpointing_gives_the_same_meta_gradient(soft, truncate):
    """Recomputing each step in the backward pass changes memory, not the gradient (float64),
    with hard or learned soft labels, truncation and an intermediate meta-loss."""
    g = torch.Generator().manual_seed(2)
    steps = 5
    syn = torch.randn(steps, 4, 6, generator=g, dtype=torch.float64, requires_grad=True)
    if soft:
        syn_y = torch.randn(steps, 4, 3, generator=g, dtype=torch.float64).softmax(-1)
        syn_y.requires_grad_()
    else:
        syn_y = torch.randint(3, (steps, 4), generator=g)
    real_x = torch.randn(10, 6, generator=g, dtype=torch.float64)
    real_y = torch.randint(3, (10,), generator=g)
    sched = LearnedSGD(steps, lr=0.3, momentum=0.6).double()
    wrt = [syn, sched.log_lr, sched.momentum_logit] + ([syn_y] if soft else [])
    grads = []
    for checkpoint in (False, True):
        learner = _tiny_learner()
        loss = _meta_loss(learner, syn, syn_y, sched, real_x, real_y, steps, truncate=truncate,
                          checkpoint=checkpoint, keep=frozenset({2}))  # fmt: skip
        grads.append((loss.detach(), torch.autograd.grad(loss, wrt + list(learner.parameters()),
                                                         allow_unused=True)))  # fmt: skip
    (loss_a, ga), (loss_b, gb) = grads
    assert torch.equal(loss_a, loss_b)
    assert any(a is not None and a.abs().sum() > 0 for a in ga)
    for a, b in zip(ga, gb, strict=True):
        if a is None or b is None:
            assert (a is None or a.abs().sum() == 0) and (b is None or b.abs().sum() == 0)
        else:
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_truncation_cuts_the_gradient_to_early_steps():
    g = torch.Generator().manual_seed(1)
    syn = torch.randn(6, 4, 6, generator=g, dtype=torch.float64, requires_grad=True)
    syn_y = torch.randint(3, (6, 4), generator=g)
    real_x, real_y = torch.randn(8, 6, dtype=torch.float64, generator=g), torch.randint(3, (8,))
    sched = LearnedSGD(6, lr=0.1).double()
    loss = _meta_loss(_tiny_learner(), syn, syn_y, sched, real_x, real_y, 6, truncate=2)
    (d_syn,) = torch.autograd.grad(loss, [syn])
    assert d_syn[:4].abs().sum() == 0
    assert d_syn[4:].abs().sum() > 0


def test_unroll_without_graph_matches_torch_sgd():
    g = torch.Generator().manual_seed(2)
    xs, ys = torch.randn(5, 4, 6, generator=g), torch.randint(3, (5, 4), generator=g)
    sched = LearnedSGD(5, lr=0.05, momentum=0.7)
    with torch.no_grad():
        sched.log_lr.copy_(torch.log(torch.tensor([0.05, 0.1, 0.02, 0.07, 0.03])))
    learner = _tiny_learner(torch.float32)
    params, buffers = model_params(learner)
    result = unroll(
        learner, params, buffers, lambda t: (xs[t], ys[t]), sched, 5, create_graph=False
    )
    reference = _tiny_learner(torch.float32)
    opt = torch.optim.SGD(reference.parameters(), lr=0.05, momentum=0.7)
    for t in range(5):
        for group in opt.param_groups:
            group["lr"] = float(sched.lrs()[t].detach())
            group["momentum"] = float(sched.momenta()[t].detach())
        opt.zero_grad()
        nn.functional.cross_entropy(reference(xs[t]), ys[t]).backward()
        opt.step()
    for name, p in reference.named_parameters():
        assert torch.allclose(result.params[name], p, atol=1e-6)
    assert learner[1].weight.data_ptr() != result.params["1.weight"].data_ptr()


def test_unroll_through_weight_norm_learner():
    torch.manual_seed(0)
    learner = nn.Sequential(weight_norm(nn.Conv2d(1, 4, 3, padding=1)), nn.LeakyReLU(0.1),
                            nn.Flatten(), weight_norm(nn.Linear(4 * 8 * 8, 10)))  # fmt: skip
    syn = torch.randn(3, 8, 1, 8, 8, requires_grad=True)
    ys = torch.randint(10, (3, 8))
    params, buffers = model_params(learner)
    assert any("original0" in n for n in params)
    result = unroll(learner, params, buffers, lambda t: (syn[t], ys[t]), LearnedSGD(3), 3)
    out = torch.func.functional_call(learner, (result.params, buffers), (torch.randn(2, 1, 8, 8),))
    (grad,) = torch.autograd.grad(out.sum(), [syn])
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_too_many_steps_is_an_error():
    learner = _tiny_learner(torch.float32)
    params, buffers = model_params(learner)
    with pytest.raises(ValueError, match="schedule has 2"):
        unroll(learner, params, buffers, lambda t: None, LearnedSGD(2), 3)
