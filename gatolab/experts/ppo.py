"""PPO (Schulman et al., 2017) in JAX: the expert trainer for MinAtar, Atari and Procgen.

Gato's experts were RL agents trained per task (GATO_SPEC §8: "data from SOTA or
near-SOTA RL agents"); we train ours here. Two drivers share one network and one update:

    train_jax_env(...)   the environment is pure JAX (gymnax's MinAtar): rollouts and
                         updates run inside one `jax.lax.scan`, PureJaxRL-style
                         (Lu et al., 2022), a few thousand environment steps per ms-scale call.
    train_host_env(...)  the environment steps on the host (ALE's C++ vector env, Procgen):
                         a jitted policy acts, numpy collects, a jitted update learns.

The flow is the textbook one, each piece a named function below:

    rollout (T steps x N envs) -> GAE advantages -> E epochs x M minibatches of the clipped
    surrogate + value loss - entropy bonus -> next rollout

Hyperparameters default to the usual Atari/MinAtar PPO settings (PPOConfig); the
network is an MLP (vector/grid inputs) or the Nature CNN (Mnih et al., 2015; image stacks).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn

from gatolab.experts import store


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """Every PPO knob. Defaults: PureJaxRL's MinAtar settings (64 envs x 128 steps, 4 epochs x 8 minibatches)."""

    network: str = "mlp"  # "mlp" (flattened input) | "cnn" (Nature CNN on HxWxC images)
    hidden: int = 64  # MLP width (two layers, separate actor and critic torsos)
    activation: str = "relu"  # "relu" | "tanh"
    num_envs: int = 64
    num_steps: int = 128  # T: rollout length per env between updates
    total_steps: int = 2_000_000  # environment steps (all envs together)
    lr: float = 5e-3
    anneal_lr: bool = True  # linear decay to 0 over the run
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_eps: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    update_epochs: int = 4
    num_minibatches: int = 8
    obs_scale: float = 1.0  # inputs are multiplied by this (1/255 for uint8 frames)

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def num_updates(self) -> int:
        return max(1, self.total_steps // self.batch_size)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PPOConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"PPOConfig: unknown field {unknown[0]!r} (known: {sorted(known)})")
        return cls(**d)


# ----------------------------------------------------------------------------------
# Network: observation -> (action logits, value)
# ----------------------------------------------------------------------------------
def _space_to_depth(x: jax.Array, b: int) -> jax.Array:
    """(N, H, W, C) -> (N, H/b, W/b, b·b·C)."""
    n, h, w, c = x.shape
    return jnp.reshape(x.reshape(n, h // b, b, w // b, b, c).transpose(0, 1, 3, 2, 4, 5), (n, h // b, w // b, b * b * c))


def conv_as_matmul(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    """A VALID convolution (NHWC input, HWIO square kernel whose size is a multiple of the
    stride) as space-to-depth + patch concatenation + one matrix product.

    Equal to `lax.conv_general_dilated(x, kernel, (s, s), "VALID")` up to float rounding.
    Why: XLA's CPU convolution gradients run 14-30x slower inside `lax.scan` (PPO's
    minibatch loop) than outside it; matrix products do not (one Atari update: 63 s -> 3 s).
    """
    k, _, cin, cout = kernel.shape
    _, h, w, _ = x.shape
    ho, wo = (h - k) // stride + 1, (w - k) // stride + 1
    x = x[:, :(ho - 1) * stride + k, :(wo - 1) * stride + k]  # rows and columns VALID never reads
    if stride > 1:
        x = _space_to_depth(x, stride)
        m = k // stride
        kernel = kernel.reshape(m, stride, m, stride, cin, cout).transpose(0, 2, 1, 3, 4, 5)
        kernel = kernel.reshape(m, m, stride * stride * cin, cout)
    m = kernel.shape[0]
    patches = jnp.concatenate([x[:, i:i + ho, j:j + wo] for i in range(m) for j in range(m)], axis=-1)
    return patches @ kernel.reshape(-1, cout)


class Conv(nn.Module):
    """`nn.Conv(features, (k, k), (s, s), padding="VALID")` computed by `conv_as_matmul`: the same
    parameters, and the class name keeps them at Conv_0, Conv_1, ... as nn.Conv's."""

    features: int
    kernel_size: int
    stride: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param("kernel", nn.initializers.orthogonal(np.sqrt(2)),
                            (self.kernel_size, self.kernel_size, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        return conv_as_matmul(x, kernel, self.stride) + bias


class ActorCritic(nn.Module):
    num_actions: int
    network: str = "mlp"
    hidden: int = 64
    activation: str = "relu"

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """x: (B, *obs_shape) float -> logits (B, A), value (B,)."""
        act = nn.relu if self.activation == "relu" else nn.tanh
        orth = nn.initializers.orthogonal
        if self.network == "cnn":  # Nature CNN, one torso shared by actor and critic
            h = act(Conv(32, 8, 4)(x))
            h = act(Conv(64, 4, 2)(h))
            h = act(Conv(64, 3, 1)(h))
            h = act(nn.Dense(512, kernel_init=orth(np.sqrt(2)))(h.reshape(h.shape[0], -1)))
            actor_h = critic_h = h
        elif self.network == "mlp":
            x = x.reshape(x.shape[0], -1)
            actor_h, critic_h = x, x
            for _ in range(2):
                actor_h = act(nn.Dense(self.hidden, kernel_init=orth(np.sqrt(2)))(actor_h))
                critic_h = act(nn.Dense(self.hidden, kernel_init=orth(np.sqrt(2)))(critic_h))
        else:
            raise ValueError(f"PPOConfig.network must be 'mlp' or 'cnn', got {self.network!r}")
        logits = nn.Dense(self.num_actions, kernel_init=orth(0.01))(actor_h)
        value = nn.Dense(1, kernel_init=orth(1.0))(critic_h)[:, 0]
        return logits, value


def make_network(config: PPOConfig, num_actions: int) -> ActorCritic:
    return ActorCritic(num_actions, config.network, config.hidden, config.activation)


def init_params(config: PPOConfig, num_actions: int, obs_shape: tuple[int, ...], key: jax.Array) -> dict:
    return make_network(config, num_actions).init(key, jnp.zeros((1, *obs_shape), jnp.float32))


# ----------------------------------------------------------------------------------
# The PPO update (shared by both drivers)
# ----------------------------------------------------------------------------------
@jax.tree_util.register_dataclass
@dataclasses.dataclass
class Rollout:
    """T steps x N envs of experience; every field leads with (T, N)."""

    obs: jax.Array  # (T, N, *obs_shape)
    action: jax.Array  # (T, N) int32
    logp: jax.Array  # (T, N) log pi_old(a|s)
    value: jax.Array  # (T, N) V_old(s)
    reward: jax.Array  # (T, N)
    done: jax.Array  # (T, N) the episode ended at this step (terminated or truncated)


def gae(rollout: Rollout, last_value: jax.Array, gamma: float, lam: float) -> tuple[jax.Array, jax.Array]:
    """Generalised advantage estimation (Schulman et al., 2016) -> (advantages, returns), (T, N) each."""

    def step(carry, xs):
        next_adv, next_value = carry
        reward, value, done = xs
        not_done = 1.0 - done
        delta = reward + gamma * next_value * not_done - value
        adv = delta + gamma * lam * not_done * next_adv
        return (adv, value), adv

    _, adv = jax.lax.scan(step, (jnp.zeros_like(last_value), last_value),
                          (rollout.reward, rollout.value, rollout.done.astype(jnp.float32)), reverse=True)
    return adv, adv + rollout.value


def ppo_loss(params, apply_fn, obs, action, logp_old, value_old, adv, ret, config: PPOConfig):
    """Clipped surrogate + clipped value loss - entropy bonus; returns (loss, aux metrics)."""
    logits, value = apply_fn(params, obs * config.obs_scale)
    logp_all = jax.nn.log_softmax(logits)
    logp = jnp.take_along_axis(logp_all, action[:, None], axis=1)[:, 0]
    entropy = -jnp.sum(jnp.exp(logp_all) * logp_all, axis=-1).mean()
    ratio = jnp.exp(logp - logp_old)
    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    pg_loss = -jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - config.clip_eps, 1 + config.clip_eps) * adv).mean()
    v_clipped = value_old + jnp.clip(value - value_old, -config.clip_eps, config.clip_eps)
    v_loss = 0.5 * jnp.maximum((value - ret) ** 2, (v_clipped - ret) ** 2).mean()
    loss = pg_loss + config.vf_coef * v_loss - config.ent_coef * entropy
    approx_kl = ((ratio - 1) - jnp.log(ratio)).mean()
    return loss, {"pg_loss": pg_loss, "v_loss": v_loss, "entropy": entropy, "approx_kl": approx_kl}


def make_optimizer(config: PPOConfig) -> optax.GradientTransformation:
    n = config.num_updates * config.update_epochs * config.num_minibatches
    lr = optax.linear_schedule(config.lr, 0.0, n) if config.anneal_lr else config.lr
    return optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optax.adam(lr, eps=1e-5))


def ppo_update(params, opt_state, rollout: Rollout, last_value, key, *, apply_fn, tx, config: PPOConfig):
    """E epochs x M minibatches over one rollout -> (params, opt_state, mean metrics). Pure; jit it."""
    adv, ret = gae(rollout, last_value, config.gamma, config.gae_lambda)
    flat = jax.tree.map(lambda x: x.reshape(config.batch_size, *x.shape[2:]),
                        (rollout.obs, rollout.action, rollout.logp, rollout.value, adv, ret))
    mb = config.batch_size // config.num_minibatches

    def epoch(carry, k):
        params, opt_state = carry
        perm = jax.random.permutation(k, config.batch_size)
        shuffled = jax.tree.map(lambda x: x[perm].reshape(config.num_minibatches, mb, *x.shape[1:]), flat)

        def minibatch(carry, batch):
            params, opt_state = carry
            grads, aux = jax.grad(ppo_loss, has_aux=True)(params, apply_fn, *batch, config)
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), aux

        (params, opt_state), aux = jax.lax.scan(minibatch, (params, opt_state), shuffled)
        return (params, opt_state), aux

    (params, opt_state), aux = jax.lax.scan(epoch, (params, opt_state), jax.random.split(key, config.update_epochs))
    return params, opt_state, jax.tree.map(jnp.mean, aux)


def sample_action(key, logits):
    action = jax.random.categorical(key, logits)
    logp = jnp.take_along_axis(jax.nn.log_softmax(logits), action[:, None], axis=1)[:, 0]
    return action, logp


# ----------------------------------------------------------------------------------
# Driver 1: pure-JAX environments (gymnax)
# ----------------------------------------------------------------------------------
def train_jax_env(env, env_params, config: PPOConfig, seed: int = 0, *, updates_per_call: int = 10,
                  log: Callable[[str], None] | None = print, time_limit_s: float | None = None):
    """Trains PPO on a gymnax environment -> (params, curve).

    curve: [{"step", "return" (mean return of episodes finished since the last point),
    "episodes", "wall_s", "entropy", "approx_kl"}], one point per `updates_per_call` updates.
    `time_limit_s` stops early (between calls) once exceeded; the curve says where.
    """
    num_actions = env.action_space(env_params).n
    obs_shape = env.observation_space(env_params).shape
    net = make_network(config, num_actions)
    tx = make_optimizer(config)
    key = jax.random.PRNGKey(seed)
    key, k_init, k_reset = jax.random.split(key, 3)
    params = init_params(config, num_actions, obs_shape, k_init)
    opt_state = tx.init(params)
    obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(k_reset, config.num_envs), env_params)
    ep_return = jnp.zeros(config.num_envs)
    update = functools.partial(ppo_update, apply_fn=net.apply, tx=tx, config=config)

    def one_update(carry, _):
        params, opt_state, obs, env_state, ep_return, key = carry

        def env_step(c, _):
            obs, env_state, ep_return, key = c
            key, k_act, k_step = jax.random.split(key, 3)
            logits, value = net.apply(params, obs.astype(jnp.float32) * config.obs_scale)
            action, logp = sample_action(k_act, logits)
            next_obs, env_state, reward, terminated, truncated, _ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                jax.random.split(k_step, config.num_envs), env_state, action, env_params)
            done = jnp.logical_or(terminated, truncated)  # [open] truncation is not bootstrapped (PureJaxRL)
            ep_return = ep_return + reward
            finished_sum = jnp.sum(jnp.where(done, ep_return, 0.0))
            finished = jnp.sum(done)
            ep_return = jnp.where(done, 0.0, ep_return)
            tr = Rollout(obs.astype(jnp.float32), action, logp, value, reward, done)
            return (next_obs, env_state, ep_return, key), (tr, finished_sum, finished)

        (obs, env_state, ep_return, key), (rollout, fin_sum, fin_n) = jax.lax.scan(
            env_step, (obs, env_state, ep_return, key), None, config.num_steps)
        _, last_value = net.apply(params, obs.astype(jnp.float32) * config.obs_scale)
        key, k_upd = jax.random.split(key)
        params, opt_state, aux = update(params, opt_state, rollout, last_value, k_upd)
        return (params, opt_state, obs, env_state, ep_return, key), (fin_sum.sum(), fin_n.sum(), aux)

    @jax.jit
    def many_updates(carry):
        carry, (fin_sum, fin_n, aux) = jax.lax.scan(one_update, carry, None, updates_per_call)
        return carry, fin_sum.sum(), fin_n.sum(), jax.tree.map(jnp.mean, aux)

    carry = (params, opt_state, obs, env_state, ep_return, key)
    curve: list[dict[str, float]] = []
    t0 = time.perf_counter()
    done_updates = 0
    while done_updates < config.num_updates:
        carry, fin_sum, fin_n, aux = many_updates(carry)
        done_updates += updates_per_call
        fin_n = int(fin_n)
        point = {"step": done_updates * config.batch_size, "return": float(fin_sum) / fin_n if fin_n else float("nan"),
                 "episodes": fin_n, "wall_s": round(time.perf_counter() - t0, 2),
                 "entropy": float(aux["entropy"]), "approx_kl": float(aux["approx_kl"])}
        curve.append(point)
        if log:
            log(f"step {point['step']:>9,}  return {point['return']:8.2f}  ({fin_n} episodes)  "
                f"entropy {point['entropy']:.3f}  {point['wall_s']:.0f}s")
        if time_limit_s is not None and point["wall_s"] > time_limit_s:
            break
    return carry[0], curve


