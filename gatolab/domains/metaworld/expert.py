"""Meta-World's scripted policies (`metaworld.policies`) as gatolab experts."""

from __future__ import annotations

import warnings

import numpy as np

from gatolab.domains.base import TaskEnv
from gatolab.domains.metaworld.env import load_metaworld

# Scripted-expert success rate per task (success at any step of a 500-step episode),
# measured by `benchmarks/measure_experts.py --domains metaworld` over 20 seeded
# episodes per task (metaworld 3.1.1, mujoco 3.3.0). 49/50 tasks >= 90%; the random
# policy is at 0% on 44 tasks (drawer-close 45%, handle-press 50% are the outliers).
EXPERT_SUCCESS: dict[str, float] = {
    "assembly-v3": 1.00, "basketball-v3": 1.00, "bin-picking-v3": 1.00, "box-close-v3": 0.90,
    "button-press-topdown-v3": 1.00, "button-press-topdown-wall-v3": 1.00, "button-press-v3": 1.00,
    "button-press-wall-v3": 1.00, "coffee-button-v3": 1.00, "coffee-pull-v3": 1.00, "coffee-push-v3": 1.00,
    "dial-turn-v3": 1.00, "disassemble-v3": 0.95, "door-close-v3": 1.00, "door-lock-v3": 1.00, "door-open-v3": 0.95,
    "door-unlock-v3": 1.00, "drawer-close-v3": 1.00, "drawer-open-v3": 1.00, "faucet-close-v3": 1.00,
    "faucet-open-v3": 1.00, "hammer-v3": 1.00, "hand-insert-v3": 1.00, "handle-press-side-v3": 1.00,
    "handle-press-v3": 1.00, "handle-pull-side-v3": 1.00, "handle-pull-v3": 1.00, "lever-pull-v3": 1.00,
    "peg-insert-side-v3": 0.95, "peg-unplug-side-v3": 0.95, "pick-out-of-hole-v3": 1.00, "pick-place-v3": 1.00,
    "pick-place-wall-v3": 1.00, "plate-slide-back-side-v3": 1.00, "plate-slide-back-v3": 1.00,
    "plate-slide-side-v3": 1.00, "plate-slide-v3": 1.00, "push-back-v3": 0.95, "push-v3": 1.00, "push-wall-v3": 1.00,
    "reach-v3": 1.00, "reach-wall-v3": 1.00, "shelf-place-v3": 1.00, "soccer-v3": 0.90, "stick-pull-v3": 0.75,
    "stick-push-v3": 1.00, "sweep-into-v3": 0.95, "sweep-v3": 1.00, "window-close-v3": 1.00, "window-open-v3": 1.00,
}


class MetaWorldExpert:
    """metaworld's scripted policy for one task, on the raw float64 observation.

    It reads the unrounded observation (`env.last_raw_obs`) so that the gatolab
    float32 copy does not perturb it; its action is clipped to [-1, 1], which is what
    the environment applies anyway (`set_xyz_action` clips), so the logged action is
    the executed one.
    """

    def __init__(self, task: str):
        _, policies, _ = load_metaworld()
        self.task = task
        self.policy = policies.ENV_POLICY_MAP[task]()
        # The scripted policies warn on every large proportional gain; the clip below is the answer.
        warnings.filterwarnings("ignore", message=r"Constant\(s\) may be too high")

    @property
    def name(self) -> str:
        """What episode metadata calls this expert: the scripted policy's class (e.g. SawyerReachV3Policy)."""
        return type(self.policy).__name__

    def __call__(self, env: TaskEnv, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raw = getattr(env, "last_raw_obs", None)
        raw = np.asarray(obs["state"], np.float64) if raw is None else raw
        return {"action": np.clip(self.policy.get_action(raw), -1.0, 1.0).astype(np.float32)}


