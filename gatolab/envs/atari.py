"""ALE Atari (Bellemare et al., 2013) through ale-py: RGB frames for Gato, PPO experts on the DQN view.

Gato trains on 51 ALE Atari games (GATO_SPEC §8, Table 1: 9.5% of the mixture; a further
28 "Atari Extended" games take 10.0%). The paper does not name the 51; gatolab offers the
standard Atari-57 set (Badia et al., 2020) as gymnasium ids ("ALE/Pong-v5", ...).

Fields (GATO_SPEC §1):
  observation "image": IMAGE (84, 84, 3) uint8, the RGB screen, max-pooled over the last two
      emulator frames of each step and area-resized from 210x160. [open] Gato does not
      give its Atari resolution; 84x84 is the DQN/JAT resolution and costs 36 patch tokens
      per frame (the 16x16 patch tokenizer pads 84 to 96 = 6x6 patches), where the full
      210x160 frame would cost 14x10 = 140 and leave room for only ~7 timesteps per
      1024-token context. Colour is kept: Gato's images are RGB.
  action "action": DISCRETE, 18 values: ALE's full legal action set in every game, as Gato
      (one action space for all games; GATO_SPEC §1 "discrete values (e.g. Atari buttons)").

Emulation follows "ALE/<Game>-v5": 4 emulator frames per step (frame skip 4), sticky actions
with probability 0.25 (Machado et al., 2018), at most 108,000 frames (27,000 steps, 30 minutes
of play) per episode; a reset presses FIRE and then takes 0-29 no-ops (seeded: `reset(seed)`
fixes the whole episode given the actions). Rewards are the raw game score (not clipped).
`render()` returns the full 210x160 RGB screen.

Experts: PPO (gatolab/experts/ppo.py's update; CleanRL's Atari settings, Huang et al., 2022)
with the Nature CNN on the usual DQN input: 84x84 grayscale, 4 stacked frames, each the
max of the last two emulator frames. Training runs on ale-py's C++ `AtariVectorEnv`; the
`TaskEnv` computes the same view from its own emulator (`env.expert_observation()`),
reproducing the vector env's preprocessing bit for bit (OpenCV INTER_AREA resize included;
checked in tests/test_envs_atari.py), and both are built from one `PREPROCESSING` table.

Launching experts:

    gatolab experts train --env ALE/Breakout-v5 --minutes 15   # the committed, bounded run
    gatolab experts train --env ALE/Pong-v5                    # full strength: 10M steps

Full strength is PPO's usual 10M steps (40M frames) per game. Measured on this project's
2-core CPU (shared with other jobs): the vector env steps ~3,400 steps/s (8 envs, random
actions), one PPO update (1,024 steps, 4 epochs x 4 minibatches) takes ~3 s, and training
runs at ~245 steps/s overall: the committed ALE/Breakout-v5 expert is 206,848 steps in 14
minutes (training return 1.6 -> 5.9; expert 4.9 vs random 1.4 through the adapter, 10
episodes). 10M steps would take ~11-12 hours per game here. On a GPU box (one modern GPU,
16 cores, `num_threads=16`, more envs via `num_envs=`) expect 5-10k steps/s, i.e. ~20-40
minutes per game: an estimate from public envpool/JAX PPO reports, not measured here.
`--steps` sets the budget, `--minutes` a wall-clock limit, `GATOLAB_EXPERTS` another folder.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from gatolab.envs.base import Observation, Policy, TaskEnv, register
from gatolab.envs.common import (TrainedExpertDomain, check_action, check_observation, check_task, evaluate_policies,
                                 generate_expert_episodes, random_policy_for, require)
from gatolab.episode import Episode
from gatolab.specs import EnvSpec, FieldSpec

# The Atari-57 games (Badia et al., 2020), gymnasium id -> ale-py ROM name.
_ROMS = ("alien amidar assault asterix asteroids atlantis bank_heist battle_zone beam_rider berzerk bowling boxing "
         "breakout centipede chopper_command crazy_climber defender demon_attack double_dunk enduro fishing_derby "
         "freeway frostbite gopher gravitar hero ice_hockey jamesbond kangaroo krull kung_fu_master montezuma_revenge "
         "ms_pacman name_this_game phoenix pitfall pong private_eye qbert riverraid road_runner robotank seaquest "
         "skiing solaris space_invaders star_gunner surround tennis time_pilot tutankham up_n_down venture "
         "video_pinball wizard_of_wor yars_revenge zaxxon").split()
ATARI_GAMES: dict[str, str] = {f"ALE/{''.join(p.capitalize() for p in rom.split('_'))}-v5": rom for rom in _ROMS}

NUM_ACTIONS = 18  # ALE's full legal action set
FRAME_SKIP = 4
STICKY_ACTION_PROB = 0.25  # "-v5" default (Machado et al., 2018)
MAX_EPISODE_FRAMES = 108_000  # "-v5" default: 30 minutes of play at 60 Hz
MAX_EPISODE_STEPS = MAX_EPISODE_FRAMES // FRAME_SKIP
NOOP_MAX = 30
IMAGE_SIZE = 84  # Gato's RGB frame and the expert's grayscale frame

# The one description of the expert's input, shared by the training vector env
# (`make_vector_env`) and the TaskEnv's expert view (`DQNEmulator`): the DQN preprocessing
# (Mnih et al., 2015) as ale-py's `AtariVectorEnv` implements it.
PREPROCESSING: dict[str, Any] = dict(
    frameskip=FRAME_SKIP, repeat_action_probability=STICKY_ACTION_PROB, max_num_frames_per_episode=MAX_EPISODE_FRAMES,
    img_height=IMAGE_SIZE, img_width=IMAGE_SIZE, grayscale=True, stack_num=4, maxpool=True, noop_max=NOOP_MAX,
    use_fire_reset=True, full_action_space=True, episodic_life=False, life_loss_info=False, reward_clipping=False)

# Default training budget for `gatolab experts train` (environment steps; PPO's usual Atari budget).
TRAIN_STEPS = 10_000_000


def _ale():
    return require("ale_py", "atari", "ale-py")


def atari_spec(task: str) -> EnvSpec:
    check_task(task, list(ATARI_GAMES), "atari")
    return EnvSpec(task, {"image": FieldSpec.image(IMAGE_SIZE, IMAGE_SIZE, 3)}, {"action": FieldSpec.discrete(NUM_ACTIONS)})


# ----------------------------------------------------------------------------------
# OpenCV's INTER_AREA resize in NumPy, bit for bit
# ----------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _area_table(src: int, dst: int) -> tuple[np.ndarray, np.ndarray]:
    """(dst, K) source indices and float32 weights of OpenCV's `computeResizeAreaTab`.

    Each output pixel averages the source interval [i·s, (i+1)·s), s = src/dst; partial
    source pixels at the ends get fractional weights. Unused slots have weight 0.
    """
    scale = 1.0 / (dst / src)
    rows = []
    for d in range(dst):
        f1 = d * scale
        f2 = f1 + scale
        cell = min(scale, src - f1)
        s1, s2 = math.ceil(f1), math.floor(f2)
        s2 = min(s2, src - 1)
        s1 = min(s1, s2)
        row = []
        if s1 - f1 > 1e-3:
            row.append((s1 - 1, (s1 - f1) / cell))
        row += [(s, 1.0 / cell) for s in range(s1, s2)]
        if f2 - s2 > 1e-3:
            row.append((s2, min(min(f2 - s2, 1.0), cell) / cell))
        rows.append(row)
    k = max(map(len, rows))
    idx, w = np.zeros((dst, k), np.int64), np.zeros((dst, k), np.float32)
    for d, row in enumerate(rows):
        for j, (s, a) in enumerate(row):
            idx[d, j], w[d, j] = s, np.float32(a)
    return idx, w


def area_resize(img: np.ndarray, height: int = IMAGE_SIZE, width: int = IMAGE_SIZE) -> np.ndarray:
    """`cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)` for a uint8 (H, W) or (H, W, C) image.

    Follows OpenCV's float32 accumulation order (each source row across, then the rows
    down; round half to even), so the result equals what ale-py's vector env computes.
    """
    src = np.asarray(img, np.float32)
    squeeze = src.ndim == 2
    if squeeze:
        src = src[..., None]
    xi, xw = _area_table(src.shape[1], width)
    yi, yw = _area_table(src.shape[0], height)
    rows = np.zeros((src.shape[0], width, src.shape[2]), np.float32)
    for j in range(xi.shape[1]):  # adding a zero-weight term leaves float32 sums unchanged
        rows = rows + src[:, xi[:, j]] * xw[:, j, None]
    out = rows[yi[:, 0]] * yw[:, 0, None, None]
    for j in range(1, yi.shape[1]):
        out = out + rows[yi[:, j]] * yw[:, j, None, None]
    out = np.rint(out).clip(0, 255).astype(np.uint8)
    return out[..., 0] if squeeze else out


# ----------------------------------------------------------------------------------
# One emulator, preprocessed as ale-py's AtariVectorEnv, plus the RGB frame for Gato
# ----------------------------------------------------------------------------------
class DQNEmulator:
    """One ALE emulator stepping as ale-py's C++ `PreprocessedEnv` (src/ale/vector/preprocessed_env.cpp).

    Per step: the action for `frameskip` frames (stopping early at game over or the frame
    cap), the grayscale (and RGB) screens of the last two frames max-pooled, area-resized to
    84x84, pushed onto a 4-frame stack that starts as zeros at reset. Reset: reload the ROM
    with the seed (which also seeds sticky actions), FIRE, then a seeded number of no-ops.
    Only the no-op count's generator differs from the C++ one (NumPy's, same distribution).
    """

    def __init__(self, rom: str, *, noop_max: int = NOOP_MAX, repeat_action_probability: float = STICKY_ACTION_PROB,
                 frameskip: int = FRAME_SKIP, max_frames: int = MAX_EPISODE_FRAMES, stack: int = 4, rgb: bool = True):
        ale_py = _ale()
        ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)
        self.rom_path = ale_py.roms.get_rom_path(rom)
        self.noop_max, self.frameskip, self.max_frames, self.rgb = noop_max, frameskip, max_frames, rgb
        self.ale = ale_py.ALEInterface()
        self.ale.setFloat("repeat_action_probability", float(repeat_action_probability))
        self.ale.setInt("random_seed", 0)
        self.ale.loadROM(self.rom_path)
        self.actions = list(self.ale.getLegalActionSet())
        self._fire = ale_py.Action.FIRE if ale_py.Action.FIRE in self.actions else None
        self._noop = ale_py.Action.NOOP
        h, w = self.ale.getScreenDims()
        self._gray = [np.zeros((h, w), np.uint8) for _ in range(2)]
        self._rgb = [np.zeros((h, w, 3), np.uint8) for _ in range(2)]
        self.stack = np.zeros((stack, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
        self.image = np.zeros((IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
        self._rng = np.random.default_rng(0)
        self.elapsed_frames = 0
        self.game_over = True

    def _grab(self, i: int) -> None:
        self._gray[i] = self.ale.getScreenGrayscale()
        if self.rgb:
            self._rgb[i] = self.ale.getScreenRGB()

    def _process(self) -> None:
        # As the C++: max-pool in place into buffer 0, resize, push onto the stack.
        np.maximum(self._gray[0], self._gray[1], out=self._gray[0])
        self.stack = np.concatenate([self.stack[1:], area_resize(self._gray[0])[None]])
        if self.rgb:
            np.maximum(self._rgb[0], self._rgb[1], out=self._rgb[0])
            self.image = area_resize(self._rgb[0])

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self.ale.setInt("random_seed", int(seed))
            self.ale.loadROM(self.rom_path)
            self._rng = np.random.default_rng(int(seed))
        self.ale.reset_game()
        if self._fire is not None:
            self.ale.act(self._fire)
        noops = int(self._rng.integers(0, max(self.noop_max, 1))) - int(self._fire is not None)
        for _ in range(noops):
            self.ale.act(self._noop)
            if self.ale.game_over():
                self.ale.reset_game()
        self.stack[:] = 0
        self._grab(0)
        self._gray[1][:] = 0
        self._rgb[1][:] = 0
        self._process()
        self.elapsed_frames = 0
        self.game_over = False

    def step(self, action: int) -> tuple[float, bool, bool]:
        """(raw reward, terminated (game over), truncated (frame cap))."""
        a = self.actions[action]
        reward = 0.0
        for skip in range(self.frameskip, 0, -1):
            reward += self.ale.act(a)
            self.elapsed_frames += 1
            self.game_over = self.ale.game_over()
            if self.game_over or self.elapsed_frames >= self.max_frames:
                break
            if skip <= 2:
                self._grab(skip - 1)
        self._process()
        return reward, self.game_over, (self.elapsed_frames >= self.max_frames and not self.game_over)

    def expert_observation(self) -> np.ndarray:
        """The 4-frame stack, channels last (84, 84, 4) uint8, oldest frame first."""
        return np.ascontiguousarray(self.stack.transpose(1, 2, 0))


class AtariEnv(TaskEnv):
    """One ALE game as a gatolab `TaskEnv` (seeded: reset(seed) fixes the episode given the actions)."""

    def __init__(self, task: str, spec: EnvSpec, noop_max: int = NOOP_MAX):
        self.task, self.spec = task, spec
        self.max_steps = MAX_EPISODE_STEPS
        self.emulator = DQNEmulator(ATARI_GAMES[task], noop_max=noop_max)
        self.episode_id, self.steps = -1, 0
        self._started = self._ended = False

    def _observe(self) -> Observation:
        return check_observation(self.spec, {"image": self.emulator.image.copy()})

    def reset(self, seed: int | None = None) -> Observation:
        self.emulator.reset(seed)
        self.episode_id += 1
        self.steps = 0
        self._started, self._ended = True, False
        return self._observe()

    def step(self, action: dict[str, Any]) -> tuple[Observation, float, bool, bool, dict[str, Any]]:
        if not self._started:
            raise ValueError(f"{self.task}: step() before reset()")
        a = int(check_action(self.spec, action)["action"])
        if self._ended:
            raise RuntimeError(f"{self.task}: the episode has ended; call reset()")
        reward, terminated, truncated = self.emulator.step(a)
        self.steps += 1
        self._ended = terminated or truncated
        return self._observe(), float(reward), terminated, truncated, {"lives": int(self.emulator.ale.lives())}

    def expert_observation(self) -> np.ndarray:
        """The expert's privileged view of the same emulator: (84, 84, 4) grayscale stack."""
        return self.emulator.expert_observation()

    def render(self) -> np.ndarray | None:
        return None if not self._started else np.ascontiguousarray(self.emulator.ale.getScreenRGB(), np.uint8)