# ----------------------------------------------------------------------------------
# Driver 2: host environments (ALE, Procgen)
# ----------------------------------------------------------------------------------
class HostVecEnv:
    """What `train_host_env` needs of a vectorised host environment (N copies, auto-reset).

    reset() -> obs (N, *obs_shape);  step(actions (N,)) -> (obs, reward (N,), done (N,),
    finished_returns: list of the raw (unclipped) returns of episodes that ended this step).
    """

    num_envs: int
    num_actions: int
    obs_shape: tuple[int, ...]

    def reset(self) -> np.ndarray: ...

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[float]]: ...

    def close(self) -> None: ...


def train_host_env(venv: HostVecEnv, config: PPOConfig, seed: int = 0, *, log_every: int = 10,
                   log: Callable[[str], None] | None = print, time_limit_s: float | None = None):
    """Trains PPO on a host vector env -> (params, curve) (curve as in `train_jax_env`)."""
    if venv.num_envs != config.num_envs:
        raise ValueError(f"PPOConfig.num_envs={config.num_envs} but the vector env has {venv.num_envs} copies")
    net = make_network(config, venv.num_actions)
    tx = make_optimizer(config)
    key = jax.random.PRNGKey(seed)
    key, k_init = jax.random.split(key)
    params = init_params(config, venv.num_actions, venv.obs_shape, k_init)
    opt_state = tx.init(params)

    @jax.jit
    def act(params, obs, key):
        logits, value = net.apply(params, obs.astype(jnp.float32) * config.obs_scale)
        action, logp = sample_action(key, logits)
        return action, logp, value

    update = jax.jit(functools.partial(ppo_update, apply_fn=net.apply, tx=tx, config=config))
    T, N = config.num_steps, config.num_envs
    obs_buf = np.zeros((T, N, *venv.obs_shape), np.uint8 if config.network == "cnn" else np.float32)
    act_buf, logp_buf, val_buf = np.zeros((T, N), np.int32), np.zeros((T, N), np.float32), np.zeros((T, N), np.float32)
    rew_buf, done_buf = np.zeros((T, N), np.float32), np.zeros((T, N), np.float32)
    obs = venv.reset()
    curve: list[dict[str, float]] = []
    finished: list[float] = []
    t0 = time.perf_counter()
    for u in range(1, config.num_updates + 1):
        for t in range(T):
            key, k = jax.random.split(key)
            action, logp, value = jax.device_get(act(params, obs, k))
            obs_buf[t], act_buf[t], logp_buf[t], val_buf[t] = obs, action, logp, value
            obs, reward, done, ended = venv.step(np.asarray(action))
            rew_buf[t], done_buf[t] = reward, done
            finished.extend(ended)
        key, k_last, k = jax.random.split(key, 3)
        _, _, last_value = act(params, obs, k_last)
        rollout = Rollout(jnp.asarray(obs_buf), jnp.asarray(act_buf), jnp.asarray(logp_buf), jnp.asarray(val_buf),
                          jnp.asarray(rew_buf), jnp.asarray(done_buf))
        params, opt_state, aux = update(params, opt_state, rollout, last_value, k)
        wall = time.perf_counter() - t0
        last = u == config.num_updates or (time_limit_s is not None and wall > time_limit_s)
        if u % log_every == 0 or last:
            point = {"step": u * config.batch_size, "return": float(np.mean(finished)) if finished else float("nan"),
                     "episodes": len(finished), "wall_s": round(wall, 2),
                     "entropy": float(aux["entropy"]), "approx_kl": float(aux["approx_kl"])}
            curve.append(point)
            finished = []
            if log:
                log(f"step {point['step']:>9,}  return {point['return']:8.2f}  ({point['episodes']} episodes)  "
                    f"entropy {point['entropy']:.3f}  {point['wall_s']:.0f}s")
        if last:
            break
    return params, curve


