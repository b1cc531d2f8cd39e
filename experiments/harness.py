"""What every experiment shares: one script and one TOML config per experiment, a ``--quick``
smoke mode, a run folder that records config, versions, machine, wall time and results, a
TensorBoard writer, resumable units of work, and GTN teachers trained (or reused) on demand.

An experiment is a module ``experiments/<name>.py`` with a config ``experiments/configs/
<name>.toml``; the module defines a frozen dataclass ``Config`` and a function
``run(config, ctx) -> Outcome``, and ends with ``if __name__ == "__main__": main(NAME, Config,
run)``. The TOML file holds the full-budget values at top level and a ``[quick]`` table with the
overrides of the smoke mode, which CI runs (``tests/experiments``)::

    python -m experiments list
    python -m experiments learner_types --quick
    python -m experiments learner_types --set seeds=3 --device cuda

Full runs write to ``experiments/results/<name>/`` (small files: ``results.md``,
``results.json``, figures; committed and linked from ``experiments/RESULTS.md``); quick runs to
``runs/experiments/<name>-quick/``. TensorBoard logs and caches go to ``runs/experiments/<name>``
(never committed).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import shlex
import sys
import time
import tomllib
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from experiments.common.digest import REPORT_ONLY as REPORT_ONLY
from experiments.common.digest import config_digest as config_digest
from metaqnn.errors import ConfigError, MetaQNNError

if TYPE_CHECKING:
    from metaqnn.teacher.run import TeacherRun

EXPERIMENTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = EXPERIMENTS_DIR.parent
CONFIG_DIR = EXPERIMENTS_DIR / "configs"


def experiment_names() -> list[str]:
    """The experiments: one per config file in ``experiments/configs``."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.toml"))


# ------------------------------------------------------------------ configs
def _check_type(name: str, value: Any, hint: Any, source: str) -> Any:
    """``value`` converted to the dataclass field type ``hint``, or a ConfigError naming it."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _check_type(name, value, option, source)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{source}: {name}={value!r} is not allowed")
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{source}: {name}={value!r} must be a list")
        args = typing.get_args(hint)
        item = args[0] if args else Any
        return tuple(_check_type(f"{name}[{i}]", v, item, source) for i, v in enumerate(value))
    if hint is Any:
        return value
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _table(name, value, hint, source)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{source}: {name}={value!r} must be a number")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: {name}={value!r} must be an integer")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {name}={value!r} must be true or false")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: {name}={value!r} must be a string")
        return value
    return value


def _table(name: str, value: Any, cls: type, source: str) -> Any:
    """A TOML table (or an instance) as the dataclass ``cls``: each key a field of it, each
    value of its field's type; a one-line ConfigError naming the key otherwise."""
    if isinstance(value, cls):
        return value
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: {name}={value!r} must be a table of {cls.__name__} fields")
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(value) - fields)
    if unknown:
        raise ConfigError(
            f"{source}: unknown key {name}.{unknown[0]}: not a field of "
            f"{cls.__module__}.{cls.__name__}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {k: _check_type(f"{name}.{k}", v, hints[k], source) for k, v in value.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: {name}: {exc}") from None


def teacher_run(settings: TeacherRun | Mapping[str, Any], name: str = "teacher") -> TeacherRun:
    """Teacher settings as a :class:`~metaqnn.teacher.run.TeacherRun`: one as is, or a mapping
    of its fields (a TOML table).

    Raises:
        ConfigError: For a key that is not a field of ``TeacherRun`` (the message names it) or
            a value of the wrong type.
    """
    from metaqnn.teacher.run import TeacherRun

    if not isinstance(settings, TeacherRun | Mapping):
        raise ConfigError(
            f"{name}: teacher settings are a TeacherRun or a mapping of its fields, not "
            f"{type(settings).__name__} {settings!r}"
        )
    return _table(name, dict(settings) if isinstance(settings, Mapping) else settings,
                  TeacherRun, "teacher settings")  # fmt: skip


