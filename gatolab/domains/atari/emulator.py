"""One ALE emulator preprocessed as ale-py's `AtariVectorEnv` does, and OpenCV's area resize in NumPy.

The one description of the expert's input (`PREPROCESSING`) is shared by the training
vector env (`recipe.make_vector_env`) and the `TaskEnv`'s expert view (`DQNEmulator`).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from gatolab.domains.common import require

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

def require_ale():
    return require("ale_py", "atari", "ale-py")


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
        ale_py = require_ale()
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


