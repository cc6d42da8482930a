"""Sokoban: game rules and rewards as gym-sokoban, solvable seeded levels, an optimal solver expert."""

from collections import deque

import numpy as np
import pytest

import gatolab as gl
from gatolab.data import storage as st
from gatolab.domains.sokoban import env as sk_env
from gatolab.domains.sokoban import game, levels, solver
from gatolab.domains import rollout
from gatolab.testing import tiny_tokenizer

DOMAIN = gl.domains.get("sokoban")
SMALL = ["Sokoban-7x7-1box", "Sokoban-7x7-2box"]


def _bfs_length(level: game.Level) -> int | None:
    """Fewest steps to solve, by plain breadth-first search (no heuristic, no pruning): the reference."""
    walls, targets = level.walls, level.targets
    goal = frozenset(map(tuple, np.argwhere(targets)))
    start = (level.player, frozenset(level.boxes))
    seen, queue = {start}, deque([(start, 0)])
    while queue:
        (p, boxes), n = queue.popleft()
        if boxes == goal:
            return n
        for dr, dc in game.DIRECTIONS:
            q = (p[0] + dr, p[1] + dc)
            if walls[q]:
                continue
            nb = boxes
            if q in boxes:
                b = (q[0] + dr, q[1] + dc)
                if walls[b] or b in boxes:
                    continue
                nb = (boxes - {q}) | {b}
            s = (q, nb)
            if s not in seen:
                seen.add(s)
                queue.append((s, n + 1))
    return None


def _play(level: game.Level, actions) -> game.Level:
    for a in actions:
        level, _ = game.apply_action(level, a)
    return level


@pytest.mark.parametrize("text, length", [
    ("#####\n#@$.#\n#####", 1),  # one push
    ("#######\n#.$  @#\n#######", 3),  # walk up to the box, push once
    ("#####\n#   #\n#@$ #\n#  .#\n#####", 4),  # push right, walk round (2), push down
    ("######\n#@$ .#\n# $ .#\n#    #\n######", 7),  # top box first (2 pushes), walk round (3), 2 pushes
])
def test_solver_is_optimal_on_hand_made_levels(text, length):
    level = game.parse_level(text)
    assert level.to_text() == text
    sol = solver.solve(level)
    assert sol.solvable and len(sol.actions) == length == _bfs_length(level)
    assert _play(level, sol.actions).solved
    # Steps that move a box are pushes (1-4), the others moves (5-8).
    assert sol.actions[-1] in (1, 2, 3, 4) and all(1 <= a <= 8 for a in sol.actions)


def test_solver_proves_unsolvable_and_respects_its_budget():
    corner = game.parse_level("#####\n#$  #\n# @.#\n#####")  # box in a corner off target: a dead cell
    assert solver.solve(corner).actions is None and solver.solve(corner).nodes_expanded == 0
    frozen = game.parse_level("#######\n#.$$ .#\n#  @  #\n#######")  # two boxes block each other against the wall
    sol = solver.solve(frozen)
    assert sol.actions is None and sol.nodes_expanded > 0  # exhausted the search space
    level = levels.generate_level("Sokoban-7x7-2box", 0)
    with pytest.raises(solver.SolverBudgetExceeded, match="no answer after 2 node expansions"):
        solver.solve(level, node_budget=2)
    with pytest.raises(ValueError, match="node_budget must be >= 1"):
        solver.solve(level, node_budget=0)


@pytest.mark.parametrize("task", SMALL)
def test_solver_matches_breadth_first_search_on_generated_levels(task):
    for seed in range(12):
        level = levels.generate_level(task, seed)
        assert len(solver.solve(level).actions) == _bfs_length(level), (task, seed)


@pytest.mark.parametrize("task", DOMAIN.tasks())
def test_generated_levels_are_solvable_and_deterministic(task):
    cfg = game.SOKOBAN_TASKS[task]
    grids = []
    for seed in range(6):
        level = levels.generate_level(task, seed)
        levels._generate_level_cached.cache_clear()
        again = levels.generate_level(task, seed)
        np.testing.assert_array_equal(level.grid(), again.grid())
        g = level.grid()
        assert g.shape == (cfg.height, cfg.width)
        assert np.all(g[0] == game.WALL) and np.all(g[-1] == game.WALL) and np.all(g[:, 0] == game.WALL) and np.all(g[:, -1] == game.WALL)
        assert (g == game.BOX).sum() == cfg.num_boxes and (g == game.BOX_ON_TARGET).sum() == 0  # no box starts on a target
        sol = solver.solve(level)
        assert sol.solvable and cfg.min_solution_steps <= len(sol.actions) <= game.MAX_STEPS
        grids.append(g.tobytes())
    assert len(set(grids)) == len(grids)  # different seeds, different levels
    env = DOMAIN.make(task)
    np.testing.assert_array_equal(env.reset(seed=4)["grid"], levels.generate_level(task, 4).grid())