def _parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` from ``--set``; the value is read as TOML (``3``, ``0.5``, ``"a"``,
    ``[1, 2]``), else taken as a plain string."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key=value")
    key, raw = text.split("=", 1)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.strip(), value


def load_config(
    cls: type, path: str | Path, *, quick: bool = False, overrides: Sequence[str] = ()
) -> Any:
    """An experiment's frozen config from its TOML file.

    Top-level keys are the full-budget values; with ``quick`` the ``[quick]`` table overrides
    them; ``overrides`` (``key=value`` strings) come last. Unknown keys and values of the wrong
    type raise :class:`ConfigError` naming the key and the file.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"experiment config {path} not found")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    quick_table = raw.pop("quick", {})
    values = dict(raw)
    if quick:
        values.update(quick_table)
    for text in overrides:
        key, value = _parse_override(text)
        values[key] = value
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(
            f"{path}: unknown key(s) {', '.join(unknown)}; {cls.__module__}.Config has "
            f"{', '.join(fields)}"
        )
    kwargs = {k: _check_type(k, v, hints[k], str(path)) for k, v in values.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from None


# ------------------------------------------------------------------ the run context
@dataclass
class Outcome:
    """What an experiment's ``run`` returns: a markdown report and the numbers behind it."""

    markdown: str
    """The report: tables beside the reference numbers, links to figures (relative names)."""
    summary: dict[str, Any]
    """Plain JSON values: the headline figures."""
    rows: list[dict[str, Any]] = field(default_factory=list)
    """Plain JSON values: every measured row."""


@dataclass
class Context:
    """Where an experiment runs and what it may use."""

    name: str
    out: Path
    """Results folder (markdown, JSON, figures)."""
    work: Path
    """Scratch folder for TensorBoard logs, caches and GTN runs (never committed)."""
    device: torch.device
    data_root: str | None
    quick: bool
    progress: bool = True
    _writer: Any = None
    _memo: dict[str, Any] | None = None

    @property
    def tb(self) -> Any:
        """A TensorBoard ``SummaryWriter`` under ``work/tb`` (created on first use)."""
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.work / "tb"))
        return self._writer

    def figure(self, name: str) -> Path:
        """The path of a figure in the results folder."""
        return self.out / name

    def has_memo(self, key: str) -> bool:
        """Whether ``work/memo.json`` holds ``key`` (a finished unit of :meth:`memo`)."""
        path = self.work / "memo.json"
        if self._memo is None:
            self._memo = json.loads(path.read_text()) if path.is_file() else {}
        return key in self._memo

    def memo(self, key: str, compute: Callable[[], Any]) -> Any:
        """``compute()``, stored under ``key`` in ``work/memo.json`` so that a killed run,
        started again with the same config, does not redo finished units of work."""
        path = self.work / "memo.json"
        if self._memo is None:
            self._memo = json.loads(path.read_text()) if path.is_file() else {}
        if key not in self._memo:
            self._memo[key] = compute()
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self._memo, default=float))
            tmp.replace(path)
        return self._memo[key]

    def gtn(
        self, run_dir: str | Path, teacher: TeacherRun | Mapping[str, Any], outer_steps: int
    ) -> Path:
        """A GTN (or DD) run folder meta-trained to ``outer_steps``.

        Reused when its checkpoint has them, resumed when it has fewer, trained with
        :func:`~metaqnn.teacher.run.train_teacher` and the settings ``teacher`` (a
        ``TeacherRun`` or a mapping of its fields) otherwise. This context decides the run
        folder, the outer steps, the device and the progress bars; the data root is the
        settings' or else this context's; no architectures are scored at the end.

        Args:
            run_dir: The run folder.
            teacher: How to train the teacher if it must be trained.
            outer_steps: The outer steps it must have.

        Returns:
            The run folder.

        Raises:
            ConfigError: For settings that are not ``TeacherRun`` fields or do not fit
                together.
        """
        from gtn.meta import checkpoint_file, load_meta_checkpoint
        from metaqnn.teacher.run import TeacherRun, train_teacher

        settings = teacher_run(teacher)
        run_dir = Path(run_dir)
        common = {
            "outer_steps": outer_steps,
            "device": str(self.device),
            "data_root": settings.data_root or self.data_root,
            "eval_archs": 0,
            "progress": self.progress,
        }
        if run_dir.is_dir() and checkpoint_file(run_dir).is_file():
            if load_meta_checkpoint(run_dir)["step"] >= outer_steps:
                return run_dir
            run = TeacherRun(resume=str(run_dir), **common)
        else:
            run = dataclasses.replace(settings, logdir=str(run_dir), resume=None, **common)
        default = TeacherRun()
        changed = {f.name: getattr(run, f.name) for f in dataclasses.fields(run)
                   if getattr(run, f.name) != getattr(default, f.name)}  # fmt: skip
        print(f"+ train_teacher(TeacherRun({', '.join(f'{k}={v!r}' for k, v in changed.items())}))",
              flush=True)  # fmt: skip
        train_teacher(run)
        return run_dir

    def experiment(self, name: str) -> Outcome:
        """Run the experiment ``name`` (its module ``experiments.<name>`` and config file,
        quick when this run is) with a context of its own in ``work/<name>``: how one
        experiment uses another's results without importing it.

        Returns:
            That experiment's outcome.
        """
        module = importlib.import_module(f"experiments.{name}")
        config = load_config(module.Config, CONFIG_DIR / f"{name}.toml", quick=self.quick)
        work = self.work / name
        work.mkdir(parents=True, exist_ok=True)
        ctx = dataclasses.replace(self, name=name, out=work, work=work, _writer=None, _memo=None)
        try:
            return module.run(config, ctx)
        finally:
            if ctx._writer is not None:
                ctx._writer.close()


# ------------------------------------------------------------------ entry point
def _arg_parser(name: str, doc: str | None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"python -m experiments {name}",
        description=(doc or name).strip().splitlines()[0],
    )
    p.add_argument("--config", default=str(CONFIG_DIR / f"{name}.toml"), help="TOML config")
    p.add_argument("--quick", action="store_true", help="the smoke-test budget ([quick] table)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value (TOML syntax), repeatable",
    )
    p.add_argument("--out", default=None, help="results folder")
    p.add_argument("--work", default=None, help="scratch folder (TensorBoard, caches)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--data-root", default=None, help="data root (default: $METAQNN_DATA)")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(
    name: str,
    config_cls: type,
    run: Callable[[Any, Context], Outcome],
    argv: Sequence[str] | None = None,
    doc: str | None = None,
) -> int:
    """Parse the command line, run the experiment, write its results. Returns the exit status
    (2 with a one-line message for a bad config or input)."""
    args = _arg_parser(name, doc).parse_args(argv)
    try:
        return _main(name, config_cls, run, args, argv)
    except (MetaQNNError, ValueError) as exc:
        from envs.layers import ArchitectureError

        if not isinstance(exc, MetaQNNError | ArchitectureError | ConfigError):
            raise
        print(f"experiments {name}: {exc}", file=sys.stderr)
        return 2


def _main(
    name: str,
    config_cls: type,
    run: Callable[[Any, Context], Outcome],
    args: argparse.Namespace,
    argv: Sequence[str] | None,
) -> int:
    from metaqnn.cli.options import torch_device as _device
    from metaqnn.runinfo import run_metadata
    from metaqnn.runlock import RunLock

    config = load_config(config_cls, args.config, quick=args.quick, overrides=args.set)
    suffix = "-quick" if args.quick else ""
    out = Path(
        args.out
        or (
            EXPERIMENTS_DIR / "results" / name
            if not args.quick
            else REPO_ROOT / "runs" / "experiments" / f"{name}-quick"
        )
    )
    work = Path(args.work or REPO_ROOT / "runs" / "experiments" / f"{name}{suffix}" / "work")
    work = work / config_digest(config)
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    device = _device(args.device)
    ctx = Context(
        name=name,
        out=out,
        work=work,
        device=device,
        data_root=args.data_root,
        quick=args.quick,
        progress=not args.no_progress,
    )
    command = "python -m experiments " + shlex.join(
        [name, *(argv if argv is not None else sys.argv[1:])]
    )
    started = datetime.now().isoformat(timespec="seconds")
    print(
        f"experiment {name} ({'quick' if args.quick else 'full'}): results in {out}, "
        f"scratch in {work}",
        flush=True,
    )
    t0 = time.perf_counter()
    try:
        with RunLock(work):  # one owner per scratch folder: a second run of it is refused
            outcome = run(config, ctx)
    finally:
        if ctx._writer is not None:
            ctx._writer.close()
    wall = time.perf_counter() - t0
    machine = run_metadata(device)
    record = {
        "experiment": name,
        "quick": args.quick,
        "command": command,
        "started": started,
        "wall_s": wall,
        "config": dataclasses.asdict(config),
        "machine": machine,
        "summary": outcome.summary,
        "rows": outcome.rows,
    }
    (out / "results.json").write_text(json.dumps(record, indent=2, default=float) + "\n")
    header = (
        f"# {name}{' (quick)' if args.quick else ''}\n\n"
        f"- Command: `{command}`\n- Machine: {machine['device_name']}, torch {machine['torch']}"
        f", git {machine['git_commit']}\n- Started {started}; wall time {wall:.0f} s\n\n"
    )
    (out / "results.md").write_text(header + outcome.markdown.strip() + "\n")
    print(header + outcome.markdown.strip())
    print(f"wrote {out / 'results.md'} and results.json ({wall:.0f} s)")
    return 0
