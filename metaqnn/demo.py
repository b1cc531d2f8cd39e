"""``metaqnn demo`` (and ``make demo``): the main job, :func:`metaqnn.design.run.run_design`,
on the embedded digits data with a short budget. A second call resumes and redoes nothing.

The design pipeline reads top to bottom in :mod:`metaqnn.design.run`: teacher, search, final
training beside hand-designed baselines, winner, report.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from metaqnn.design.budget import parse_duration
from metaqnn.design.pipeline import STATE, DesignConfig, reset_run
from metaqnn.design.run import run_design


@dataclass(frozen=True)
class DemoConfig:
    """What ``metaqnn demo`` runs."""

    dataset: str = "digits"
    """Dataset name."""
    budget: str = "5m"
    """Wall-clock budget of the whole design."""
    data_root: str | None = None
    """Data root (None: ``$METAQNN_DATA`` or the default)."""
    logdir: str = "runs/demo"
    """The design's run folder."""
    seed: int = 0
    """Seed of everything."""
    fresh: bool = False
    """Delete the previous demo run first."""
    progress: bool = True
    """Show progress bars."""


def run_demo(config: DemoConfig) -> Path:
    """Run (or resume) the demo's design; returns its run folder."""
    run_dir = Path(config.logdir)
    if config.fresh:
        reset_run(run_dir)
    if (run_dir / STATE).exists():
        return run_design(resume=run_dir, progress=config.progress)
    design = DesignConfig(
        dataset=config.dataset,
        budget_s=parse_duration(config.budget),
        logdir=str(run_dir),
        data_root=config.data_root,
        seed=config.seed,
    )
    return run_design(design, progress=config.progress)
