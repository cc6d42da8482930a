"""The Sokoban expert: follows an optimal plan from the solver, replanning when the state drifts."""

from __future__ import annotations

from typing import Any

import numpy as np

from gatolab.domains.base import TaskEnv
from gatolab.domains.sokoban.game import DEFAULT_NODE_BUDGET, NOOP, Level, apply_action
from gatolab.domains.sokoban.solver import solve

class SokobanSolverExpert:
    """Follows an optimal plan from `solve` (see the module docstring); plans from the observation grid."""

    def __init__(self, node_budget: int = DEFAULT_NODE_BUDGET):
        self.node_budget = int(node_budget)
        self._next: dict[bytes, int] = {}  # grid bytes -> planned action, along the current plan
        self.nodes_expanded = 0  # of the last search

    def __call__(self, env: TaskEnv, obs: dict[str, Any]) -> dict[str, np.ndarray]:
        grid = np.asarray(obs["grid"], np.int64)
        key = grid.tobytes() + bytes(grid.shape)
        if key not in self._next:
            self._plan(Level.from_grid(grid))
        return {"action": np.asarray(self._next.get(key, NOOP), np.int64)}

    def _plan(self, level: Level) -> None:
        sol = solve(level, self.node_budget)  # SolverBudgetExceeded propagates: never act on a partial search
        self.nodes_expanded = sol.nodes_expanded
        self._next = {}
        if not sol.solvable:
            return
        for a in sol.actions:
            g = level.grid()
            self._next[g.tobytes() + bytes(g.shape)] = a
            level, _ = apply_action(level, a)
