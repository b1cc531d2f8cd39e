"""TensorBoard logging of a search: tags under ``search/``, the hyperparameters as a markdown
table (as CleanRL does) and the current top 10 as text, and at the end the hyperparameters with
the run's best and mean reward for the HParams tab."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from torch.utils.tensorboard import SummaryWriter

from metaqnn.markdown import markdown_table

if TYPE_CHECKING:
    from metaqnn.search.loop import Search
    from metaqnn.search.store import ModelRecord


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


class SearchLogger:
    """Writes a search's progress to TensorBoard in ``logdir``.

    Scalars (step = unique models recorded): ``search/reward``, ``search/epsilon``,
    ``search/best_reward``, ``search/mean_reward_at_epsilon`` (running mean of the current
    epsilon stage), ``search/unique_models`` (step = architectures sampled, so its slope is the
    share of new ones), ``search/models_per_minute``, ``search/cache_hits``. Text:
    ``hyperparameters`` and ``search/top10`` (every ``top_every`` models).
    """

    def __init__(
        self, logdir: str | os.PathLike[str], config: dict[str, Any], *, top_every: int = 10
    ) -> None:
        self.writer = SummaryWriter(str(logdir))
        self.top_every = top_every
        self._start = time.monotonic()
        self._start_done: int | None = None
        params = _flatten(config)
        self.hparams = {k: v if isinstance(v, bool | int | float | str) else str(v)
                        for k, v in params.items()}  # fmt: skip
        self._models: list[ModelRecord] = []
        self._step = 0
        self.writer.add_text(
            "hyperparameters",
            markdown_table(["param", "value"], [[k, f"`{v}`"] for k, v in sorted(params.items())]),
        )

    def log(self, record: ModelRecord, search: Search) -> None:
        """Log one recorded model."""
        w, step = self.writer, search.done
        if self._start_done is None:
            self._start_done = step - 1
        stage = [m.reward for m in search.models if m.epsilon == record.epsilon]
        best = search.best()
        minutes = (time.monotonic() - self._start) / 60
        w.add_scalar("search/reward", record.reward, step)
        w.add_scalar("search/epsilon", record.epsilon, step)
        w.add_scalar("search/best_reward", best.reward if best else record.reward, step)
        w.add_scalar("search/mean_reward_at_epsilon", sum(stage) / len(stage), step)
        w.add_scalar("search/unique_models", step, search.samples)
        w.add_scalar("search/cache_hits", search.cache_hits, step)
        w.add_scalar(
            "search/models_per_minute", (step - self._start_done) / max(minutes, 1e-9), step
        )
        if step % self.top_every == 0 or search.finished:
            self.log_top(search.models, step)
        self._models, self._step = search.models, step  # metrics are computed once, at close

    def log_top(self, models: list[ModelRecord], step: int, k: int = 10) -> None:
        """The current top ``k`` as a markdown table."""
        top = sorted(models, key=lambda m: m.reward, reverse=True)[:k]
        rows = [
            [i + 1, f"{m.reward:.4f}", f"`{m.architecture}`", m.epsilon, m.id]
            for i, m in enumerate(top)
        ]
        self.writer.add_text(
            "search/top10",
            markdown_table(["rank", "reward", "architecture", "eps", "#"], rows),
            step,
        )

    def close(self) -> None:
        """Write the hyperparameters with the run's metrics so far (TensorBoard's HParams tab
        compares runs by them), flush and close."""
        if self._models:
            rewards = [m.reward for m in self._models]
            metrics = {"hparam/best_reward": max(rewards),
                       "hparam/mean_reward": sum(rewards) / len(rewards),
                       "hparam/unique_models": float(len(rewards))}  # fmt: skip
            self.writer.add_hparams(self.hparams, metrics, run_name=".",
                                    global_step=self._step)  # fmt: skip
        self.writer.close()