def test_rules_and_rewards_follow_gym_sokoban():
    env = DOMAIN.make("Sokoban-7x7-1box")
    level = game.parse_level("#######\n#.$  @#\n#######\n#######\n#######\n#######\n#######")
    obs = env.reset(level=level)
    assert obs["grid"][1].tolist() == [game.WALL, game.TARGET, game.BOX, game.FLOOR, game.FLOOR, game.PLAYER, game.WALL]
    _, r, term, trunc, _ = env.step({"action": 0})  # no-op still costs the step penalty
    assert r == pytest.approx(-0.1) and not term and not trunc
    env.step({"action": 7})
    _, r, _, _, _ = env.step({"action": 7})  # move left, player beside the box
    obs, r, _, _, _ = env.step({"action": 7})  # a move action does not push
    assert r == pytest.approx(-0.1) and obs["grid"][1, 2] == game.BOX and obs["grid"][1, 3] == game.PLAYER
    obs, r, term, trunc, info = env.step({"action": 3})  # push left: on target, all boxes done
    assert r == pytest.approx(-0.1 + 1 + 10) and term and not trunc and info["success"]
    assert obs["grid"][1, 1] == game.BOX_ON_TARGET
    with pytest.raises(RuntimeError, match="episode has ended; call reset"):
        env.step({"action": 0})

    env = DOMAIN.make("Sokoban-7x7-2box")
    level = game.parse_level("#######\n#@* . #\n#  $  #\n#######\n#######\n#######\n#######")
    env.reset(level=level)
    _, r, _, _, _ = env.step({"action": 4})  # pushes the box off its target
    assert r == pytest.approx(-0.1 - 1)
    obs, r, term, _, info = env.step({"action": 4})  # ... and onto the other; one box still off
    assert r == pytest.approx(-0.1 + 1) and not term and info["boxes_on_target"] == 1
    assert obs["grid"][1, 2] == game.TARGET and obs["grid"][1, 3] == game.PLAYER and obs["grid"][1, 4] == game.BOX_ON_TARGET
    _, r, _, _, _ = env.step({"action": 1})  # push up into the wall: nothing moves
    assert r == pytest.approx(-0.1)
    # Standing on a target shows as cell type 6, and the grid alone recovers the level.
    g = game.parse_level("#####\n#+$ #\n#####").grid()
    assert g[1, 1] == game.PLAYER_ON_TARGET and game.Level.from_grid(g).to_text() == "#####\n#+$ #\n#####"


def test_episode_truncates_at_120_steps():
    env = DOMAIN.make("Sokoban-7x7-1box")
    ep = rollout(env, lambda e, o: {"action": np.asarray(0)}, seed=0).episode
    assert len(ep) == game.MAX_STEPS == env.max_steps and not ep.metadata["success"]
    assert ep.total_return == pytest.approx(-0.1 * game.MAX_STEPS, abs=1e-4)


@pytest.mark.parametrize("task", SMALL)
def test_expert_solves_levels_random_mostly_fails(task):
    env = DOMAIN.make(task)
    cfg = game.SOKOBAN_TASKS[task]
    expert_ok, random_ok, expert_ret, random_ret = [], [], [], []
    for seed in range(40):
        ep = rollout(env, DOMAIN.expert(task), seed=seed).episode
        optimal = len(solver.solve(levels.generate_level(task, seed)).actions)
        expert_ok.append(ep.metadata["success"])
        expert_ret.append(ep.total_return)
        if ep.metadata["success"]:  # follows the optimal plan: return 10 + N - 0.1 T
            assert len(ep) == optimal and ep.total_return == pytest.approx(10 + cfg.num_boxes - 0.1 * optimal, abs=1e-4)
        rep = rollout(env, DOMAIN.random_policy(task, seed=seed), seed=seed).episode
        random_ok.append(rep.metadata["success"])
        random_ret.append(rep.total_return)
    # Measured (seeds 0-39): expert 100% on both; random 7.5% (1 box) and 5% (2 boxes).
    assert np.mean(expert_ok) >= 0.95
    assert np.mean(random_ok) <= 0.25 and np.mean(random_ok) < np.mean(expert_ok) - 0.6
    assert np.mean(expert_ret) > 10 > 0 > np.mean(random_ret)
    seq = tiny_tokenizer().tokenize_episode(ep, DOMAIN.spec(task))
    assert seq.num_timesteps == len(ep)


