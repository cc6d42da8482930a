"""Classic control (gymnasium): CartPole, Acrobot, MountainCar, Pendulum.

Not in Gato's Table 1 (GATO_SPEC §8); gatolab adds them as the cheapest real control
tasks for CPU-sized experiments and CI. Each task has a few-line analytic expert:

| task | expert | success |
|---|---|---|
| CartPole-v1 | linear state feedback (push towards where the pole is falling) | survives to the 500-step limit |
| Acrobot-v1 | torque = sign(joint-2 velocity) (pumps energy into the swing) | tip reaches the line (terminated) |
| MountainCar-v0 | push in the direction of motion (pumps energy) | reaches the flag (terminated) |
| MountainCarContinuous-v0 | the same, with force ±1 | reaches the flag (terminated) |
| Pendulum-v1 | energy-shaping swing-up, then PD control near the top | none defined (return only) |

Fields: observation "state" (CONTINUOUS, the gymnasium vector; mu-law applies because
the declared bounds exceed [-1, 1], Gato §2.1), action "action" (DISCRETE for
discrete-action tasks, CONTINUOUS with the gymnasium bounds otherwise).

[open] (GATO_SPEC §1) Pendulum's torque lives in [-2, 2]; we keep the environment's
own units, so the tokenizer mu-law encodes it (the paper: mu-law "if not already in
[-1, 1]") rather than rescaling it into [-1, 1] in the adapter.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np

from gatolab.envs.base import Domain, Policy, TaskEnv, register
from gatolab.envs.common import GymTaskEnv, bounds_of, check_task, generate_expert_episodes, random_policy_for, require
from gatolab.episode import Episode
from gatolab.specs import EnvSpec, FieldSpec

# task -> (kind of action, success rule). Success rules: "survive" (no termination
# before the time limit), "terminate" (the environment's goal termination), None.
CLASSIC_TASKS: dict[str, tuple[str, str | None]] = {
    "CartPole-v1": ("discrete", "survive"),
    "Acrobot-v1": ("discrete", "terminate"),
    "MountainCar-v0": ("discrete", "terminate"),
    "MountainCarContinuous-v0": ("continuous", "terminate"),
    "Pendulum-v1": ("continuous", None),
}


def _gym():
    return require("gymnasium", "classic")


def classic_spec(task: str) -> EnvSpec:
    """The EnvSpec of a classic-control task, read off the gymnasium spaces."""
    check_task(task, list(CLASSIC_TASKS), "classic")
    gym = _gym()
    env = gym.make(task)
    try:
        obs_space, act_space = env.observation_space, env.action_space
        low, high = bounds_of(obs_space)
        observation = {"state": FieldSpec.continuous(obs_space.shape, low, high)}
        if CLASSIC_TASKS[task][0] == "discrete":
            action = {"action": FieldSpec.discrete(int(act_space.n))}
        else:
            a_low, a_high = bounds_of(act_space)
            action = {"action": FieldSpec.continuous(act_space.shape, a_low, a_high)}
    finally:
        env.close()
    return EnvSpec(task, observation, action)


class ClassicTaskEnv(GymTaskEnv):
    def __init__(self, task: str, spec: EnvSpec, render: bool = False):
        gym = _gym()
        env = gym.make(task, render_mode="rgb_array" if render else None)
        super().__init__(env, spec, task, env.spec.max_episode_steps)
        self._success_rule = CLASSIC_TASKS[task][1]
        self._discrete = CLASSIC_TASKS[task][0] == "discrete"

    def observe(self, raw_obs: Any) -> dict[str, np.ndarray]:
        return {"state": np.asarray(raw_obs, np.float32)}

    def to_env_action(self, action: dict[str, np.ndarray]) -> Any:
        a = action["action"]
        return int(a) if self._discrete else a.astype(np.float32)

    def success(self, reward: float, terminated: bool, truncated: bool, info: dict[str, Any]) -> bool | None:
        if self._success_rule == "terminate":
            return terminated
        if self._success_rule == "survive":
            return truncated and not terminated
        return None


# ----------------------------------------------------------------------------------
# Analytic experts. Classes (not closures) so they pickle into worker processes.
# ----------------------------------------------------------------------------------
@dataclasses.dataclass
class CartPoleExpert:
    """Push the cart the way the pole is falling: sign(k · [x, x', θ, θ']).

    The pole-angle gains dominate (balance); the small cart gains stop the cart
    drifting off the track. Keeps the pole up for the full 500 steps from every
    initial state we tried (benchmarks/measure_experts.py).
    """

    gains: tuple[float, float, float, float] = (0.1, 0.5, 10.0, 2.0)

    def __call__(self, env: TaskEnv, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"action": np.asarray(int(np.dot(self.gains, obs["state"]) > 0), np.int64)}


@dataclasses.dataclass
class AcrobotExpert:
    """Torque in the direction the second joint already moves: pumps energy each swing."""

    def __call__(self, env: TaskEnv, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        dtheta2 = obs["state"][5]
        return {"action": np.asarray(2 if dtheta2 > 0 else 0, np.int64)}  # actions: torque -1, 0, +1


@dataclasses.dataclass
class MountainCarExpert:
    """Push in the direction of the velocity: every swing climbs higher (energy pumping)."""

    continuous: bool = False

    def __call__(self, env: TaskEnv, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        forward = obs["state"][1] >= 0
        if self.continuous:
            return {"action": np.asarray([1.0 if forward else -1.0], np.float32)}
        return {"action": np.asarray(2 if forward else 0, np.int64)}  # actions: left, none, right


@dataclasses.dataclass
class PendulumExpert:
    """Energy-shaping swing-up, then a PD controller once the pole is near upright.

    Gymnasium's pendulum is a rod (I = m l² / 3, m = l = 1, g = 10), so its energy
    relative to upright is E = θ'² / 6 + 5 (cos θ - 1); below the top we push along θ'
    while E < 0, and above cos θ > `catch` we stabilise with u = -kp θ - kd θ'.
    """

    kp: float = 10.0
    kd: float = 1.5
    catch: float = 0.9
    k_energy: float = 10.0
    max_torque: float = 2.0

    def __call__(self, env: TaskEnv, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        cos, sin, dtheta = (float(v) for v in obs["state"])
        theta = np.arctan2(sin, cos)
        if cos > self.catch:
            u = -self.kp * theta - self.kd * dtheta
        elif abs(dtheta) > 0.05:
            energy = dtheta**2 / 6 + 5 * (cos - 1)
            u = self.k_energy * (-energy) * np.sign(dtheta)
        else:
            u = self.max_torque  # at rest at the bottom: kick it
        return {"action": np.asarray([np.clip(u, -self.max_torque, self.max_torque)], np.float32)}


_EXPERTS = {
    "CartPole-v1": CartPoleExpert,
    "Acrobot-v1": AcrobotExpert,
    "MountainCar-v0": MountainCarExpert,
    "MountainCarContinuous-v0": lambda: MountainCarExpert(continuous=True),
    "Pendulum-v1": PendulumExpert,
}


class ClassicDomain(Domain):
    """Gymnasium classic control with analytic experts (see the module docstring)."""

    name = "classic"
    kind = "control"

    def __init__(self):
        self._specs: dict[str, EnvSpec] = {}

    def tasks(self) -> list[str]:
        return list(CLASSIC_TASKS)

    def spec(self, task: str) -> EnvSpec:
        check_task(task, self.tasks(), self.name)
        if task not in self._specs:
            self._specs[task] = classic_spec(task)
        return self._specs[task]

    def make(self, task: str, seed: int = 0, render: bool = False) -> TaskEnv:
        return ClassicTaskEnv(task, self.spec(task), render=render)

    def expert(self, task: str) -> Policy:
        check_task(task, self.tasks(), self.name)
        return _EXPERTS[task]()

    def random_policy(self, task: str, seed: int = 0) -> Policy:
        return random_policy_for(self.spec(task), seed)

    def defines_success(self, task: str) -> bool:
        """False for tasks with no success criterion (Pendulum): judge those by return."""
        check_task(task, self.tasks(), self.name)
        return CLASSIC_TASKS[task][1] is not None

    def generate(self, task: str, num_episodes: int, seed: int = 0) -> Iterator[Episode]:
        """Expert episodes, seeds seed + i; metadata names the expert, and has no
        "success" entry where the task defines none."""
        check_task(task, self.tasks(), self.name)
        return generate_expert_episodes(self, task, num_episodes, seed, expert_name=type(self.expert(task)).__name__,
                                        defines_success=self.defines_success(task))


register("classic", ClassicDomain)
