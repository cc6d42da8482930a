"""Sokoban: a pure-NumPy environment, a reverse-play level generator and an exact solver expert.

Gato's Table 1 lists Sokoban (GATO_SPEC §8). gatolab implements the game itself (no
simulator package) with the conventions of the usual gym Sokoban environment
(gym-sokoban, Schrader 2018), so that data and policies mean the same thing there:

| field | modality | what |
|---|---|---|
| "grid" | DISCRETE, 7 values, (H, W) | the whole room, one cell type per cell (`CELL_NAMES`) |
| action "action" | DISCRETE, 9 values, () | 0 no-op, 1-4 push up/down/left/right, 5-8 move up/down/left/right |

Cell types follow gym-sokoban's `room_state` numbering: 0 wall, 1 floor, 2 target,
3 box on target, 4 box, 5 player; gatolab adds 6 = player standing on a target
(gym-sokoban's state shows 5 there and keeps the target in a second array), so that
the grid alone is the full state (the expert plans from it).

Actions: gym-sokoban's 9-action set (its default `Sokoban-v*` action space), not the
4-action push-only variant, so that recorded actions say whether the agent meant to push
(1-4) or only to walk (5-8). As in gym-sokoban, a push action with no box in front just
moves the player; a move action into a box, and any action into a wall or an immovable
box, leaves the state unchanged (the step still costs its penalty).

Rewards (gym-sokoban's): -0.1 every step, +1 when a box is pushed onto a target, -1 when
a box is pushed off one, +10 on the step that puts the last box on its target, which
ends the episode (terminated, `info["success"]` True). Episodes are truncated after
`max_steps` = 120 steps (gym-sokoban's default). A level with N boxes, none on a target
at the start, solved in T steps returns 10 + N - 0.1 T.

Levels (`generate_level`): the room is carved out of solid wall by a random walk, the
boxes start on randomly placed targets and the player on another floor cell, and then
the game is played backwards: the player walks at random and sometimes pulls the box
behind it. Every pull undone is a push, so every level is solvable by construction (as
in gym-sokoban, whose generator works this way); of the states visited, the one whose
boxes are furthest (in pushes) from their targets, with none on a target, becomes the
level (the latest such state on ties, so the player has wandered off). Each level is
then solved exactly, and levels the solver cannot finish within the node budget, or
whose optimal solution is longer than the step limit or shorter than the task's
`min_solution_steps` (5, 8, 12 steps: without it a quarter of the 7x7 one-box levels
take 1-2 steps, which a random policy solves by chance), are regenerated from the
same seeded stream. A level is a pure function of its task and seed.

Expert (`SokobanSolverExpert`): A* over (player, boxes) states with one player step
per edge, so its plans minimise the number of steps, which maximises the return. The
heuristic (sum over boxes of the fewest pushes to the nearest target, ignoring other
boxes) is consistent, so the first plan found is optimal; boxes on "dead" cells (from
which no push sequence reaches a target) are pruned, which removes only unsolvable
states. Search stops at a node budget (`SolverBudgetExceeded`). The expert reads the
state from the observation grid, follows its plan, and replans if the state is not the
one its plan expects; from a proven-unsolvable state (a deadlock) it plays no-op.

Tasks: `Sokoban-7x7-1box`, `Sokoban-7x7-2box` (gym-sokoban's Sokoban-small-v0 size),
and `Sokoban-10x10-3box` (the size and box count of gym-sokoban's Sokoban-v0).
Rendering (`render`): 16 px tiles per cell drawn with NumPy.

Measured (levels of seeds 0-99; random policy on seeds 10^6 + i, 100 episodes):

| task | optimal steps mean [min, max] | A* nodes mean / max | expert success | random success |
|---|---|---|---|---|
| Sokoban-7x7-1box | 7.5 [5, 14] | 18 / 45 | 100% | 8% |
| Sokoban-7x7-2box | 10.7 [8, 21] | 55 / 319 | 100% | 4% |
| Sokoban-10x10-3box | 19.3 [12, 33] | 1564 / 8380 (6 ms / 43 ms) | 100% | 0% |
"""

from __future__ import annotations

import dataclasses
import functools
import heapq
from collections import deque
from collections.abc import Iterator
from typing import Any

import numpy as np

from gatolab.envs.base import Domain, Policy, TaskEnv, register
from gatolab.envs.common import check_action, check_observation, check_task, generate_expert_episodes, random_policy_for
from gatolab.episode import Episode
from gatolab.specs import EnvSpec, FieldSpec

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


# ----------------------------------------------------------------------------------
# Levels
# ----------------------------------------------------------------------------------
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


# ----------------------------------------------------------------------------------
# Game rules (shared by the environment and the solver)
# ----------------------------------------------------------------------------------
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


# ----------------------------------------------------------------------------------
# Solver
# ----------------------------------------------------------------------------------
class SolverBudgetExceeded(RuntimeError):
    """The search expanded `node_budget` states without deciding the level."""


@dataclasses.dataclass(frozen=True)
class Solution:
    """A solver's answer: `actions` (None when the level is unsolvable) and search effort."""

    actions: tuple[int, ...] | None
    nodes_expanded: int

    @property
    def solvable(self) -> bool:
        return self.actions is not None