def test_large_task_expert_and_render():
    task = "Sokoban-10x10-3box"
    env = DOMAIN.make(task, render=True)
    run = rollout(env, DOMAIN.expert(task), seed=0, render=True)
    ep, frames = run.episode, run.frames
    assert ep.metadata["success"] and len(ep) >= game.SOKOBAN_TASKS[task].min_solution_steps
    assert frames.shape == (len(ep) + 1, 160, 160, 3) and frames.dtype == np.uint8
    assert not np.array_equal(frames[0], frames[-1])
    # One 16 px tile per cell: each cell type has its own look.
    tiles = [sk_env.render_grid(np.full((1, 1), k)) for k in range(game.NUM_CELL_TYPES)]
    assert len({t.tobytes() for t in tiles}) == game.NUM_CELL_TYPES


def test_expert_replans_after_a_detour():
    env = DOMAIN.make("Sokoban-7x7-2box")
    expert = DOMAIN.expert("Sokoban-7x7-2box")
    obs = env.reset(seed=1)
    for _ in range(2):
        obs, *_ = env.step(expert(env, obs))
    # A detour of move actions (moves never push, so nothing can deadlock), then the expert finishes.
    rng = np.random.default_rng(0)
    for _ in range(3):
        obs, *_ = env.step({"action": np.asarray(rng.integers(5, 9))})
    assert solver.solve(env.level).solvable
    for _ in range(game.MAX_STEPS):
        obs, _, term, trunc, _ = env.step(expert(env, obs))
        if term or trunc:
            break
    assert term


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="unknown task 'Sokoban-9x9-1box'.*Sokoban-7x7-1box"):
        DOMAIN.spec("Sokoban-9x9-1box")
    with pytest.raises(ValueError, match="unknown task 'Nope'"):
        levels.generate_level("Nope", 0)
    with pytest.raises(ValueError, match="seed must be >= 0, got -1"):
        levels.generate_level("Sokoban-7x7-1box", -1)
    env = DOMAIN.make("Sokoban-7x7-1box")
    with pytest.raises(RuntimeError, match="call reset\\(\\) before step\\(\\)"):
        env.step({"action": 0})
    env.reset(seed=0)
    with pytest.raises(ValueError, match="'action' must lie in \\[0, 9\\)"):
        env.step({"action": np.asarray(9)})
    with pytest.raises(ValueError, match="'action' is discrete; got non-integer"):
        env.step({"action": np.asarray(1.5)})
    with pytest.raises(ValueError, match="'action' must have shape \\(\\)"):
        env.step({"action": np.zeros(2)})
    with pytest.raises(ValueError, match="'move' is not in the spec"):
        env.step({"action": 0, "move": 1})
    with pytest.raises(ValueError, match="unknown character 'x' at row 1"):
        game.parse_level("####\n#@x#")
    with pytest.raises(ValueError, match="2 boxes but 1 targets"):
        game.parse_level("######\n#@$$.#\n######")
    with pytest.raises(ValueError, match="border of the room must be wall"):
        game.parse_level("#####\n#@$. \n#####")
    with pytest.raises(ValueError, match="exactly one player"):
        game.parse_level("#####\n#$.#\n#####")
    with pytest.raises(ValueError, match="level of shape \\(3, 5\\), the task's grid is \\(7, 7\\)"):
        env.reset(level=game.parse_level("#####\n#@$.#\n#####"))


def test_generate_writes_a_dataset_that_tokenizes(tmp_path):
    m = gl.data.generate("sokoban", tmp_path, episodes=3, progress=False)
    assert m["num_episodes"] == 3 * len(DOMAIN.tasks())
    ds = st.EpisodeDataset(tmp_path / "sokoban")
    tok = tiny_tokenizer()
    for ep in ds:
        assert ep.metadata["success"] and ep.metadata["expert"] == "SokobanSolverExpert"
        spec = ds.specs[ep.task]
        assert ep.observations["grid"].shape[1:] == spec.observation["grid"].shape
        seq = tok.tokenize_episode(ep, spec)
        assert seq.num_timesteps == len(ep)
