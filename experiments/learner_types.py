"""GTN learner types: the study's seven, taught by 10 GTN steps, the full GTN and 1 real epoch.

The GTN robustness study meta-trained a GTN on one learner and found that it trains only some
learner types (global pooling or more layers stayed at chance). This experiment builds the
study's learner types (:data:`experiments.common.learner_zoo.LEARNER_TYPES`) with the teachers'
learner net config, at each configured width divisor, and trains each one

- by the first ``early_steps`` steps of a teacher's curriculum (the study's "10 GTN steps"),
- by all of its steps (the study's "full GTN"; 32 here),
- by ``real_epochs`` epoch(s) of real data (MetaQNN's recipe, no restarts),

over several initialisation seeds (seed ``s`` also draws the curriculum's noise), and reports
test accuracy (mean ± standard deviation) beside the study's numbers, once per teacher: the
teacher meta-trained on the base learner, and the same teacher meta-trained further across the
(width-scaled) search space. Real-data rows do not depend on the teacher: they are computed
once per width and reused. Every unit (a type, a seed, a teacher) is memoised, so a killed run
resumes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments.common.learner_zoo import (
    LEARNER_TYPES,
    STUDY_TABLE,
    Clock,
    LoadedTeacher,
    cpu_footer,
    fmt_mean_std,
    head,
    learner_architecture,
    load_teacher,
    mean_std,
    split_accuracy,
    teach,
    train_real,
)
from experiments.harness import REPO_ROOT, Context, Outcome, main
from metaqnn.core.nets import count_flops
from metaqnn.errors import ConfigError
from metaqnn.markdown import markdown_table
from metaqnn.teacher.run import TeacherRun

NAME = "learner_types"


@dataclass(frozen=True)
class Config:
    """What the learner-type table measures."""

    teachers: tuple[str, ...]
    """Teacher run folders (relative to the repository root); an empty string is a
    folder under the scratch folder (quick mode trains a tiny teacher there)."""
    teacher_labels: tuple[str, ...]
    """A column label per teacher."""
    teacher_outer_steps: tuple[int, ...]
    """Outer steps each teacher must have (reused if it has them, else resumed or trained)."""
    teacher_settings: tuple[TeacherRun, ...]
    """``TeacherRun`` fields per teacher (TOML tables), used only if it must be trained."""
    types: tuple[str, ...] = tuple(LEARNER_TYPES)
    """Learner types (keys of ``LEARNER_TYPES``)."""
    width_divisors: tuple[int, ...] = (16, 1)
    """Width divisors the types are built at (a table each)."""
    gtn_seeds: tuple[int, ...] = (5, 2)
    """Initialisation seeds of the GTN rows, per width divisor."""
    real_seeds: tuple[int, ...] = (5, 1)
    """Initialisation seeds of the real-data rows, per width divisor."""
    real_max_mflops: float = math.inf
    """Real-data rows only for learners of at most this many forward MFLOPs per image (the
    budget); the others show a dash."""
    early_steps: int = 10
    """The study's "10 GTN steps": the first steps of the same curriculum run."""
    real_epochs: int = 1
    """Epochs of real data."""
    test_images: int = 2000
    """Test images scored (the first ones)."""
    val_images: int = 1000
    """Validation images scored after each real-data epoch (the first ones)."""

    def __post_init__(self) -> None:
        n = len(self.teachers)
        if not n or not (len(self.teacher_labels) == len(self.teacher_outer_steps)
                         == len(self.teacher_settings) == n):  # fmt: skip
            raise ConfigError(
                f"teachers ({n}), teacher_labels ({len(self.teacher_labels)}), "
                f"teacher_outer_steps ({len(self.teacher_outer_steps)}) and teacher_settings "
                f"({len(self.teacher_settings)}) must be as many, at least one"
            )
        unknown = [t for t in self.types if t not in LEARNER_TYPES]
        if unknown or not self.types:
            raise ConfigError(f"types {unknown or '[]'}: choose from {', '.join(LEARNER_TYPES)}")
        w = len(self.width_divisors)
        if not w or len(self.gtn_seeds) != w or len(self.real_seeds) != w:
            raise ConfigError(
                f"width_divisors {self.width_divisors}, gtn_seeds {self.gtn_seeds} and "
                f"real_seeds {self.real_seeds} must be as many, at least one"
            )
        if any(d < 1 for d in self.width_divisors):
            raise ConfigError(f"width_divisors {self.width_divisors}: expected positive integers")
        if any(s < 1 for s in self.gtn_seeds) or any(s < 0 for s in self.real_seeds):
            raise ConfigError(
                f"gtn_seeds {self.gtn_seeds} must be positive, real_seeds {self.real_seeds} "
                "non-negative"
            )
        for name in ("early_steps", "real_epochs", "test_images", "val_images"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)!r}: expected a positive integer")


def _teacher_dir(path: str, index: int, ctx: Context) -> Path:
    """A config path relative to the repository root, or a scratch folder for ``""``."""
    return ctx.work / f"teacher-{index}" if not path else REPO_ROOT / path


