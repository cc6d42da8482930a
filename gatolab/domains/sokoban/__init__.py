"""Sokoban: a pure-NumPy environment, a reverse-play level generator and an exact solver expert.

Files: `game.py` (rules and positions), `levels.py` (the generator), `solver.py` (A*),
`env.py` (the `TaskEnv` and its renderer), `expert.py` (the solver as a policy).

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

from gatolab.domains.base import Domain, Policy, TaskEnv, check_task
from gatolab.domains.registry import DomainEntry
from gatolab.domains.sokoban.env import SokobanEnv, sokoban_spec
from gatolab.domains.sokoban.expert import SokobanSolverExpert
from gatolab.domains.sokoban.game import DEFAULT_NODE_BUDGET, SOKOBAN_TASKS
from gatolab.specs import EnvSpec


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


ENTRY = DomainEntry(
    name="sokoban",
    factory=SokobanDomain,
    weights={"sokoban": 1.33},  # Table 1: Sokoban
    notes={
        "what": "Sokoban puzzles (gatolab's NumPy environment with gym-sokoban's conventions): the room as an HxW grid "
                "of 7 cell types, 9 discrete actions (no-op, 4 pushes, 4 moves), -0.1 per step, +-1 per box on/off "
                "a target, +10 when solved, 120 steps (Gato Table 1: 1 task, 27.2K episodes, weight 1.33%).",
        "expert": "An exact A* solver over (player, boxes) states with a node budget, replanning when the state "
                  "drifts; levels are generated by reverse play from a solved room, so every level is solvable.",
        "licence": "The environment, the levels and the generated data: Apache-2.0 (gatolab).",
        "use": "Planning-heavy discrete control at CPU scale; a check that the model reads a grid precisely.",
        "limits": "Small boards (7x7 with 1-2 boxes, 10x10 with 3); optimal solutions are shorter and more regular "
                  "than human or RL play; a minimum solution length per task keeps trivial levels out.",
    },
    owns=lambda task: task.startswith("Sokoban-"),
)
