"""Soft Actor-Critic (Haarnoja et al. 2018) in plain JAX + optax: experts for continuous control.

Used for the DM Control Suite experts (gatolab/domains/dmc/recipe.py); small enough to read in one go:

- actor: MLP (2 x 256, ReLU) -> mean and log-std of a Gaussian, squashed by tanh into
  [-1, 1]; log-std is mapped smoothly into [LOG_STD_MIN, LOG_STD_MAX] (as in pytorch_sac);
- twin Q critics (MLP 2 x 256 on [state, action]) with target copies updated by Polyak
  averaging (tau), the target uses the smaller of the two (clipped double Q);
- the entropy temperature alpha is learnt towards a target entropy of -|A|;
- a NumPy replay buffer; `config.random_steps` uniform-random actions first; then one
  gradient update per environment step. Updates run in chunks: every `chunk` env steps,
  one jitted `lax.scan` performs `chunk` updates on batches drawn beforehand, so Python
  dispatch is paid once per chunk (the acting policy lags by < `chunk` updates).

Parameters are plain nested dicts/lists of arrays ({"actor": [{"w", "b"}, ...], "q1": ...}),
which gatolab.experts.store saves as they are. The saved expert keeps the actor only.

Acting (`SACPolicy`) is a NumPy forward pass of the actor's deterministic action
tanh(mean): no JAX needed, picklable for worker processes.

The expert kept is the actor snapshot with the best evaluation return on the curve
(`keep_best`, evaluation episodes on seeds 10_000 + k). `train_sac` takes an environment
factory and knows no domain; a domain's recipe measures the result against random and
stores it (`gatolab.experts.store`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from gatolab.domains.base import TaskEnv, episode_returns
from gatolab.experts import store
from gatolab.specs import EnvSpec

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0
EVAL_SEED_BASE = 10_000  # seeds of the evaluation episodes on the training curve
FINAL_EVAL_EPISODES = 10  # episodes a recipe measures the stored expert (and random) on


@dataclasses.dataclass(frozen=True)
class SACConfig:
    """SAC hyperparameters (defaults: the SAC paper's, with pytorch_sac's init temperature 0.1)."""

    hidden: tuple[int, ...] = (256, 256)
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    alpha_lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    batch_size: int = 256
    init_alpha: float = 0.1
    random_steps: int = 5000
    buffer_size: int = 1_000_000
    chunk: int = 50  # env steps between jitted update calls (= updates per call)
    eval_episodes: int = 2  # episodes per point of the training curve
    keep_best: bool = True

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        return d


# ----------------------------------------------------------------------------------
# Networks as plain functions over {"w", "b"} lists (shared by JAX and NumPy).
# ----------------------------------------------------------------------------------
def _init_mlp(rng: np.random.Generator, sizes: list[int]) -> list[dict[str, np.ndarray]]:
    """Kaiming-uniform-ish init (PyTorch's default Linear init), float32."""
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        bound = 1.0 / math.sqrt(n_in)
        layers.append({"w": rng.uniform(-bound, bound, (n_in, n_out)).astype(np.float32),
                       "b": rng.uniform(-bound, bound, (n_out,)).astype(np.float32)})
    return layers


def _mlp(xp, layers, x):
    for layer in layers[:-1]:
        x = xp.maximum(x @ layer["w"] + layer["b"], 0.0)
    return x @ layers[-1]["w"] + layers[-1]["b"]


def _actor_head(xp, layers, obs):
    """(mean, log_std) of the pre-tanh Gaussian."""
    out = _mlp(xp, layers, obs)
    mean, raw = out[..., : out.shape[-1] // 2], out[..., out.shape[-1] // 2:]
    log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (xp.tanh(raw) + 1.0)
    return mean, log_std


def init_params(obs_dim: int, act_dim: int, config: SACConfig, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    h = list(config.hidden)
    q1, q2 = _init_mlp(rng, [obs_dim + act_dim, *h, 1]), _init_mlp(rng, [obs_dim + act_dim, *h, 1])
    copy = lambda tree: [{k: v.copy() for k, v in layer.items()} for layer in tree]  # noqa: E731
    return {"actor": _init_mlp(rng, [obs_dim, *h, 2 * act_dim]), "q1": q1, "q2": q2, "q1_target": copy(q1),
            "q2_target": copy(q2), "log_alpha": np.asarray(math.log(config.init_alpha), np.float32)}


# ----------------------------------------------------------------------------------
# The policy (NumPy): what the stored expert is.
# ----------------------------------------------------------------------------------
class SACPolicy:
    """The deterministic SAC actor, tanh(mean(state)), as a gatolab policy `(env, obs) -> action`.

    Reads `obs["state"]`, or, on a pixel task, the privileged state from
    `env.state_observation()` (DMCTaskEnv). Picklable (plain arrays).

    Args:
      params: {"actor": [{"w", "b"}, ...]} (extra entries are ignored).
      config: needs "obs_dim" and "act_dim" (as saved by `train_expert`).
    """

    def __init__(self, params: dict[str, Any], config: dict[str, Any]):
        if not isinstance(params, dict) or "actor" not in params:
            raise ValueError(f"SACPolicy: params need an 'actor' entry, got {type(params).__name__} "
                             f"with keys {sorted(params) if isinstance(params, dict) else '-'}")
        self.obs_dim, self.act_dim = int(config["obs_dim"]), int(config["act_dim"])
        self.actor = [{"w": np.asarray(layer["w"], np.float32), "b": np.asarray(layer["b"], np.float32)}
                      for layer in params["actor"]]
        if not self.actor:
            raise ValueError("SACPolicy: the actor has no layers")
        sizes = [self.actor[0]["w"].shape[0]] + [layer["w"].shape[1] for layer in self.actor]
        for a, b in zip(self.actor[:-1], self.actor[1:]):
            if a["w"].shape[1] != b["w"].shape[0]:
                raise ValueError(f"SACPolicy: actor layer shapes do not chain: {[l['w'].shape for l in self.actor]}")
        if sizes[0] != self.obs_dim or sizes[-1] != 2 * self.act_dim:
            raise ValueError(f"SACPolicy: actor maps {sizes[0]} -> {sizes[-1]} values, config says obs_dim "
                             f"{self.obs_dim}, act_dim {self.act_dim} (needs {self.obs_dim} -> {2 * self.act_dim})")

    def act(self, state: np.ndarray) -> np.ndarray:
        state = np.asarray(state, np.float32)
        if state.shape != (self.obs_dim,):
            raise ValueError(f"SACPolicy: state must have shape ({self.obs_dim},), got {state.shape}")
        mean, _ = _actor_head(np, self.actor, state)
        return np.tanh(mean).astype(np.float32)

    def __call__(self, env: Any, obs: dict[str, Any]) -> dict[str, np.ndarray]:
        state = obs["state"] if "state" in obs else env.state_observation()
        return {"action": self.act(state)}


def load_sac_policy(task: str, root: str | None = None, spec: Any | None = None) -> SACPolicy:
    """The stored SAC expert of `task` (gatolab.experts.store), checked against `spec`.

    Raises:
      FileNotFoundError: none trained (the message says how to train one).
      ValueError: corrupt files (from the store), not a SAC expert, or sizes that do not fit `spec`.
    """
    params, meta = store.load_expert(task, root)
    where = store.expert_path(task, root)
    if meta.get("algo") != "sac":
        raise ValueError(f"expert {where} is a {meta.get('algo')!r} expert, not 'sac'")
    config = meta.get("config", {})
    if "obs_dim" not in config or "act_dim" not in config:
        raise ValueError(f"expert {where}: its config lacks obs_dim/act_dim: {sorted(config)}")
    try:
        policy = SACPolicy(params, config)
    except (KeyError, TypeError, IndexError) as e:
        raise ValueError(f"expert {where}: parameters do not form a SAC actor ({type(e).__name__}: {e})") from e
    except ValueError as e:
        raise ValueError(f"expert {where}: {e}") from e
    if spec is not None:
        state_shape, act_shape = spec.observation["state"].shape, spec.action["action"].shape
        if state_shape != (policy.obs_dim,) or act_shape != (policy.act_dim,):
            raise ValueError(f"expert {where} was trained for state {policy.obs_dim} / action {policy.act_dim}; "
                             f"task {task!r} has state {state_shape} / action {act_shape}")
    policy.name = f"SAC({task})"  # what episode metadata records as the expert
    return policy


# ----------------------------------------------------------------------------------
# Training (JAX).
# ----------------------------------------------------------------------------------
def _make_update(config: SACConfig, act_dim: int):
    import jax  # acting (SACPolicy) is NumPy: JAX loads only to train
    import jax.numpy as jnp
    import optax

    target_entropy = -float(act_dim)
    opt_actor, opt_critic, opt_alpha = (optax.adam(config.actor_lr), optax.adam(config.critic_lr),
                                        optax.adam(config.alpha_lr))

    def sample(actor, obs, key):
        """tanh-squashed Gaussian sample and its log-probability."""
        mean, log_std = _actor_head(jnp, actor, obs)
        u = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape)
        logp = jnp.sum(-0.5 * ((u - mean) / jnp.exp(log_std)) ** 2 - log_std - 0.5 * jnp.log(2 * jnp.pi), -1)
        # log |d tanh(u)/du| = log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), stable for large |u|.
        logp -= jnp.sum(2.0 * (jnp.log(2.0) - u - jax.nn.softplus(-2.0 * u)), -1)
        return jnp.tanh(u), logp

    def q(layers, obs, act):
        return _mlp(jnp, layers, jnp.concatenate([obs, act], -1))[..., 0]

    def critic_loss(critics, params, batch, key):
        alpha = jnp.exp(params["log_alpha"])
        next_a, next_logp = sample(params["actor"], batch["next_obs"], key)
        next_q = jnp.minimum(q(params["q1_target"], batch["next_obs"], next_a), q(params["q2_target"], batch["next_obs"], next_a))
        target = batch["reward"] + config.gamma * batch["discount"] * (next_q - alpha * next_logp)
        target = jax.lax.stop_gradient(target)
        q1, q2 = q(critics["q1"], batch["obs"], batch["action"]), q(critics["q2"], batch["obs"], batch["action"])
        return jnp.mean((q1 - target) ** 2) + jnp.mean((q2 - target) ** 2)

    def actor_loss(actor, params, batch, key):
        alpha = jnp.exp(params["log_alpha"])
        a, logp = sample(actor, batch["obs"], key)
        qmin = jnp.minimum(q(params["q1"], batch["obs"], a), q(params["q2"], batch["obs"], a))
        return jnp.mean(alpha * logp - qmin), logp

    def one_update(carry, xs):
        params, opt_state = carry
        batch, key = xs
        k1, k2 = jax.random.split(key)
        critics = {"q1": params["q1"], "q2": params["q2"]}
        c_loss, c_grads = jax.value_and_grad(critic_loss)(critics, params, batch, k1)
        updates, opt_c = opt_critic.update(c_grads, opt_state["critic"], critics)
        critics = optax.apply_updates(critics, updates)
        params = {**params, **critics}
        (a_loss, logp), a_grads = jax.value_and_grad(actor_loss, has_aux=True)(params["actor"], params, batch, k2)
        updates, opt_a = opt_actor.update(a_grads, opt_state["actor"], params["actor"])
        actor = optax.apply_updates(params["actor"], updates)
        entropy_gap = jax.lax.stop_gradient(-logp - target_entropy)
        al_loss, al_grad = jax.value_and_grad(lambda la: jnp.mean(jnp.exp(la) * entropy_gap))(params["log_alpha"])
        updates, opt_al = opt_alpha.update(al_grad, opt_state["alpha"], params["log_alpha"])
        log_alpha = optax.apply_updates(params["log_alpha"], updates)
        polyak = lambda t, s: (1.0 - config.tau) * t + config.tau * s  # noqa: E731
        params = {**params, "actor": actor, "log_alpha": log_alpha,
                  "q1_target": jax.tree.map(polyak, params["q1_target"], params["q1"]),
                  "q2_target": jax.tree.map(polyak, params["q2_target"], params["q2"])}
        metrics = {"critic_loss": c_loss, "actor_loss": a_loss, "alpha": jnp.exp(log_alpha), "entropy": -jnp.mean(logp)}
        return (params, {"critic": opt_c, "actor": opt_a, "alpha": opt_al}), metrics

    @jax.jit
    def update(params, opt_state, batches, keys):
        """len(keys) updates, one per batch (batches: arrays with a leading chunk axis)."""
        (params, opt_state), metrics = jax.lax.scan(one_update, (params, opt_state), (batches, keys))
        return params, opt_state, jax.tree.map(jnp.mean, metrics)

    def init_opt(params):
        return {"critic": opt_critic.init({"q1": params["q1"], "q2": params["q2"]}),
                "actor": opt_actor.init(params["actor"]), "alpha": opt_alpha.init(params["log_alpha"])}

    return update, init_opt


class ReplayBuffer:
    """Fixed-size ring buffer of (obs, action, reward, discount, next_obs), float32."""

    def __init__(self, obs_dim: int, act_dim: int, size: int):
        self.size, self.n, self.i = int(size), 0, 0
        self.data = {"obs": np.zeros((size, obs_dim), np.float32), "action": np.zeros((size, act_dim), np.float32),
                     "reward": np.zeros((size,), np.float32), "discount": np.zeros((size,), np.float32),
                     "next_obs": np.zeros((size, obs_dim), np.float32)}

    def add(self, obs, action, reward, discount, next_obs) -> None:
        for k, v in (("obs", obs), ("action", action), ("reward", reward), ("discount", discount), ("next_obs", next_obs)):
            self.data[k][self.i] = v
        self.i = (self.i + 1) % self.size
        self.n = min(self.n + 1, self.size)

    def sample(self, rng: np.random.Generator, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
        idx = rng.integers(0, self.n, size=shape)
        return {k: v[idx] for k, v in self.data.items()}


def _actor_numpy(params: dict[str, Any]) -> list[dict[str, np.ndarray]]:
    return [{k: np.asarray(v, np.float32) for k, v in layer.items()} for layer in params["actor"]]


def train_sac(make_env: Callable[[int], TaskEnv], spec: EnvSpec, total_steps: int, seed: int = 0,
              config: SACConfig | None = None, *, log_every: int = 10_000, max_seconds: float | None = None,
              log: Callable[[str], Any] | None = print) -> tuple[dict[str, Any], list[dict[str, float]]]:
    """Trains SAC on a state task; returns (params, curve).

    Args:
      make_env: `make_env(seed) -> TaskEnv` of the task (called twice: acting and evaluation).
      spec: the task's spec: a CONTINUOUS "state" observation and an "action" in [-1, 1].
      total_steps: environment steps.
      max_seconds: stop early (at a chunk boundary) once exceeded.

    Returns:
      params: the full parameter tree ({"actor", "q1", "q2", "q1_target", "q2_target",
        "log_alpha"}); with `config.keep_best`, "actor" is the best-evaluated snapshot.
      curve: [{"step", "return", "wall_s", ...}] evaluation points every `log_every` env
        steps and at the end (deterministic actor, `config.eval_episodes` episodes).
    """
    import jax  # acting (SACPolicy) is NumPy: JAX loads only to train

    config = config or SACConfig()
    task = spec.name
    if "state" not in spec.observation:
        raise ValueError(f"train_sac: {task!r} has no 'state' observation (fields {sorted(spec.observation)}); "
                         f"SAC trains on state tasks (pixel tasks use their state twin's expert)")
    if total_steps < 1:
        raise ValueError(f"train_sac: total_steps must be >= 1, got {total_steps}")
    obs_dim, act_dim = spec.observation["state"].shape[0], spec.action["action"].shape[0]
    low, high = spec.action["action"].low, spec.action["action"].high
    if (low, high) != (-1.0, 1.0):
        raise ValueError(f"train_sac: the tanh actor needs actions in [-1, 1]; {task!r} has [{low}, {high}]")

    params = init_params(obs_dim, act_dim, config, seed)
    update, init_opt = _make_update(config, act_dim)
    params = jax.tree.map(jax.numpy.asarray, params)
    opt_state = init_opt(params)
    buffer = ReplayBuffer(obs_dim, act_dim, min(config.buffer_size, total_steps))
    rng = np.random.default_rng(seed)
    key = jax.random.PRNGKey(seed)
    env, eval_env = make_env(seed), make_env(seed)
    eval_seeds = [EVAL_SEED_BASE + k for k in range(config.eval_episodes)]
    curve: list[dict[str, float]] = []
    best = (-math.inf, None)
    actor_np = _actor_numpy(params)
    t0 = time.time()
    episode, ep_return, metrics = 0, 0.0, {}
    obs = env.reset(seed=seed * 1_000_003 + episode)["state"]

    def evaluate(step: int) -> None:
        nonlocal best
        policy = SACPolicy({"actor": actor_np}, {"obs_dim": obs_dim, "act_dim": act_dim})
        ret = float(np.mean(episode_returns(eval_env, policy, eval_seeds)))
        point = {"step": step, "return": ret, "wall_s": round(time.time() - t0, 2),
                 **{k: float(v) for k, v in metrics.items()}}
        curve.append(point)
        if ret > best[0]:
            best = (ret, actor_np)
        if log:
            extra = " ".join(f"{k} {v:.3g}" for k, v in point.items() if k not in ("step", "return", "wall_s"))
            log(f"[sac {task}] step {step:,} eval return {ret:.1f} ({point['wall_s']:.0f}s) {extra}")

    step = 0
    while step < total_steps:
        for _ in range(min(config.chunk, total_steps - step)):
            if step < config.random_steps:
                action = rng.uniform(-1.0, 1.0, act_dim).astype(np.float32)
            else:
                mean, log_std = _actor_head(np, actor_np, obs)
                action = np.tanh(mean + np.exp(log_std) * rng.standard_normal(act_dim)).astype(np.float32)
            nxt, reward, terminated, truncated, _ = env.step({"action": action})
            buffer.add(obs, action, reward, 0.0 if terminated else 1.0, nxt["state"])
            ep_return += reward
            step += 1
            if terminated or truncated:
                episode += 1
                ep_return = 0.0
                obs = env.reset(seed=seed * 1_000_003 + episode)["state"]
            else:
                obs = nxt["state"]
            if step % log_every == 0:
                evaluate(step)
        n_updates = config.chunk if step >= config.random_steps else 0
        if n_updates and buffer.n >= config.batch_size:
            batches = buffer.sample(rng, (n_updates, config.batch_size))
            key, sub = jax.random.split(key)
            params, opt_state, m = update(params, opt_state, batches, jax.random.split(sub, n_updates))
            metrics = {k: float(v) for k, v in m.items()}
            actor_np = _actor_numpy(jax.device_get(params))
        if max_seconds is not None and time.time() - t0 > max_seconds:
            if log:
                log(f"[sac {task}] time budget of {max_seconds:.0f}s reached at step {step:,}")
            break
    if not curve or curve[-1]["step"] != step:
        evaluate(step)
    env.close()
    eval_env.close()
    out = jax.tree.map(np.asarray, jax.device_get(params))
    if config.keep_best and best[1] is not None:
        out["actor"] = best[1]
    return out, curve