def _load_teachers(config: Config, ctx: Context) -> list[LoadedTeacher]:
    loaded: list[LoadedTeacher] = []
    for i, (path, steps, settings) in enumerate(
        zip(config.teachers, config.teacher_outer_steps, config.teacher_settings, strict=True)
    ):
        run_dir = ctx.gtn(_teacher_dir(path, i, ctx), settings, steps)
        data = loaded[0].data if loaded else None
        loaded.append(load_teacher(run_dir, ctx.device, ctx.data_root, data))
        if loaded[-1].data.name != loaded[0].data.name:
            raise ConfigError(
                f"teacher {path or run_dir} was trained on {loaded[-1].data.name}, "
                f"teacher {config.teachers[0] or 'teacher-0'} on {loaded[0].data.name}"
            )
        if config.early_steps >= loaded[-1].teacher.config.inner_steps:
            raise ConfigError(
                f"early_steps={config.early_steps} must be fewer than the teacher's "
                f"{loaded[-1].teacher.config.inner_steps} inner steps ({path or run_dir})"
            )
    return loaded


def run(config: Config, ctx: Context) -> Outcome:
    """Measure the learner-type tables (see the module docstring)."""
    clock = Clock()
    teachers = _load_teachers(config, ctx)
    data = teachers[0].data
    net = teachers[0].net
    channels, size, _ = data.spec.input_shape
    classes = data.spec.num_classes
    test = head(data.test, config.test_images)
    batches: dict[tuple[int, int], Any] = {}

    def curriculum(ti: int, seed: int) -> Any:
        if (ti, seed) not in batches:
            batches[(ti, seed)] = teachers[ti].teacher.materialize(seed=seed)
        return batches[(ti, seed)]

    def gtn_unit(ti: int, arch: Any, seed: int) -> dict[str, float]:
        unit = Clock()
        models = teach(teachers[ti].teacher, arch, data, teachers[ti].net, seed=seed,
                       batches=curriculum(ti, seed), keep=(config.early_steps,),
                       device=ctx.device)  # fmt: skip
        steps = teachers[ti].teacher.config.inner_steps
        return {"early": split_accuracy(models[config.early_steps], test),
                "full": split_accuracy(models[steps], test), **unit.read()}  # fmt: skip

    def real_unit(arch: Any, seed: int) -> dict[str, float]:
        unit = Clock()
        model = train_real(arch, data, net, seed=seed, epochs=config.real_epochs,
                           val_images=config.val_images, device=ctx.device)  # fmt: skip
        return {"acc": split_accuracy(model, test), **unit.read()}

    rows: list[dict[str, Any]] = []
    for di, divisor in enumerate(config.width_divisors):
        for name in config.types:
            arch = learner_architecture(name, divisor, classes)
            mflops = count_flops(arch, in_channels=channels, input_size=size) / 1e6
            for ti in range(len(teachers)):
                tag = config.teachers[ti] or f"teacher-{ti}"
                for seed in range(config.gtn_seeds[di]):
                    key = f"gtn|{tag}|{divisor}|{name}|{seed}"
                    out = ctx.memo(key, lambda ti=ti, a=arch, s=seed: gtn_unit(ti, a, s))
                    rows.append({"kind": "gtn", "teacher": config.teacher_labels[ti],
                                 "divisor": divisor, "type": name, "architecture": str(arch),
                                 "mflops": mflops, "seed": seed, **out})  # fmt: skip
                    ctx.tb.add_scalar(f"gtn/{divisor}/{ti}/{name}", out["full"], seed)
        for name in config.types:
            arch = learner_architecture(name, divisor, classes)
            mflops = count_flops(arch, in_channels=channels, input_size=size) / 1e6
            if mflops > config.real_max_mflops:
                continue
            for seed in range(config.real_seeds[di]):
                key = f"real|{data.name}|{divisor}|{name}|{seed}"
                out = ctx.memo(key, lambda a=arch, s=seed: real_unit(a, s))
                rows.append({"kind": "real", "teacher": "", "divisor": divisor, "type": name,
                             "architecture": str(arch), "mflops": mflops, "seed": seed,
                             **out})  # fmt: skip
                ctx.tb.add_scalar(f"real/{divisor}/{name}", out["acc"], seed)

    summary = _summary(config, teachers, rows)
    summary["cpu_s_units"] = sum(r["cpu_s"] for r in rows)
    summary["run"] = clock.read()
    markdown = _markdown(config, teachers, rows, summary, data.name, len(test))
    return Outcome(markdown=markdown, summary=summary, rows=rows)


def _select(rows: list[dict[str, Any]], **match: Any) -> list[dict[str, Any]]:
    return [r for r in rows if all(r[k] == v for k, v in match.items())]


