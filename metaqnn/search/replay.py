"""MetaQNN's experience replay: every sampled architecture with its reward; after each new
model the agent replays trajectories drawn uniformly from it through the Q update."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from metaqnn.search.agent import QLearningAgent, Trajectory


class ReplayMemory:
    """(architecture, reward) entries in sampling order, with their trajectories.

    Args:
        rebuild: Architecture string -> its trajectory (used when loading saved state).
    """

    def __init__(self, rebuild: Callable[[str], Trajectory]) -> None:
        self._rebuild = rebuild
        self.entries: list[tuple[str, float]] = []
        self._trajectories: dict[str, Trajectory] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, trajectory: Trajectory, reward: float) -> None:
        """Remember one sampled architecture and its reward."""
        self._trajectories.setdefault(trajectory.architecture, trajectory)
        self.entries.append((trajectory.architecture, float(reward)))

    def trajectory(self, architecture: str) -> Trajectory:
        """The trajectory of a remembered (or any valid) architecture."""
        if architecture not in self._trajectories:
            self._trajectories[architecture] = self._rebuild(architecture)
        return self._trajectories[architecture]

    def replay(self, agent: QLearningAgent, count: int, rng: np.random.Generator) -> None:
        """Apply ``count`` Q updates from entries drawn uniformly, with replacement."""
        if not self.entries or count <= 0:
            return
        for i in rng.integers(len(self.entries), size=count):
            arch, reward = self.entries[int(i)]
            agent.update(self.trajectory(arch), reward)

    def state_dict(self) -> dict[str, Any]:
        """Plain-JSON state (trajectories are rebuilt from the architectures)."""
        return {"entries": [[a, r] for a, r in self.entries]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`."""
        self.entries = [(str(a), float(r)) for a, r in state["entries"]]
        self._trajectories = {}
