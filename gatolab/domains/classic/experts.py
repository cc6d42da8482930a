"""Analytic experts for classic control, one few-line controller per task.

Classes (not closures) so they pickle into worker processes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from gatolab.domains.base import Policy, TaskEnv

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


EXPERTS: dict[str, Callable[[], Policy]] = {
    "CartPole-v1": CartPoleExpert,
    "Acrobot-v1": AcrobotExpert,
    "MountainCar-v0": MountainCarExpert,
    "MountainCarContinuous-v0": lambda: MountainCarExpert(continuous=True),
    "Pendulum-v1": PendulumExpert,
}


def expert_for(task: str) -> Policy:
    return EXPERTS[task]()