def _summary(
    config: Config, teachers: list[LoadedTeacher], rows: list[dict[str, Any]]
) -> dict[str, Any]:
    """Means and spreads per (width, teacher, type), and per (width, teacher) the types whose
    full-GTN mean stays below 0.2 (at chance, the study's failure)."""
    table: dict[str, Any] = {}
    failures: dict[str, Any] = {}
    for divisor in config.width_divisors:
        for label in config.teacher_labels:
            at_chance = []
            for name in config.types:
                sel = _select(rows, kind="gtn", divisor=divisor, teacher=label, type=name)
                early = mean_std([r["early"] for r in sel])
                full = mean_std([r["full"] for r in sel])
                table[f"/{divisor} | {label} | {name}"] = {"early": early, "full": full,
                                                           "n": len(sel)}  # fmt: skip
                if full[0] < 0.2:
                    at_chance.append(name)
            failures[f"/{divisor} | {label}"] = at_chance
        for name in config.types:
            sel = _select(rows, kind="real", divisor=divisor, type=name)
            table[f"/{divisor} | real | {name}"] = {"acc": mean_std([r["acc"] for r in sel]),
                                                    "n": len(sel)}  # fmt: skip
    return {"table": table, "full_gtn_below_0.2": failures,
            "teacher_outer_steps": [t.outer_steps for t in teachers]}  # fmt: skip


def _markdown(
    config: Config,
    teachers: list[LoadedTeacher],
    rows: list[dict[str, Any]],
    summary: dict[str, Any],
    dataset: str,
    n_test: int,
) -> str:
    steps = [t.teacher.config.inner_steps for t in teachers]
    lines = [
        f"Test accuracy on the first {n_test} {dataset} test images, mean ± standard deviation "
        f"(number of seeds). GTN rows: the first {config.early_steps} steps and all "
        f"{'/'.join(map(str, steps))} steps of one curriculum run; real rows: "
        f"{config.real_epochs} epoch(s) of real data (Adam 0.001, batch 128, no restarts). "
        "Study: the GTN robustness study's table (one seed, full width, its own learner "
        "definitions; ../shared/RESEARCH.md).",
        "",
        "Teachers: "
        + "; ".join(
            f"{label} = `{path or 'scratch teacher'}` ({t.outer_steps} outer steps, learner "
            f"{t.extra['learner']}, width divisor {t.extra.get('width_divisor', 1)})"
            for label, path, t in zip(config.teacher_labels, config.teachers, teachers, strict=True)
        ),
        "",
        "## Learner types (our reading of the study's names)",
        "",
    ]
    classes = teachers[0].data.spec.num_classes
    channels, size, _ = teachers[0].data.spec.input_shape
    type_rows = []
    for name in config.types:
        arch = learner_architecture(name, 1, classes)
        flops = [count_flops(learner_architecture(name, d, classes), in_channels=channels,
                             input_size=size) / 1e6 for d in config.width_divisors]  # fmt: skip
        type_rows.append([name, f"`{arch}`", LEARNER_TYPES[name].reading,
                          ", ".join(f"/{d}: {f:.3g}" for d, f in
                                    zip(config.width_divisors, flops, strict=True))])  # fmt: skip
    lines += [markdown_table(["type", "architecture (full width)", "reading", "MFLOPs"],
                             type_rows), ""]  # fmt: skip
    for divisor in config.width_divisors:
        header = ["type", "study: 10 GTN / 1 epoch / full GTN"]
        for label, n in zip(config.teacher_labels, steps, strict=True):
            header += [f"{label}: {config.early_steps} GTN steps", f"{label}: {n} GTN steps"]
        header.append(f"{config.real_epochs} epoch real")
        body = []
        for name in config.types:
            ref = STUDY_TABLE.get(name)
            row = [f"`{name}`", " / ".join(f"{v:.2f}" for v in ref) if ref else ""]
            for label in config.teacher_labels:
                sel = _select(rows, kind="gtn", divisor=divisor, teacher=label, type=name)
                row += [fmt_mean_std([r["early"] for r in sel]),
                        fmt_mean_std([r["full"] for r in sel])]  # fmt: skip
            real = _select(rows, kind="real", divisor=divisor, type=name)
            row.append(fmt_mean_std([r["acc"] for r in real]))
            body.append(row)
        scale = "full width" if divisor == 1 else f"widths divided by {divisor}"
        lines += [f"## Learner types at {scale}", "", markdown_table(header, body), ""]
        for label in config.teacher_labels:
            failed = summary["full_gtn_below_0.2"][f"/{divisor} | {label}"]
            lines.append(
                f"- {label}, {scale}: {len(failed)} of {len(config.types)} types below 0.2 "
                f"after all GTN steps{': ' + ', '.join(failed) if failed else ''}."
            )
        lines.append("")
    if config.real_max_mflops < math.inf:
        lines.append(
            f"Real-data rows only for learners of at most {config.real_max_mflops:g} MFLOPs per "
            "image (the CPU budget); a dash marks the others."
        )
    lines.append(cpu_footer(summary))
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main(NAME, Config, run, doc=__doc__))