# ----------------------------------------------------------------------------------
# Training: ale-py's C++ vector env as a `HostVecEnv`
# ----------------------------------------------------------------------------------
def make_vector_env(task: str, num_envs: int, *, num_threads: int = 0, **overrides: Any):
    """ale-py's `AtariVectorEnv` with `PREPROCESSING` (overrides for tests), same-step autoreset."""
    _ale()
    from ale_py.vector_env import AtariVectorEnv

    check_task(task, list(ATARI_GAMES), "atari")
    return AtariVectorEnv(ATARI_GAMES[task], num_envs, num_threads=num_threads, autoreset_mode="SameStep",
                          **{**PREPROCESSING, **overrides})


class AtariVecEnv:
    """`HostVecEnv` (gatolab/experts/ppo.py) over `make_vector_env`.

    obs (N, 84, 84, 4) uint8; rewards clipped to their sign for learning (DQN), raw game
    scores reported in `finished_returns`; `done` also marks a lost life (the game goes on),
    so values are not bootstrapped across lives (CleanRL's EpisodicLifeEnv effect without
    cutting episodes short).
    """

    num_actions = NUM_ACTIONS
    obs_shape = (IMAGE_SIZE, IMAGE_SIZE, 4)

    def __init__(self, task: str, num_envs: int, seed: int = 0, num_threads: int = 0):
        self.num_envs, self.seed = num_envs, seed
        self.venv = make_vector_env(task, num_envs, num_threads=num_threads)
        self._returns = np.zeros(num_envs)
        self._lives = np.zeros(num_envs, np.int64)

    def reset(self) -> np.ndarray:
        obs, info = self.venv.reset(seed=self.seed)
        self._returns[:] = 0
        self._lives = np.asarray(info["lives"]).copy()
        return obs.transpose(0, 2, 3, 1)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[float]]:
        obs, reward, terminated, truncated, info = self.venv.step(np.asarray(actions, np.int32))
        ended = np.logical_or(terminated, truncated)
        lives = np.asarray(info["lives"])
        life_lost = (lives < self._lives) & ~ended
        self._returns += reward
        finished = self._returns[ended].tolist()
        self._returns[ended] = 0
        self._lives = lives.copy()
        done = (ended | life_lost).astype(np.float32)
        return obs.transpose(0, 2, 3, 1), np.sign(reward).astype(np.float32), done, finished

    def close(self) -> None:
        self.venv.close()


