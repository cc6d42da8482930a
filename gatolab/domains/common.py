"""Building blocks for domain adapters: optional imports, action/observation checks, a
gymnasium-backed `TaskEnv`, and the base of domains whose experts are trained RL agents.

The checks here are the domains' side of "bad input raises a clear ValueError": an
action with the wrong fields, shape, dtype or range, or an observation with NaN,
never reaches (or leaves) the real environment silently.
"""

from __future__ import annotations

import importlib
import math
import os
import subprocess
import sys
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import numpy as np

from gatolab.domains.base import Action, Domain, Observation, TaskEnv, check_task
from gatolab.experts import store
from gatolab.specs import EnvSpec, Modality


def require(module: str, domain: str, package: str | None = None) -> ModuleType:
    """Imports `module` for `domain`, or raises an ImportError naming the missing package.

    Domain modules call this lazily (when a task is made, not when the module is
    imported), so listing domains works on machines without the optional simulators.
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        pkg = package or module.split(".")[0]
        raise ImportError(
            f"domain {domain!r} needs the package {pkg!r} (import of {module!r} failed: {e}); "
            f"install it with `pip install 'gatolab[envs]'`"
        ) from e


def check_action(spec: EnvSpec, action: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Validates an action dict against `spec.action`; returns it as arrays.

    Raises:
      ValueError: naming the field, for a missing or unknown field, a wrong shape,
        a non-integer discrete value, NaN/inf, or a value outside the declared range.
    """
    if not isinstance(action, Mapping):
        raise ValueError(f"{spec.name}: an action must be a dict of fields {sorted(spec.action)}, got {type(action).__name__}")
    unknown = sorted(set(action) - set(spec.action))
    missing = sorted(set(spec.action) - set(action))
    if unknown:
        raise ValueError(f"{spec.name}: action field {unknown[0]!r} is not in the spec (expected fields: {sorted(spec.action)})")
    if missing:
        raise ValueError(f"{spec.name}: action field {missing[0]!r} is missing (expected fields: {sorted(spec.action)})")
    out: dict[str, np.ndarray] = {}
    for key, f in spec.action.items():
        x = np.asarray(action[key])
        if x.shape != f.shape:
            raise ValueError(f"{spec.name}: action field {key!r} must have shape {f.shape}, got {x.shape}")
        if x.dtype.kind not in "biuf":
            raise ValueError(f"{spec.name}: action field {key!r} must be numeric, got dtype {x.dtype}")
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{spec.name}: action field {key!r} contains NaN or inf: {x}")
        if f.modality == Modality.DISCRETE:
            if x.dtype.kind == "f" and not np.all(x == np.round(x)):
                raise ValueError(f"{spec.name}: action field {key!r} is discrete; got non-integer {x}")
            x = x.astype(np.int64)
            if np.any(x < 0) or np.any(x >= f.num_values):
                raise ValueError(f"{spec.name}: action field {key!r} must lie in [0, {f.num_values}), got {x}")
        else:
            x = x.astype(np.float32)
            if np.any(x < f.low) or np.any(x > f.high):
                raise ValueError(f"{spec.name}: action field {key!r} must lie in [{f.low}, {f.high}], got {x}")
        out[key] = x
    return out


def check_observation(spec: EnvSpec, obs: Mapping[str, Any]) -> Observation:
    """Raises ValueError naming the field if a numeric observation holds NaN or inf."""
    for key, f in spec.observation.items():
        if key not in obs:
            raise ValueError(f"{spec.name}: observation field {key!r} is missing (got {sorted(obs)})")
        if f.modality in (Modality.CONTINUOUS, Modality.DISCRETE):
            x = np.asarray(obs[key])
            if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
                raise ValueError(f"{spec.name}: observation field {key!r} contains NaN or inf: {x}")
            if x.shape != f.shape:
                raise ValueError(f"{spec.name}: observation field {key!r} has shape {x.shape}, the spec says {f.shape}")
    return dict(obs)


def bounds_of(space: Any) -> tuple[float, float]:
    """The loosest scalar (low, high) covering a gymnasium Box (FieldSpec bounds are scalar)."""
    low, high = float(np.min(space.low)), float(np.max(space.high))
    return (-math.inf if not np.isfinite(low) else low), (math.inf if not np.isfinite(high) else high)


class TrainedExpertDomain(Domain):
    """A domain whose experts are trained RL agents from the experts store (gatolab/experts/store.py).

    `experts_root` None means `gatolab.experts.store.experts_root()`; `expert_task(task)` names
    the task whose expert acts in `task` (itself, unless the domain says otherwise).
    """

    experts_root: str | None = None

    def expert_task(self, task: str) -> str:
        return task

    def expert_record(self, task: str) -> dict[str, Any]:
        check_task(task, self.tasks(), self.name)
        return store.expert_record(self.expert_task(task), self.experts_root)

    def trained_tasks(self) -> list[str]:
        """The tasks whose expert is in the experts store: those `generate` can run."""
        return [t for t in self.tasks() if store.has_expert(self.expert_task(t), self.experts_root)]


