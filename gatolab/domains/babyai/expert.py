"""minigrid's `BabyAIBot` as the BabyAI expert, under a deterministic call budget."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from gatolab.domains.babyai.env import BabyAITaskEnv
from gatolab.domains.base import ExpertError, TaskEnv
from gatolab.domains.common import require

REPLAN_CALL_BUDGET = 1_000_000


class BotError(ExpertError):
    """`BabyAIBot.replan()` failed: it raised (e.g. an AssertionError on KeyInBox)."""


class BotTimeout(BotError):
    """`BabyAIBot.replan()` went over its call budget (it loops forever on some levels)."""


def _call_with_budget(fn, budget: int):
    """Runs fn() but raises BotTimeout after `budget` Python function calls.

    A profile hook sees every call; counting them bounds the work deterministically.
    Costs ~35% of the bot's speed (measured on GoToLocal), cheap next to stalling.
    """
    count = 0
    previous = sys.getprofile()

    def hook(frame, event, arg):
        nonlocal count
        if event == "call":
            count += 1
            if count > budget:
                raise BotTimeout(f"BabyAIBot.replan() made more than {budget} calls")

    sys.setprofile(hook)
    try:
        return fn()
    finally:
        sys.setprofile(previous)


class BabyAIExpert:
    """minigrid's BabyAIBot as a `Policy`: a fresh bot per episode, replan every step.

    We always execute the bot's suggestion, so `replan()` is called without
    `action_taken` (the bot then assumes its own suggestion was taken).
    """

    def __init__(self, call_budget: int = REPLAN_CALL_BUDGET):
        self.call_budget = call_budget
        self._bot = None
        self._episode: tuple[int, int] | None = None

    def __call__(self, env: TaskEnv, obs: dict[str, Any]) -> dict[str, np.ndarray]:
        if not isinstance(env, BabyAITaskEnv):
            raise ValueError(f"BabyAIExpert needs a BabyAITaskEnv, got {type(env).__name__}")
        key = (id(env), env.episode_id)
        if self._episode != key:
            bot_module = require("minigrid.utils.baby_ai_bot", "babyai", "minigrid")
            self._bot = bot_module.BabyAIBot(env.env)
            self._episode = key
        try:
            action = _call_with_budget(self._bot.replan, self.call_budget)
        except BotTimeout:
            raise
        except Exception as e:  # the bot's own asserts / DisappearedBoxError: it cannot go on
            raise BotError(f"{env.task}: BabyAIBot.replan() raised {type(e).__name__}: {e}") from e
        return {"action": np.asarray(int(action), np.int64)}