# ----------------------------------------------------------------------------------
# The expert
# ----------------------------------------------------------------------------------
def ppo_config(total_steps: int = TRAIN_STEPS, **overrides: Any):
    """CleanRL's PPO Atari settings (Huang et al., 2022): 8 envs x 128 steps, 4 epochs x 4
    minibatches, lr 2.5e-4 annealed, clip 0.1, entropy 0.01, Nature CNN on frames / 255."""
    from gatolab.experts.ppo import PPOConfig

    base = dict(network="cnn", num_envs=8, num_steps=128, total_steps=int(total_steps), lr=2.5e-4, clip_eps=0.1,
                ent_coef=0.01, vf_coef=0.5, update_epochs=4, num_minibatches=4, obs_scale=1 / 255)
    return PPOConfig(**{**base, **overrides})


def expert_features(env: TaskEnv, obs: Observation) -> np.ndarray:
    """The expert's input: the env's privileged DQN view (not the gatolab observation)."""
    if not hasattr(env, "expert_observation"):
        raise ValueError(f"the Atari expert needs an AtariEnv (with expert_observation()), got {type(env).__name__}")
    return env.expert_observation()


def load_atari_expert(task: str, root: str | Path | None = None, seed: int = 0, greedy: bool = False) -> Policy:
    """The trained PPO expert for `task` (FileNotFoundError naming the train command if missing)."""
    from gatolab.experts.ppo import PPOConfig, PPOPolicy
    from gatolab.experts.store import load_expert

    check_task(task, list(ATARI_GAMES), "atari")
    params, meta = load_expert(task, root)
    return PPOPolicy(params, PPOConfig.from_dict(meta["config"]), NUM_ACTIONS, expert_features, greedy=greedy, seed=seed)


