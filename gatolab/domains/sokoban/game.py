"""Sokoban's rules: cell types, actions, rewards, tasks, the `Level` position and `apply_action`.

Shared by the environment (`env.py`), the level generator (`levels.py`) and the solver
(`solver.py`); conventions are gym-sokoban's (see the package docstring).
"""

from __future__ import annotations

import dataclasses

import numpy as np

# Cell types of the observation grid (gym-sokoban's room_state numbering, plus 6).
WALL, FLOOR, TARGET, BOX_ON_TARGET, BOX, PLAYER, PLAYER_ON_TARGET = range(7)
CELL_NAMES = ("wall", "floor", "target", "box_on_target", "box", "player", "player_on_target")
NUM_CELL_TYPES = len(CELL_NAMES)

# Actions (gym-sokoban's 9-action set). Directions d = 0..3 are up, down, left, right.
ACTION_NAMES = ("no-op", "push up", "push down", "push left", "push right", "move up", "move down", "move left", "move right")
NUM_ACTIONS = len(ACTION_NAMES)
NOOP = 0
DIRECTIONS = ((-1, 0), (1, 0), (0, -1), (0, 1))


def push_action(d: int) -> int:
    return 1 + d


def move_action(d: int) -> int:
    return 5 + d


# gym-sokoban's reward constants and step limit.
STEP_PENALTY = -0.1
BOX_ON_TARGET_REWARD = 1.0
BOX_OFF_TARGET_PENALTY = -1.0
FINISHED_REWARD = 10.0
MAX_STEPS = 120
DEFAULT_NODE_BUDGET = 200_000


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    height: int
    width: int
    num_boxes: int
    floor_fraction: float  # of the interior carved into floor
    reverse_steps: int  # backwards-play steps per attempt
    min_solution_steps: int  # levels solved in fewer steps are regenerated


SOKOBAN_TASKS: dict[str, TaskConfig] = {
    "Sokoban-7x7-1box": TaskConfig(7, 7, 1, floor_fraction=0.6, reverse_steps=300, min_solution_steps=5),
    "Sokoban-7x7-2box": TaskConfig(7, 7, 2, floor_fraction=0.6, reverse_steps=300, min_solution_steps=8),
    "Sokoban-10x10-3box": TaskConfig(10, 10, 3, floor_fraction=0.5, reverse_steps=500, min_solution_steps=12),
}


