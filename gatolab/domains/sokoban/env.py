"""The Sokoban `TaskEnv` (pure NumPy) and its renderer."""

from __future__ import annotations

from typing import Any

import numpy as np

from gatolab.domains.base import TaskEnv, check_task
from gatolab.domains.common import check_action, check_observation
from gatolab.domains.sokoban.game import (ACTION_NAMES, BOX, BOX_ON_TARGET, BOX_ON_TARGET_REWARD, BOX_OFF_TARGET_PENALTY,
                                          DEFAULT_NODE_BUDGET, FINISHED_REWARD, FLOOR, MAX_STEPS, NUM_ACTIONS,
                                          NUM_CELL_TYPES, PLAYER, PLAYER_ON_TARGET, SOKOBAN_TASKS, STEP_PENALTY, TARGET,
                                          WALL, Level, apply_action)
from gatolab.domains.sokoban.levels import generate_level
from gatolab.specs import EnvSpec, FieldSpec

TILE = 16


def _tiles() -> np.ndarray:
    """(7, 16, 16, 3) uint8 tiles, one per cell type."""
    t = np.zeros((NUM_CELL_TYPES, TILE, TILE, 3), np.uint8)
    yy, xx = np.mgrid[:TILE, :TILE]
    floor = np.array([40, 40, 46], np.uint8)
    # Wall: bricks (mortar lines every 4 rows, staggered joints).
    wall = np.empty((TILE, TILE, 3), np.uint8)
    wall[:] = (150, 62, 40)
    mortar = (yy % 4 == 3) | ((xx + 4 * ((yy // 4) % 2)) % 8 == 7)
    wall[mortar] = (95, 90, 85)
    t[WALL] = wall
    t[FLOOR] = floor
    ring = (np.maximum(abs(yy - 7.5), abs(xx - 7.5)) <= 4.5) & (np.maximum(abs(yy - 7.5), abs(xx - 7.5)) >= 3.5)
    t[TARGET] = floor
    t[TARGET][ring] = (220, 40, 40)
    box = np.empty((TILE, TILE, 3), np.uint8)
    box[:] = (196, 140, 60)
    edge = (yy < 2) | (yy > 13) | (xx < 2) | (xx > 13) | (yy == xx) | (yy == 15 - xx)
    box[edge] = (120, 80, 30)
    outside = (yy < 1) | (yy > 14) | (xx < 1) | (xx > 14)
    box[outside] = floor
    t[BOX] = box
    on = box.copy()
    on[~edge & ~outside] = (90, 190, 80)
    t[BOX_ON_TARGET] = on
    disc = (yy - 7.5) ** 2 + (xx - 7.5) ** 2 <= 5.6**2
    for k, base in ((PLAYER, t[FLOOR]), (PLAYER_ON_TARGET, t[TARGET])):
        tile = base.copy()
        tile[disc] = (70, 170, 240)
        tile[((yy - 6) ** 2 + (xx - 5.5) ** 2 <= 1.2) | ((yy - 6) ** 2 + (xx - 9.5) ** 2 <= 1.2)] = (20, 20, 20)
        t[k] = tile
    return t


_TILES = _tiles()


def render_grid(grid: np.ndarray) -> np.ndarray:
    """An RGB uint8 frame (16 H, 16 W, 3) of an observation grid."""
    g = np.asarray(grid, np.int64)
    img = _TILES[g]  # (H, W, 16, 16, 3)
    h, w = g.shape
    return np.ascontiguousarray(img.transpose(0, 2, 1, 3, 4).reshape(h * TILE, w * TILE, 3))


def sokoban_spec(task: str) -> EnvSpec:
    check_task(task, list(SOKOBAN_TASKS), "sokoban")
    cfg = SOKOBAN_TASKS[task]
    return EnvSpec(task, {"grid": FieldSpec.discrete(NUM_CELL_TYPES, (cfg.height, cfg.width))},
                   {"action": FieldSpec.discrete(NUM_ACTIONS)})


class SokobanEnv(TaskEnv):
    """One Sokoban task; `reset(seed)` plays the level `generate_level(task, seed)`."""

    def __init__(self, task: str, spec: EnvSpec | None = None, seed: int = 0, render: bool = False,
                 max_steps: int = MAX_STEPS, node_budget: int = DEFAULT_NODE_BUDGET):
        check_task(task, list(SOKOBAN_TASKS), "sokoban")
        self.task = task
        self.spec = spec or sokoban_spec(task)
        self.max_steps = int(max_steps)
        self.node_budget = int(node_budget)
        self.render_enabled = render  # frames are cheap: render() works either way
        self._seeds = np.random.default_rng(seed)  # seeds for reset(None)
        self.level: Level | None = None
        self.episode_id = -1
        self.steps = 0
        self.done = False

    def reset(self, seed: int | None = None, level: Level | None = None) -> dict[str, np.ndarray]:
        """Starts the level of `seed` (or a given `level`, e.g. from `parse_level`, whose shape must match the task)."""
        if level is None:
            if seed is None:
                seed = int(self._seeds.integers(2**31))
            level = generate_level(self.task, seed, self.node_budget)
        elif level.shape != self.spec.observation["grid"].shape:
            want = self.spec.observation["grid"].shape
            raise ValueError(f"{self.task}: level of shape {level.shape}, the task's grid is {want}")
        self.level = level
        self.episode_id += 1
        self.steps = 0
        self.done = False
        return self._observe()

    def _observe(self) -> dict[str, np.ndarray]:
        return check_observation(self.spec, {"grid": self.level.grid()})

    @property
    def boxes_on_target(self) -> int:
        return sum(int(self.level.targets[b]) for b in self.level.boxes)

    def step(self, action: dict[str, Any]) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        if self.level is None:
            raise RuntimeError(f"{self.task}: call reset() before step()")
        if self.done:
            raise RuntimeError(f"{self.task}: the episode has ended; call reset()")
        a = int(check_action(self.spec, action)["action"])
        self.level, delta = apply_action(self.level, a)
        self.steps += 1
        reward = STEP_PENALTY
        if delta > 0:
            reward += BOX_ON_TARGET_REWARD
        elif delta < 0:
            reward += BOX_OFF_TARGET_PENALTY
        solved = self.level.solved
        if solved:
            reward += FINISHED_REWARD
        truncated = not solved and self.steps >= self.max_steps
        self.done = solved or truncated
        info = {"success": solved, "boxes_on_target": self.boxes_on_target, "action_name": ACTION_NAMES[a]}
        return self._observe(), float(reward), solved, truncated, info

    def render(self) -> np.ndarray | None:
        if self.level is None:
            return None
        return render_grid(self.level.grid())