def train_expert(task: str, *, steps: int | None = None, seed: int = 0, root: str | Path | None = None,
                 eval_episodes: int = 10, time_limit_s: float | None = None, num_threads: int = 0,
                 log: Callable[[str], None] | None = print, **config_overrides: Any) -> Path:
    """Trains PPO on `task` in ale-py's vector env, evaluates it through the gatolab adapter
    against the random policy on the same seeds, and saves it (gatolab.experts.store)."""
    from gatolab.experts.ppo import PPOPolicy, train_host_env
    from gatolab.experts.store import save_expert, to_numpy

    check_task(task, list(ATARI_GAMES), "atari")
    config = ppo_config(int(steps or TRAIN_STEPS), **config_overrides)
    venv = AtariVecEnv(task, config.num_envs, seed=seed, num_threads=num_threads)
    try:
        params, curve = train_host_env(venv, config, seed=seed, log=log, time_limit_s=time_limit_s)
    finally:
        venv.close()
    params = to_numpy(params)
    domain = AtariDomain()
    expert = PPOPolicy(params, config, NUM_ACTIONS, expert_features, seed=seed)
    t0 = time.perf_counter()
    evaluation = evaluate_policies(domain, task, {"expert": expert, "random": domain.random_policy(task, seed)},
                                   episodes=eval_episodes, seed=10_000)
    evaluation["seconds"] = round(time.perf_counter() - t0, 1)
    if log:
        log(f"{task}: expert {evaluation['expert_return_mean']:.2f} vs random {evaluation['random_return_mean']:.2f} "
            f"over {eval_episodes} episodes (through the gatolab adapter)")
    return save_expert(task, params, domain="atari", algo="ppo", config=config.to_dict(), curve=curve,
                       evaluation=evaluation, root=root)


