"""Sokoban levels by reverse play: solvable by construction, then checked by the solver.

A level is a pure function of its task and seed (see the package docstring).
"""

from __future__ import annotations

import functools

import numpy as np

from gatolab.domains.base import check_task
from gatolab.domains.sokoban.game import DEFAULT_NODE_BUDGET, DIRECTIONS, MAX_STEPS, SOKOBAN_TASKS, Level
from gatolab.domains.sokoban.solver import SolverBudgetExceeded, push_distances, solve

class LevelGenerationError(RuntimeError):
    pass


def _carve_room(rng: np.random.Generator, h: int, w: int, floor_fraction: float) -> np.ndarray:
    """Walls (True) with floor carved by a random walk until `floor_fraction` of the interior is floor.

    The walk turns now and then and sometimes also clears a cell beside it (room to walk
    around boxes); the border stays wall.
    """
    walls = np.ones((h, w), bool)
    want = max(2, int(round(floor_fraction * (h - 2) * (w - 2))))
    r, c = int(rng.integers(1, h - 1)), int(rng.integers(1, w - 1))
    d = int(rng.integers(4))
    walls[r, c] = False
    carved = 1
    for _ in range(50 * h * w):  # a bound; the walk reaches `want` long before it
        if carved >= want:
            break
        if rng.random() < 0.35:
            d = int(rng.integers(4))
        dr, dc = DIRECTIONS[d]
        r, c = min(max(r + dr, 1), h - 2), min(max(c + dc, 1), w - 2)
        cells = [(r, c)]
        if rng.random() < 0.25:
            sr, sc = DIRECTIONS[(d + 2) % 4] if d < 2 else DIRECTIONS[(d - 2) % 4]
            cells.append((min(max(r + sr, 1), h - 2), min(max(c + sc, 1), w - 2)))
        for cell in cells:
            if walls[cell]:
                walls[cell] = False
                carved += 1
    return walls


def _reverse_play(rng: np.random.Generator, walls: np.ndarray, targets: np.ndarray, boxes: list[tuple[int, int]],
                  player: tuple[int, int], steps: int) -> tuple[tuple, tuple[int, int]] | None:
    """Plays backwards from the solved position; returns the hardest position seen (boxes, player).

    Hardness: total push distance of the boxes to the targets, counted only when no box
    stands on a target.
    """
    pdist = push_distances(walls, targets)
    boxes = list(boxes)
    best, best_score = None, 0.0
    for _ in range(steps):
        d = int(rng.integers(4))
        dr, dc = DIRECTIONS[d]
        nxt = (player[0] + dr, player[1] + dc)
        if walls[nxt] or nxt in boxes:
            continue
        behind = (player[0] - dr, player[1] - dc)
        if behind in boxes and rng.random() < 0.6:  # pull: the box follows the player
            boxes[boxes.index(behind)] = player
        player = nxt
        if any(targets[b] for b in boxes):
            continue
        score = float(sum(pdist[b] for b in boxes))
        if score >= best_score and score > 0:
            best, best_score = (tuple(boxes), player), score
    return best


def generate_level(task: str, seed: int, node_budget: int = DEFAULT_NODE_BUDGET, max_attempts: int = 200) -> Level:
    """The level of `task` for `seed` (deterministic): solvable within the step limit, checked by `solve`."""
    check_task(task, list(SOKOBAN_TASKS), "sokoban")
    if int(seed) < 0:
        raise ValueError(f"sokoban: level seed must be >= 0, got {seed}")
    return _generate_level_cached(task, int(seed), int(node_budget), int(max_attempts))


@functools.lru_cache(maxsize=64)
def _generate_level_cached(task: str, seed: int, node_budget: int, max_attempts: int) -> Level:
    cfg = SOKOBAN_TASKS[task]
    rng = np.random.default_rng([seed, cfg.height, cfg.width, cfg.num_boxes])
    for _ in range(max_attempts):
        walls = _carve_room(rng, cfg.height, cfg.width, cfg.floor_fraction)
        floor = [tuple(int(v) for v in x) for x in np.argwhere(~walls)]
        if len(floor) < cfg.num_boxes + 3:
            continue
        picks = rng.permutation(len(floor))[: cfg.num_boxes + 1]
        target_cells = [floor[i] for i in picks[:-1]]
        targets = np.zeros_like(walls)
        for t in target_cells:
            targets[t] = True
        found = _reverse_play(rng, walls, targets, target_cells, floor[picks[-1]], cfg.reverse_steps)
        if found is None:
            continue
        level = Level(walls, targets, found[0], found[1])
        try:
            sol = solve(level, node_budget)
        except SolverBudgetExceeded:
            continue
        if sol.solvable and cfg.min_solution_steps <= len(sol.actions) <= MAX_STEPS:
            return level
    raise LevelGenerationError(f"sokoban: no level for task {task!r}, seed {seed} within {max_attempts} attempts")