@dataclasses.dataclass(frozen=True, eq=False)
class Level:
    """A Sokoban position: static walls/targets, and where the boxes and the player are.

    `walls` and `targets` are (H, W) bool arrays; `boxes` a sorted tuple of (row, col);
    `player` a (row, col).
    """

    walls: np.ndarray
    targets: np.ndarray
    boxes: tuple[tuple[int, int], ...]
    player: tuple[int, int]

    def __post_init__(self):
        walls, targets = np.asarray(self.walls, bool), np.asarray(self.targets, bool)
        if walls.ndim != 2 or walls.shape != targets.shape:
            raise ValueError(f"Level: walls and targets must be (H, W) arrays of one shape, "
                             f"got {walls.shape} and {targets.shape}")
        object.__setattr__(self, "walls", walls)
        object.__setattr__(self, "targets", targets)
        object.__setattr__(self, "boxes", tuple(sorted((int(r), int(c)) for r, c in self.boxes)))
        object.__setattr__(self, "player", (int(self.player[0]), int(self.player[1])))
        h, w = walls.shape
        cells = [*self.boxes, self.player]
        for r, c in cells:
            if not (0 <= r < h and 0 <= c < w):
                raise ValueError(f"Level: position {(r, c)} lies outside the {h}x{w} room")
            if walls[r, c]:
                raise ValueError(f"Level: position {(r, c)} (a box or the player) is on a wall")
        if len(set(cells)) != len(cells):
            raise ValueError(f"Level: boxes {self.boxes} and player {self.player} must occupy distinct cells")
        if len(self.boxes) != int(targets.sum()):
            raise ValueError(f"Level: {len(self.boxes)} boxes but {int(targets.sum())} targets")
        if len(self.boxes) == 0:
            raise ValueError("Level: needs at least one box")
        if not (walls[0].all() and walls[-1].all() and walls[:, 0].all() and walls[:, -1].all()):
            raise ValueError("Level: the border of the room must be wall (enclose the room in '#')")

    @property
    def shape(self) -> tuple[int, int]:
        return self.walls.shape

    @property
    def solved(self) -> bool:
        return all(self.targets[b] for b in self.boxes)

    def grid(self) -> np.ndarray:
        """The observation: (H, W) int64 cell types (`CELL_NAMES`)."""
        g = np.where(self.walls, WALL, np.where(self.targets, TARGET, FLOOR)).astype(np.int64)
        for b in self.boxes:
            g[b] = BOX_ON_TARGET if self.targets[b] else BOX
        g[self.player] = PLAYER_ON_TARGET if self.targets[self.player] else PLAYER
        return g

    @classmethod
    def from_grid(cls, grid: np.ndarray) -> Level:
        """Inverse of `grid()`; raises ValueError on an invalid grid."""
        g = np.asarray(grid)
        if g.ndim != 2 or g.dtype.kind not in "iu" or g.min(initial=0) < 0 or g.max(initial=0) >= NUM_CELL_TYPES:
            raise ValueError(f"Level.from_grid: expected an (H, W) integer grid of cell types in [0, {NUM_CELL_TYPES}), "
                             f"got shape {g.shape}, dtype {g.dtype}")
        players = np.argwhere((g == PLAYER) | (g == PLAYER_ON_TARGET))
        if len(players) != 1:
            raise ValueError(f"Level.from_grid: expected exactly one player cell, found {len(players)}")
        boxes = [tuple(x) for x in np.argwhere((g == BOX) | (g == BOX_ON_TARGET))]
        targets = np.isin(g, (TARGET, BOX_ON_TARGET, PLAYER_ON_TARGET))
        return cls(g == WALL, targets, tuple(boxes), tuple(players[0]))

    def to_text(self) -> str:
        """The level in the common XSB text notation (# wall, . target, $ box, * box on target, @ player, + player on target)."""
        chars = {WALL: "#", FLOOR: " ", TARGET: ".", BOX_ON_TARGET: "*", BOX: "$", PLAYER: "@", PLAYER_ON_TARGET: "+"}
        return "\n".join("".join(chars[int(v)] for v in row) for row in self.grid())


_XSB = {"#": WALL, " ": FLOOR, "-": FLOOR, "_": FLOOR, ".": TARGET, "*": BOX_ON_TARGET, "$": BOX, "@": PLAYER,
        "+": PLAYER_ON_TARGET}


def parse_level(text: str) -> Level:
    """A level from XSB text (see `Level.to_text`); short rows are padded with wall.

    Space, "-" and "_" are floor; the outermost rows and columns must be wall.
    """
    rows = [r for r in text.strip("\n").split("\n")]
    if not rows or not any(rows):
        raise ValueError("parse_level: empty level text")
    width = max(len(r) for r in rows)
    grid = np.full((len(rows), width), WALL, np.int64)
    for i, row in enumerate(rows):
        for j, ch in enumerate(row):
            if ch not in _XSB:
                raise ValueError(f"parse_level: unknown character {ch!r} at row {i}, column {j} (known: {''.join(_XSB)!r})")
            grid[i, j] = _XSB[ch]
    return Level.from_grid(grid)


def apply_action(level: Level, action: int) -> tuple[Level, int]:
    """The position after `action`, and the change in the number of boxes on targets (-1, 0, +1)."""
    if action == NOOP:
        return level, 0
    push = action <= 4
    dr, dc = DIRECTIONS[(action - 1) % 4]
    pr, pc = level.player
    nxt = (pr + dr, pc + dc)
    if level.walls[nxt]:
        return level, 0
    if nxt in level.boxes:
        beyond = (nxt[0] + dr, nxt[1] + dc)
        if not push or level.walls[beyond] or beyond in level.boxes:
            return level, 0
        boxes = tuple(beyond if b == nxt else b for b in level.boxes)
        delta = int(level.targets[beyond]) - int(level.targets[nxt])
        return dataclasses.replace(level, boxes=boxes, player=nxt), delta
    return dataclasses.replace(level, player=nxt), 0
