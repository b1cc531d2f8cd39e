"""The report of a design run: the winner, the finalists and the hand-designed baselines in one
table (the same final recipe for all), the anytime curve of the search, search reward against
final accuracy, and ``summary.json``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metaqnn.design import picks
from metaqnn.design.budget import format_duration
from metaqnn.design.finals import FinalResult, epochs_label
from metaqnn.design.selection import selects_by_folds
from metaqnn.evaluation.paired import PairedErrors, paired_errors
from metaqnn.markdown import markdown_table
from metaqnn.runinfo import run_metadata

if TYPE_CHECKING:
    from metaqnn.design.pipeline import DesignState


#: How a search reward is named in figures and the report.
_LABEL = {"gtn": "GTN", "real": "real-data"}


def selection_label(folds: int, short: bool = False) -> str:
    """What the winner is picked by: ``validation accuracy`` or ``5-fold cross-validated
    accuracy`` (``short``: ``val acc`` or ``5-fold cv acc``)."""
    if selects_by_folds(folds):
        return f"{folds}-fold cv acc" if short else f"{folds}-fold cross-validated accuracy"
    return "val acc" if short else "validation accuracy"


def _folds(results: list[FinalResult]) -> int:
    return max((r.folds for r in results), default=0)


def _pct(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{100 * x:.2f}"


def _timeline(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "timeline.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_anytime(run_dir: Path, results: list[FinalResult], reward: str = "gtn") -> Path:
    """Best search reward so far against the run's clock, with the final selection accuracy
    (validation or cross-validated, :func:`selection_label`) of the best design and of the
    best baseline as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _timeline(run_dir)
    fig, ax = plt.subplots(figsize=(6.4, 4))
    if rows:
        t = [r["t"] / 60 for r in rows]
        best, out = -math.inf, []
        for r in rows:
            best = max(best, r["reward"])
            out.append(best)
        ax.step(t, out, where="post", label=f"best {_LABEL[reward]} search reward so far")
        ax.scatter(t, [r["reward"] for r in rows], s=6, alpha=0.3, label="each searched model")
    measure = selection_label(_folds(results), short=True)
    for kind, style in (("design", "-"), ("baseline", "--")):
        done = [r for r in results if r.kind == kind and math.isfinite(r.val_accuracy)]
        if done:
            top = max(done, key=lambda r: r.val_accuracy)
            ax.axhline(top.val_accuracy, linestyle=style, color="k" if kind == "design" else "r",
                       label=f"best {kind}, final {measure}")  # fmt: skip
    ax.set_xlabel("run clock (minutes of the budget)")
    ax.set_ylabel(f"accuracy (search: {_LABEL[reward]} reward at reduced width)")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("Design run: anytime curve")
    fig.tight_layout()
    path = run_dir / "anytime.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_reward_vs_final(run_dir: Path, results: list[FinalResult], reward: str = "gtn") -> Path:
    """Search reward (reduced width) against final selection accuracy (validation or
    cross-validated; final width and recipe) of the finalists."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    designs = [r for r in results if r.kind == "design" and r.search_reward is not None
               and math.isfinite(r.val_accuracy)]  # fmt: skip
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter([r.search_reward for r in designs], [r.val_accuracy for r in designs])
    for r in designs:
        ax.annotate(r.name, (r.search_reward, r.val_accuracy), fontsize=7)
    ax.set_xlabel(f"search reward ({_LABEL[reward]}, reduced width)")
    ax.set_ylabel(f"final {selection_label(_folds(results))}")
    ax.set_title(f"Finalists (n = {len(designs)})")
    fig.tight_layout()
    path = run_dir / "reward_vs_final.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _epochs_text(epochs: float | None) -> str:
    """``7 epochs``, or ``3.4 epochs (the last pass partial ...)`` when the budget binds."""
    if epochs is None:
        return "the recipe's epochs"
    label = f"{epochs_label(epochs)} epochs"
    if epochs == int(epochs):
        return label
    return (
        f"{label} (the last pass partial: the budget binds, and the recipe's schedule spans "
        "the steps run)"
    )


def write_report(state: DesignState, results: list[FinalResult], winner: str) -> Path:
    """Write ``report.md``, ``summary.json`` and the figures; returns the report's path."""
    config, run_dir = state.config, state.run_dir
    rows = []
    for r in sorted(results, key=lambda r: (r.kind != "design", -_key(r.val_accuracy))):
        mark = " (winner)" if r.name == winner else ""
        rows.append([
            f"{r.name}{mark}", f"`{r.architecture}`",
            "" if r.search_reward is None else f"{r.search_reward:.4f}", f"{r.parameters:,}",
            "full" if r.width_divisor == 1 else f"/ {r.width_divisor}",
            epochs_label(r.epochs), _pct(r.val_accuracy), _pct(1 - r.test_accuracy),
            f"{r.wall_s:.0f}",
        ])  # fmt: skip
    folds = _folds(results)
    picked_by = selection_label(folds)
    table = markdown_table(["model", "architecture", "search reward", "parameters", "width",
                            "epochs", f"{selection_label(folds, True)} %", "test error %",
                            "train s"], rows)  # fmt: skip
    # the strongest opponent: the baseline with the lowest test error
    base = max((r for r in results if r.kind == "baseline" and math.isfinite(r.test_accuracy)),
               key=lambda r: r.test_accuracy, default=None)  # fmt: skip
    win = next(r for r in results if r.name == winner)
    paired = _paired(win, base)  # image by image
    verdict = (
        "no baseline trained" if base is None else
        f"the winner {_outcome(win.test_accuracy, base.test_accuracy)} "
        f"the best hand-designed baseline ({base.name}) on test "
        f"({_pct(1 - win.test_accuracy)} % against "
        f"{_pct(1 - base.test_accuracy)} % error; by {picked_by} {_pct(win.val_accuracy)} % "
        f"against {_pct(base.val_accuracy)} %)"
        f"{'' if paired is None else '; ' + paired.describe('the winner', base.name)}"
    )  # fmt: skip
    search = state.data.get("search", {})
    anytime = plot_anytime(run_dir, results, config.reward)
    scatter = plot_reward_vs_final(run_dir, results, config.reward)
    machine = run_metadata(config.device)
    lines = [
        f"# Design on {config.dataset}, budget {format_duration(config.budget_s)}",
        "",
        f"Winner (by {picked_by}, among the designs): **{win.name}** "
        f"`{win.architecture}`, {_pct(1 - win.test_accuracy)} % test error; {verdict}.",
        "",
        table,
        "",
        f"Every model trained with the same final recipe `{config.recipe}`"
        f"{'' if config.precision == 'fp32' else f' ({config.precision} autocast)'} for "
        f"{_epochs_text(state.data.get('final_epochs'))}, at full width unless the width column "
        "says otherwise (a design is narrowed when full width cannot train in the time left). "
        f"The {config.agent} search ran in the `{config.full_space().name}` space at widths / "
        f"{config.divisor} with the "
        f"{_LABEL[config.reward]} reward "
        f"({_search_sentence(search)}).{_cost_sentence(state.data.get('cost_cap'))}"
        f"{picks.sentence(config.finalist_pick)}{_folds_sentence(folds)}",
        "",
        "| phase | spent |",
        "|---|---|",
        *[f"| {k} | {format_duration(v)} |" for k, v in state.data["spent"].items()],
        f"| all | {format_duration(state.spent())} of {format_duration(config.budget_s)} |",
        "",
        f"Machine: {machine['device_name']}, torch {machine['torch']}, commit "
        f"{machine['git_commit']}.",
        "",
        f"![anytime]({anytime.name}) ![reward vs final]({scatter.name})",
    ]
    path = run_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    summary = {
        "dataset": config.dataset, "test_error_pct": 100 * (1 - win.test_accuracy),
        "val_accuracy": win.val_accuracy, "selection": picked_by, "folds": folds,
        "finalist_pick": config.finalist_pick,
        "winner": win.architecture,
        "budget_s": config.budget_s, "wall_s": state.spent(),
        "hand_baseline_test_error_pct": None if base is None else 100 * (1 - base.test_accuracy),
        "hand_baseline": None if base is None else base.architecture,
        "paired_test": None if paired is None else paired.__dict__,
        "recipe": config.recipe, "precision": config.precision,
        "final_epochs": state.data.get("final_epochs"),
        "width_divisor": config.divisor, "agent": config.agent, "reward": config.reward,
        "space": config.full_space().name,
        "cost_cap": state.data.get("cost_cap"),
        "seeds": [config.seed], "spent_s": state.data["spent"],
        "machine": machine["device_name"], "commit": machine["git_commit"],
        "finals": [r.__dict__ for r in results],
    }  # fmt: skip
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    return path


