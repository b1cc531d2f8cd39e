"""``GTNTeacher``: a generator, a curriculum and a learned inner schedule that train a learner."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch
import torch.utils.checkpoint
from torch import nn

from gtn.curriculum import build_curriculum
from gtn.generator import Generator, GeneratorConfig
from gtn.inner_loop import BatchFn, LearnedSGD, UnrollResult, model_params, unroll
from gtn.population import stack_learners, unroll_population, unstack_into


@dataclass(frozen=True)
class TeacherConfig:
    """What a :class:`GTNTeacher` is made of."""

    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    """The generator's shape."""
    curriculum: str = "full"
    """Curriculum name (see ``gtn.curriculum.CURRICULA``)."""
    inner_steps: int = 32
    """Inner steps the curriculum and the schedule cover."""
    inner_batch: int = 128
    """Synthetic examples per inner step."""
    soft_labels: bool = False
    """Learn a label distribution for every learned input."""
    init_lr: float = 0.02
    """Initial inner learning rate (the paper's)."""
    init_momentum: float = 0.5
    """Initial inner momentum (the paper's)."""
    inner_rule: str = "sgd"
    """Step rule of the inner optimiser (``gtn.inner_loop.STEP_RULES``): ``sgd``, the paper's,
    or ``relative``, per-tensor steps in proportion to each tensor's norm (one schedule for
    architectures of very different gradient scales: the search space)."""
    seed: int = 0
    """Seed of the teacher's initialisation."""

    def to_dict(self) -> dict:
        """Plain-dict form (for checkpoints and TensorBoard)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TeacherConfig:
        """Inverse of :meth:`to_dict`."""
        data = dict(data)
        gen = dict(data.pop("generator"))
        for key in ("conv_channels", "low", "high"):
            gen[key] = tuple(gen[key])
        return cls(generator=GeneratorConfig(**gen), **data)


class SyntheticTeacher(nn.Module, abc.ABC):
    """What the meta-trainer trains: synthetic batches plus a learned inner schedule.

    Subclasses (:class:`GTNTeacher`, :class:`gtn.distill.DistilledData`) provide ``config``
    (with ``inner_steps`` and ``to_dict()``), ``schedule`` (``lrs()``, ``momenta()``,
    ``steps``), :meth:`batches` and :meth:`sample_grid`; unrolling and teaching are shared.
    """

    #: The ``kind`` of this teacher's meta-training checkpoints.
    checkpoint_kind: str = ""

    @abc.abstractmethod
    def batches(
        self, generator: torch.Generator | None = None, *, checkpoint: bool = False
    ) -> BatchFn:
        """Step -> (inputs (B, C, H, W), targets (B,) or (B, K)); with ``checkpoint``, the
        graph of producing them is recomputed in the backward pass instead of kept."""

    @abc.abstractmethod
    def sample_grid(self, per_class: int = 8, seed: int = 0) -> torch.Tensor:
        """A (C, K*H, per_class*W) image in [0, 1], one row per class."""

    def unroll(
        self,
        learner: nn.Module,
        steps: int | None = None,
        *,
        generator: torch.Generator | None = None,
        create_graph: bool = True,
        truncate: int | None = None,
        checkpoint: bool = False,
        keep_steps: frozenset[int] = frozenset(),
    ) -> UnrollResult:
        """Unroll the inner loop on ``learner``'s current parameters (they are not changed)."""
        params, buffers = model_params(learner)
        return unroll(
            learner, params, buffers, self.batches(generator, checkpoint=checkpoint), self.schedule,
            steps or self.config.inner_steps, create_graph=create_graph, truncate=truncate,
            checkpoint=checkpoint, keep_steps=keep_steps,
        )  # fmt: skip

    def materialize(
        self, steps: int | None = None, *, seed: int = 0
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The batches :meth:`teach` draws with ``seed``, computed once without a graph.

        Teaching many learners with the same seed (a reward over many architectures) can reuse
        them: :meth:`teach` with ``batches=`` then skips the generator entirely.
        """
        device = next(self.parameters()).device
        rng = torch.Generator(device=device).manual_seed(seed)
        self.train()
        batch = self.batches(rng)
        with torch.no_grad():
            return [batch(t) for t in range(steps or self.config.inner_steps)]

    def teach(
        self,
        learner: nn.Module,
        steps: int | None = None,
        *,
        seed: int = 0,
        batches: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
    ) -> nn.Module:
        """Train ``learner`` in place for ``steps`` synthetic steps (default: all) and return it.

        The teacher is left unchanged (a generator's batch norm uses batch statistics, as in
        meta-training); the same seed gives the same batches. ``batches`` (from
        :meth:`materialize`) are used instead of generating them.
        """
        steps = steps or self.config.inner_steps
        if batches is None:
            device = next(self.parameters()).device
            rng = torch.Generator(device=device).manual_seed(seed)
            self.train()
            result = self.unroll(learner, steps, generator=rng, create_graph=False)
        else:
            if len(batches) < steps:
                raise ValueError(f"{len(batches)} materialized batches for {steps} steps")
            params, buffers = model_params(learner)
            result = unroll(
                learner,
                params,
                buffers,
                lambda t: batches[t],
                self.schedule,
                steps,
                create_graph=False,
            )
        with torch.no_grad():
            for name, param in learner.named_parameters():
                param.copy_(result.params[name])
        return learner

    def teach_many(
        self,
        learners: Sequence[nn.Module],
        steps: int | None = None,
        *,
        seed: int = 0,
        batches: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
    ) -> Sequence[nn.Module]:
        """:meth:`teach` for several initialisations of one architecture at once: one
        ``vmap``-ed step trains them all (see :mod:`gtn.population`). Every learner sees the
        same batches (those of ``seed``, or ``batches``); each ends as :meth:`teach` would
        leave it, up to floating-point summation order."""
        steps = steps or self.config.inner_steps
        if batches is None:
            batches = self.materialize(steps, seed=seed)
        if len(batches) < steps:
            raise ValueError(f"{len(batches)} materialized batches for {steps} steps")
        params, buffers = stack_learners(learners)
        params = unroll_population(learners[0], params, buffers, batches, self.schedule, steps)
        unstack_into(learners, params)
        return learners


class GTNTeacher(SyntheticTeacher):
    """Trains any learner module for up to ``inner_steps`` steps on synthetic data.

    Args:
        config: The teacher's shape and initial schedule.
    """

    checkpoint_kind = "gtn-meta"

    def __init__(self, config: TeacherConfig) -> None:
        super().__init__()
        self.config = config
        with torch.random.fork_rng(devices=[]):  # seeded init, caller's RNG untouched
            torch.manual_seed(config.seed)
            self.generator = Generator(config.generator)
        self.curriculum = build_curriculum(
            config.curriculum,
            steps=config.inner_steps,
            batch_size=config.inner_batch,
            noise_dim=config.generator.noise_dim,
            num_classes=config.generator.num_classes,
            soft_labels=config.soft_labels,
            seed=config.seed,
        )
        self.schedule = LearnedSGD(
            config.inner_steps, config.init_lr, config.init_momentum, rule=config.inner_rule
        )

    def batches(
        self, generator: torch.Generator | None = None, *, checkpoint: bool = False
    ) -> BatchFn:
        """Step -> (synthetic images (B, C, H, W), targets) drawn through the curriculum.

        With ``checkpoint``, the generator's activations are not kept: its forward pass is
        recomputed in the backward pass (the noise is drawn once, outside, so the recomputation
        sees the same inputs).
        """

        def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
            inputs = self.curriculum(step, generator)
            if checkpoint and torch.is_grad_enabled():
                x = torch.utils.checkpoint.checkpoint(
                    self.generator, inputs.noise, inputs.labels, use_reentrant=False
                )
            else:
                x = self.generator(inputs.noise, inputs.labels)  # (B, C, H, W)
            return x, inputs.labels if inputs.targets is None else inputs.targets

        return batch

    def sample_grid(self, per_class: int = 8, seed: int = 0) -> torch.Tensor:
        """What the learner is taught: a (C, K*H, per_class*W) image in [0, 1] whose row k
        holds the first ``per_class`` synthetic examples of class k in curriculum order."""
        config = self.config.generator
        device = next(self.parameters()).device
        rng = torch.Generator(device=device).manual_seed(seed)
        k, n = config.num_classes, per_class
        rows: list[list[torch.Tensor]] = [[] for _ in range(k)]
        gen = self.generator
        with torch.no_grad():
            for step in range(self.config.inner_steps):
                batch = self.curriculum(step, rng)
                x = gen(batch.noise, batch.labels)  # (B, C, H, W)
                x = (x - (gen.center - gen.half_range)) / (2 * gen.half_range)  # -> [0, 1]
                for image, label in zip(x, batch.labels.tolist(), strict=True):
                    if len(rows[label]) < n:
                        rows[label].append(image)
                if all(len(r) == n for r in rows):
                    break
        c, h, w = config.channels, config.image_size, config.image_size
        blank = torch.zeros(c, h, w, device=device)
        grid = torch.stack([torch.stack(r + [blank] * (n - len(r))) for r in rows])  # (K,n,C,H,W)
        return grid.clamp(0, 1).permute(2, 0, 3, 1, 4).reshape(c, k * h, n * w).cpu()