class AtariDomain(TrainedExpertDomain):
    """ALE Atari games, RGB 84x84 frames and the full 18-action set (see the module docstring)."""

    name = "atari"
    kind = "control"

    def tasks(self) -> list[str]:
        return list(ATARI_GAMES)

    def spec(self, task: str) -> EnvSpec:
        return atari_spec(task)

    def make(self, task: str, seed: int = 0, render: bool = False) -> TaskEnv:
        return AtariEnv(task, self.spec(task))

    def expert(self, task: str) -> Policy:
        return load_atari_expert(task)

    def random_policy(self, task: str, seed: int = 0) -> Policy:
        return random_policy_for(self.spec(task), seed)

    def defines_success(self, task: str) -> bool:
        return False  # game scores, no goals

    def generate(self, task: str, num_episodes: int, seed: int = 0) -> Iterator[Episode]:
        check_task(task, self.tasks(), self.name)
        return generate_expert_episodes(self, task, num_episodes, seed, expert_name="PPO", defines_success=False)


register("atari", AtariDomain)

__all__ = ["ATARI_GAMES", "AtariDomain", "AtariEnv", "AtariVecEnv", "DQNEmulator", "PREPROCESSING", "area_resize",
           "atari_spec", "load_atari_expert", "make_vector_env", "train_expert"]