def _search_sentence(search: dict[str, Any]) -> str:
    """How the search's schedule was sized: planned from the probes' cost, and (once the search
    has run) the schedule it was re-sized to as each model's cost was measured."""
    planned = (f"{search.get('seconds_per_model', math.nan):.2f} s per model measured before "
               f"the search, schedule `{search.get('schedule', '?')}`")  # fmt: skip
    if "final_schedule" not in search or search["final_schedule"] == search.get("schedule"):
        return planned
    return (f"{search['models']} models; {planned}, re-sized as the cost was measured to "
            f"`{search['final_schedule']}`")  # fmt: skip


def _cost_sentence(cap: dict[str, Any] | None) -> str:
    """The search's cost cap in words ('' without one)."""
    if not cap:
        return ""
    return (f" It built only designs of at most {cap['max_flops'] / 1e6:.1f} MFLOPs per image "
            f"before the classifier at widths / {cap['width_divisor']} "
            f"({cap['multiple']:g}x the costliest baseline).")  # fmt: skip


def _outcome(win: float, base: float) -> str:
    """``beats``, ``ties`` or ``trails`` (test accuracies)."""
    return "beats" if win > base else "ties" if win == base else "trails"


def _paired(win: FinalResult, base: FinalResult | None) -> PairedErrors | None:
    """The winner's test errors against the baseline's, image by image (None when either was
    not tested, or for a run from before the errors were recorded)."""
    if base is None or not (math.isfinite(win.test_accuracy) and math.isfinite(base.test_accuracy)):
        return None
    if any(r.test_accuracy < 1 and not r.test_wrong for r in (win, base)):
        return None
    return paired_errors(win.test_wrong, base.test_wrong)


def _folds_sentence(folds: int) -> str:
    """How the models were measured with cross-validation ('' without it)."""
    if not selects_by_folds(folds):
        return ""
    return (f" Every model, baselines included, was cross-validated over {folds} folds of the "
            "training and validation images together (each image held out once) and then "
            "refitted on all of them; the test column is the refit's.")  # fmt: skip


def _key(x: float) -> float:
    return x if math.isfinite(x) else -1.0