# ----------------------------------------------------------------------------------
# The trained policy as a gatolab expert
# ----------------------------------------------------------------------------------
class PPOPolicy:
    """A trained PPO actor as a gatolab `Policy`: (env, observation) -> {"action": int}.

    `features(env, obs)` turns the gatolab observation (or the env's privileged expert
    view) into the network input; actions are sampled from pi (`greedy=False`, the
    behaviour the agent was trained and evaluated with) from a seeded generator, so a
    generation run is reproducible.
    """

    name = "PPO"  # what episode metadata records as the expert

    def __init__(self, params: Any, config: PPOConfig, num_actions: int,
                 features: Callable[[Any, dict], np.ndarray], greedy: bool = False, seed: int = 0,
                 action_field: str = "action"):
        self.params, self.config, self.num_actions = params, config, num_actions
        self.features, self.greedy, self.action_field = features, greedy, action_field
        self._rng = np.random.default_rng(seed)
        self._apply = jax.jit(make_network(config, num_actions).apply)

    def logits(self, x: np.ndarray) -> np.ndarray:
        logits, _ = self._apply(self.params, jnp.asarray(x, jnp.float32)[None] * self.config.obs_scale)
        return np.asarray(logits[0], np.float64)

    def __call__(self, env, obs: dict) -> dict[str, np.ndarray]:
        logits = self.logits(self.features(env, obs))
        if self.greedy:
            a = int(np.argmax(logits))
        else:
            p = np.exp(logits - logits.max())
            a = int(self._rng.choice(self.num_actions, p=p / p.sum()))
        return {self.action_field: np.asarray(a, np.int64)}


def load_policy(task: str, num_actions: int, features: Callable[[Any, dict], np.ndarray], *,
                root: str | os.PathLike | None = None, seed: int = 0, greedy: bool = False) -> PPOPolicy:
    """The trained PPO expert of `task` from the experts store (gatolab/experts/store.py).

    Raises:
      FileNotFoundError: none trained (the message names the train command).
      ValueError: corrupt files, or an expert that is not a PPO one.
    """
    params, meta = store.load_expert(task, root)
    if meta.get("algo") != "ppo":
        raise ValueError(f"expert {store.expert_path(task, root)} is a {meta.get('algo')!r} expert, not 'ppo'")
    return PPOPolicy(params, PPOConfig.from_dict(meta["config"]), num_actions, features, greedy=greedy, seed=seed)
