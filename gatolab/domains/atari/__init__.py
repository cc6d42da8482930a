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

Files: `emulator.py` (the preprocessed emulator, OpenCV's area resize), `env.py` (the
`TaskEnv`), `expert.py` (loading the PPO actors), `recipe.py` (training them).
"""

from __future__ import annotations

from gatolab.domains.atari.emulator import ATARI_GAMES
from gatolab.domains.atari.env import AtariEnv, atari_spec
from gatolab.domains.base import Policy, TaskEnv, check_task
from gatolab.domains.common import TrainedExpertDomain
from gatolab.domains.registry import DomainEntry
from gatolab.specs import EnvSpec


class AtariDomain(TrainedExpertDomain):
    """ALE Atari games, RGB 84x84 frames and the full 18-action set (see the module docstring)."""

    name = "atari"
    kind = "control"
    packages = ("ale-py",)

    def tasks(self) -> list[str]:
        return list(ATARI_GAMES)

    def spec(self, task: str) -> EnvSpec:
        return atari_spec(task)

    def make(self, task: str, seed: int = 0, render: bool = False) -> TaskEnv:
        return AtariEnv(task, self.spec(task))

    def expert(self, task: str) -> Policy:
        from gatolab.domains.atari.expert import load_expert  # PPO acts through JAX: load it only to act

        check_task(task, self.tasks(), self.name)
        return load_expert(task, self.experts_root)

    def defines_success(self, task: str) -> bool:
        return False  # game scores, no goals


ENTRY = DomainEntry(
    name="atari",
    factory=AtariDomain,
    weights={"atari": 9.5},  # Table 1: ALE Atari (51 games in Gato; gatolab offers the Atari-57)
    notes={
        "what": "ALE Atari 2600 games (Bellemare et al., 2013) through ale-py as 'ALE/<Game>-v5' (frame skip 4, sticky actions "
                "0.25, 108k-frame cap, FIRE + 0-29 no-ops at reset; raw game score): the RGB screen max-pooled over the last two "
                "frames and area-resized to 84x84 (36 patch tokens after padding to 96), ALE's full 18-action set in every game. "
                "The Atari-57 set is offered (Gato Table 1: 51 ALE Atari games, 63.4K episodes, weight 9.5%).",
        "expert": "PPO trained by gatolab (gatolab/experts/ppo.py; CleanRL's Atari settings, 8 envs x 128 steps) with the Nature "
                  "CNN on the DQN view (84x84 grayscale, 4-frame stack, max-pooled) from ale-py's C++ AtariVectorEnv; the TaskEnv "
                  "computes the same view from its own emulator bit for bit. Actions sampled from the policy. Only games with a "
                  "folder in experts/ have one (committed: ALE/Breakout-v5, a 14-minute CPU run, 207K steps: a weak expert).",
        "licence": "ale-py and its bundled ROMs: GPL-2.0 (the Atari 2600 game ROMs remain their publishers' works). The experts "
                   "and generated data: Apache-2.0 (gatolab).",
        "use": "Pixel-based discrete control with Gato's Atari observation/action format; pretraining and evaluation against "
               "the PPO expert and random play.",
        "limits": "CPU-trained experts far below published PPO (Breakout ~5 vs ~400 after 10M steps); one seed; no expert for "
                  "56 of the 57 games; episodes can be long (up to 27,000 steps).",
    },
    owns=lambda task: task in ATARI_GAMES,  # gymnasium ids, "ALE/<Game>-v5"
    train_expert="gatolab.domains.atari.recipe:train_expert",
)