def push_distances(walls: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Fewest pushes that bring a lone box from each cell to some target (inf: a dead cell).

    Backwards from the targets: a box at x can be pushed into y = x + d when the player
    can stand at x - d, i.e. both x and x - d are not walls.
    """
    h, w = walls.shape
    dist = np.full((h, w), np.inf)
    queue: deque[tuple[int, int]] = deque()
    for r, c in np.argwhere(targets & ~walls):
        dist[r, c] = 0
        queue.append((int(r), int(c)))
    while queue:
        y = queue.popleft()
        for dr, dc in DIRECTIONS:
            x = (y[0] - dr, y[1] - dc)
            stand = (x[0] - dr, x[1] - dc)
            if not (0 <= stand[0] < h and 0 <= stand[1] < w and 0 <= x[0] < h and 0 <= x[1] < w):
                continue
            if walls[x] or walls[stand] or dist[x] <= dist[y] + 1:
                continue
            dist[x] = dist[y] + 1
            queue.append(x)
    return dist


def solve(level: Level, node_budget: int = DEFAULT_NODE_BUDGET) -> Solution:
    """An optimal (fewest steps) action sequence that puts every box on a target.

    A* over (player, boxes), one player step per edge; actions use push (1-4) for steps
    that move a box and move (5-8) otherwise. Returns `Solution(None, n)` when the
    level is proven unsolvable.

    Raises:
      SolverBudgetExceeded: after `node_budget` expansions without an answer.
    """
    if node_budget < 1:
        raise ValueError(f"solve: node_budget must be >= 1, got {node_budget}")
    return _solve_cached(level.walls.tobytes(), level.targets.tobytes(), level.shape, level.boxes, level.player, int(node_budget))


@functools.lru_cache(maxsize=256)
def _solve_cached(walls_b: bytes, targets_b: bytes, shape: tuple[int, int], boxes: tuple, player: tuple,
                  node_budget: int) -> Solution:
    h, w = shape
    walls = np.frombuffer(walls_b, bool).reshape(h, w)
    targets = np.frombuffer(targets_b, bool).reshape(h, w)
    # Flat indices; the room is walled by construction (cells off the board count as wall).
    padded = np.ones((h + 2, w + 2), bool)
    padded[1:-1, 1:-1] = walls
    pw = w + 2
    flat = lambda rc: (rc[0] + 1) * pw + rc[1] + 1  # noqa: E731
    wall = padded.ravel().tolist()
    tpad = np.zeros((h + 2, w + 2), bool)
    tpad[1:-1, 1:-1] = targets
    target_set = frozenset(np.flatnonzero(tpad.ravel()).tolist())
    dpad = np.full((h + 2, w + 2), np.inf)
    dpad[1:-1, 1:-1] = push_distances(walls, targets)
    pdist = dpad.ravel().tolist()
    offsets = (-pw, pw, -1, 1)

    start_boxes = tuple(sorted(flat(b) for b in boxes))
    start = (flat(player), start_boxes)
    if any(pdist[b] == np.inf for b in start_boxes):
        return Solution(None, 0)

    def h_of(bs: tuple[int, ...]) -> float:
        return sum(pdist[b] for b in bs)

    best_g = {start: 0}
    parent: dict[tuple, tuple[tuple, int]] = {}
    heap = [(h_of(start_boxes), 0, 0, start)]
    counter = 1
    expanded = 0
    while heap:
        f, neg_g, _, state = heapq.heappop(heap)
        g = -neg_g
        if best_g.get(state, np.inf) < g:
            continue  # a stale entry
        p, bs = state
        if all(b in target_set for b in bs):
            actions = []
            while state in parent:
                state, a = parent[state]
                actions.append(a)
            return Solution(tuple(reversed(actions)), expanded)
        expanded += 1
        if expanded > node_budget:
            raise SolverBudgetExceeded(f"Sokoban solver: no answer after {node_budget} node expansions "
                                       f"(level {h}x{w}, {len(bs)} boxes); raise node_budget")
        box_set = set(bs)
        for d, off in enumerate(offsets):
            q = p + off
            if wall[q]:
                continue
            if q in box_set:
                beyond = q + off
                if wall[beyond] or beyond in box_set or pdist[beyond] == np.inf:
                    continue
                nbs = tuple(sorted(beyond if b == q else b for b in bs))
                action = push_action(d)
            else:
                nbs = bs
                action = move_action(d)
            nstate = (q, nbs)
            ng = g + 1
            if ng < best_g.get(nstate, np.inf):
                best_g[nstate] = ng
                parent[nstate] = (state, action)
                # Ties on f go to the deeper node (closer to a goal).
                heapq.heappush(heap, (ng + h_of(nbs), -ng, counter, nstate))
                counter += 1
    return Solution(None, expanded)


# ----------------------------------------------------------------------------------
# Generator
# ----------------------------------------------------------------------------------
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


# ----------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------
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


# ----------------------------------------------------------------------------------
# Environment, expert, domain
# ----------------------------------------------------------------------------------
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


class SokobanDomain(Domain):
    """Sokoban levels from `generate_level`, the A* solver as the expert (see the module docstring)."""

    name = "sokoban"
    kind = "control"

    def __init__(self, node_budget: int = DEFAULT_NODE_BUDGET):
        self.node_budget = int(node_budget)

    def tasks(self) -> list[str]:
        return list(SOKOBAN_TASKS)

    def spec(self, task: str) -> EnvSpec:
        return sokoban_spec(task)

    def make(self, task: str, seed: int = 0, render: bool = False) -> TaskEnv:
        return SokobanEnv(task, self.spec(task), seed=seed, render=render, node_budget=self.node_budget)

    def expert(self, task: str) -> Policy:
        check_task(task, self.tasks(), self.name)
        return SokobanSolverExpert(self.node_budget)

    def random_policy(self, task: str, seed: int = 0) -> Policy:
        return random_policy_for(self.spec(task), seed)

    def generate(self, task: str, num_episodes: int, seed: int = 0) -> Iterator[Episode]:
        """Expert episodes on the levels of seeds seed, seed + 1, ...; metadata names the expert."""
        check_task(task, self.tasks(), self.name)
        return generate_expert_episodes(self, task, num_episodes, seed, expert_name="SokobanSolverExpert")


register("sokoban", SokobanDomain)