class GymTaskEnv(TaskEnv):
    """A `TaskEnv` over one gymnasium environment.

    Subclasses say how a raw gymnasium observation becomes the flat observation dict
    (`observe`), how a checked action dict becomes the gymnasium action
    (`to_env_action`), and optionally what counts as success (`success`).
    """

    def __init__(self, env: Any, spec: EnvSpec, task: str, max_steps: int):
        self.env = env
        self.spec = spec
        self.task = task
        self.max_steps = int(max_steps)
        self.episode_id = -1  # incremented by reset(); experts use it to notice a new episode
        self.steps = 0

    # --- subclass hooks -----------------------------------------------------------
    def observe(self, raw_obs: Any) -> Observation:
        raise NotImplementedError

    def to_env_action(self, action: dict[str, np.ndarray]) -> Any:
        raise NotImplementedError

    def success(self, reward: float, terminated: bool, truncated: bool, info: dict[str, Any]) -> bool | None:
        """Success of the step just taken, or None where the task defines no success."""
        return None

    # --- TaskEnv ------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> Observation:
        raw, _ = self.env.reset(seed=seed)
        self.episode_id += 1
        self.steps = 0
        self.last_raw_obs = raw
        return check_observation(self.spec, self.observe(raw))

    def step(self, action: Action) -> tuple[Observation, float, bool, bool, dict[str, Any]]:
        checked = check_action(self.spec, action)
        raw, reward, terminated, truncated, info = self.env.step(self.to_env_action(checked))
        self.steps += 1
        self.last_raw_obs = raw
        info = dict(info)
        ok = self.success(float(reward), bool(terminated), bool(truncated), info)
        if ok is not None:
            info["success"] = bool(ok)
        return check_observation(self.spec, self.observe(raw)), float(reward), bool(terminated), bool(truncated), info

    def render(self) -> np.ndarray | None:
        frame = self.env.render()
        return None if frame is None else np.ascontiguousarray(frame, dtype=np.uint8)

    def close(self) -> None:
        self.env.close()


# ----------------------------------------------------------------------------------
# pygame/SDL rendering (classic control)
# ----------------------------------------------------------------------------------
def quiet_sdl() -> None:
    """Keeps SDL (pygame) from probing audio and display devices an offscreen renderer never uses.

    gymnasium's classic-control envs draw their rgb_array frames on a pygame Surface, but
    first call `pygame.init()`, which starts every SDL subsystem: on a headless machine
    the audio start prints ALSA's "ALSA lib ... cannot find card '0'" lines and the video
    start (probing Wayland) prints "error: XDG_RUNTIME_DIR is invalid or not set", straight
    to the process's stderr (notebook cells show them as red blocks). Our adapters render
    offscreen only, so: SDL_AUDIODRIVER=dummy (no environment here plays sound) and, where
    no display exists at all (neither DISPLAY nor WAYLAND_DISPLAY), SDL_VIDEODRIVER=dummy.
    Values already set win (`setdefault`). Must run before `pygame.init()`; it sets
    os.environ, so worker processes inherit it.
    """
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")


# ----------------------------------------------------------------------------------
# MuJoCo rendering (Meta-World, DM Control)
# ----------------------------------------------------------------------------------
_GL_PROBE = "import mujoco; c = mujoco.GLContext(16, 16); c.make_current(); c.free()"


def choose_mujoco_gl() -> str:
    """Picks a working headless OpenGL backend for MuJoCo unless MUJOCO_GL is already set.

    Must run before `mujoco` is first imported: it reads MUJOCO_GL at import, and a
    backend whose library is missing breaks `import mujoco` itself, not only
    rendering. So each candidate is tried in a subprocess (~0.3 s) that makes a GL
    context: EGL first (GPU or Mesa's software EGL; 90 ms per 128x128 frame on a
    2-core CPU machine), then OSMesa (116 ms). The choice goes into os.environ, so
    worker processes inherit it without probing again. If neither works, MUJOCO_GL
    stays unset: simulation works, rendering raises MuJoCo's own error.
    """
    if "MUJOCO_GL" not in os.environ:
        for backend in ("egl", "osmesa"):
            env = {**os.environ, "MUJOCO_GL": backend, "PYOPENGL_PLATFORM": backend}
            try:
                ok = subprocess.run([sys.executable, "-c", _GL_PROBE], env=env, capture_output=True, timeout=60).returncode == 0
            except (OSError, subprocess.TimeoutExpired):
                ok = False
            if ok:
                os.environ["MUJOCO_GL"] = backend
                break
    if os.environ.get("MUJOCO_GL") in ("egl", "osmesa"):
        os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
    return os.environ.get("MUJOCO_GL", "")
