"""An exact Sokoban solver: A* over (player, boxes) states, one player step per edge.

Its plans minimise the number of steps, which maximises the return. The heuristic (sum
over boxes of the fewest pushes to the nearest target, ignoring other boxes) is
consistent, so the first plan found is optimal; boxes on "dead" cells (from which no
push sequence reaches a target) are pruned, which removes only unsolvable states.
"""

from __future__ import annotations

import dataclasses
import functools
import heapq
from collections import deque

import numpy as np

from gatolab.domains.sokoban.game import DEFAULT_NODE_BUDGET, DIRECTIONS, Level, move_action, push_action

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
