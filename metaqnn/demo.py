"""The main job, end to end, as typed calls: meta-train a GTN teacher, search with it as the
reward, retrain the best designs on real data and write a report. Every step is resumable:
run it again with the same ``logdir`` and it continues where it stopped.

Read top to bottom: :class:`DemoConfig`, then :func:`run_demo`.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from gtn.meta import checkpoint_file
from metaqnn.errors import ConfigError
from metaqnn.rewards.spec import RewardSpec
from metaqnn.search.loop import Search, SearchConfig
from metaqnn.search.report import retrain_top, write_report
from metaqnn.search.store import DB_NAME, SearchStore
from metaqnn.search.tb import SearchLogger
from metaqnn.teacher.run import TeacherRun, train_teacher


@dataclass(frozen=True)
class DemoConfig:
    """What ``metaqnn demo`` runs."""

    dataset: str = "digits"
    """Dataset name."""
    data_root: str | None = None
    """Data root (None: ``$METAQNN_DATA`` or the default)."""
    logdir: str = "runs/demo"
    """Where the teacher (``gtn/``) and the search (``search/``) go."""
    gtn_outer_steps: int = 150
    """GTN meta-training steps."""
    schedule: str = "quick"
    """The search's epsilon schedule."""
    retrain_top: int = 3
    """Top models retrained on real data."""
    epochs: int = 10
    """Retraining epochs."""
    seed: int = 0
    """Seed of everything."""
    fresh: bool = False
    """Delete the previous demo runs first."""
    progress: bool = True
    """Show progress bars."""

    def __post_init__(self) -> None:
        if self.gtn_outer_steps < 1 or self.retrain_top < 0 or self.epochs < 1:
            raise ConfigError(
                f"--gtn-outer-steps={self.gtn_outer_steps} and --epochs={self.epochs} "
                f"must be positive, --retrain-top={self.retrain_top} >= 0"
            )


def teacher_run(config: DemoConfig) -> TeacherRun:
    """The demo's teacher: small enough for a laptop CPU (12 minutes on digits)."""
    return TeacherRun(
        dataset=config.dataset, data_root=config.data_root, seed=config.seed,
        outer_steps=config.gtn_outer_steps, inner_batch=64, generator_hidden=256, noise_dim=32,
        outer_lr=0.01, meta_batch=256, eval_archs=5, logdir=str(Path(config.logdir) / "gtn"),
        progress=config.progress,
    )  # fmt: skip


def run_demo(config: DemoConfig) -> Path:
    """Teacher, search, report. Returns the report folder."""
    root = Path(config.logdir)
    if config.fresh and root.exists():
        shutil.rmtree(root)
    start = time.perf_counter()

    # 1. the teacher: trained, or resumed to the asked number of outer steps
    gtn_dir = root / "gtn"
    teacher = teacher_run(config)
    print(f"\n== 1. GTN teacher ({config.gtn_outer_steps} outer steps): {gtn_dir}", flush=True)
    if checkpoint_file(gtn_dir).is_file():
        print(f"resuming it (as `metaqnn gtn train --resume {gtn_dir}` does)")
        teacher = TeacherRun(resume=str(gtn_dir), outer_steps=config.gtn_outer_steps,
                             eval_archs=5, data_root=config.data_root,
                             progress=config.progress)  # fmt: skip
    train_teacher(teacher)

    # 2. the search, with the teacher as its reward
    search_dir = root / "search"
    print(f"\n== 2. Q-learning search ({config.schedule} schedule): {search_dir}", flush=True)
    if (search_dir / DB_NAME).exists():
        print(f"resuming it (as `metaqnn search --resume {search_dir}` does)")
        search = Search.resume(search_dir)
    else:
        reward = RewardSpec(name="gtn", dataset=config.dataset, data_root=config.data_root,
                            seed=config.seed, gtn_checkpoint=str(gtn_dir))  # fmt: skip
        search_config = SearchConfig(reward=reward, schedule=config.schedule, seed=config.seed)
        search = Search.create(search_config, search_dir)
    search.logger = SearchLogger(search_dir, search.config.to_dict())
    before, search_start = search.done, time.perf_counter()
    try:
        search.run(progress=config.progress)
    finally:
        search.close()
    print(f"{search.done - before} new models in {time.perf_counter() - search_start:.1f} s; "
          f"{search.done} of {search.schedule.total} recorded")  # fmt: skip

    # 3. the best designs retrained on real data, and the report
    print(f"\n== 3. top {config.retrain_top} retrained for {config.epochs} epochs", flush=True)
    store = SearchStore.open(search_dir)
    try:
        for row in retrain_top(store, config.retrain_top, epochs=config.epochs,
                               data_root=config.data_root, progress=config.progress):  # fmt: skip
            print(f"retrained {row['architecture']}: test accuracy {row['test_accuracy']}")
        paths = write_report(store, search_dir / "report", top=10)
    finally:
        store.close()
    print(paths["markdown"].read_text())
    print(
        f"\ndemo done in {time.perf_counter() - start:.0f} s; TensorBoard: tensorboard "
        f"--logdir {root}; the report is in {search_dir / 'report'}"
    )
    return search_dir / "report"
