"""Data cards: one per dataset, measured from the data, in the spirit of Gato's appendix.

    gatolab data card --data data/classic --random-episodes 20 --out data_cards

writes `data_cards/<dataset>.json` (every number, machine-readable: the expert and
random-policy returns per task are what normalised scores use, GATO_SPEC §6),
`data_cards/<dataset>.md` (the card), and regenerates `data_cards/README.md` and
`data_cards/summary.json`, a Table-1-style summary over every card in the folder
(GATO_SPEC §8), plus `data_cards/returns.json` (task -> expert/random return).

Every statistic comes from code: episodes, timesteps and expert returns from the
shards (checksums verified first), tokens by running the Gato tokenizer over every
episode, random-policy returns by running the domain's random policy here. The
prose (what the environment is, licence, intended use, limitations) is fixed per
domain, in its registry entry (`gl.domains.entry(name).notes`; an import format's in
its importer); the generation facts (versions, seeds, expert) come from the manifest.
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime
import json
import math
import multiprocessing
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from gatolab import io_utils
from gatolab.data import importers, mixture
from gatolab.data.storage import EpisodeDataset
from gatolab.domains import registry
from gatolab.domains.base import Domain, rollout
from gatolab.gato_tokenizer import GatoTokenizer, TokenizerConfig
from gatolab.specs import Modality
from gatolab.text import default_text_tokenizer

def _stats(x: Sequence[float]) -> dict[str, float]:
    a = np.asarray(x, np.float64)
    if a.size == 0:
        return {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if a.size > 1 else 0.0,
            "min": float(a.min()), "max": float(a.max()), "n": int(a.size)}


def measure_returns(domain: Domain, task: str, num_episodes: int, seed: int, policy: str = "random") -> list[float]:
    """Returns of `num_episodes` rollouts of the domain's random (or expert) policy, seeds seed + i."""
    env = domain.make(task, seed=seed)
    try:
        out = []
        for i in range(num_episodes):
            pol = domain.random_policy(task, seed=seed + i) if policy == "random" else domain.expert(task)
            out.append(rollout(env, pol, seed=seed + i, record=False).total_return)
        return out
    finally:
        env.close()


def default_tokenizer(dataset: EpisodeDataset, text_vocab: int = 32_000) -> GatoTokenizer:
    """The Gato tokenizer; trains/loads the default SentencePiece model only if a field is text."""
    has_text = any(f.modality == Modality.TEXT for s in dataset.specs.values() for f in s.observation.values())
    text = default_text_tokenizer(text_vocab) if has_text else None
    return GatoTokenizer(TokenizerConfig(), text=text)


def card_notes(domain: str) -> dict[str, str]:
    """A card's prose: its domain's registry entry, or for an imported dataset (whose manifest
    names the import format as its domain) the importer's notes; empty when neither knows it."""
    if domain in registry.names():
        return dict(registry.notes(domain))
    return dict(importers.card_notes(domain))


def card_stats(dataset: str | os.PathLike | EpisodeDataset, *, random_episodes: int = 20, random_seed: int = 1_000_000,
               tokenizer: GatoTokenizer | None = None, progress: bool = True, workers: int = 1) -> dict[str, Any]:
    """Measures everything a card reports (see the module docstring).

    `workers` > 1 runs the random-policy rollouts of different tasks in that many
    processes (the same seeds, so the same numbers).
    """
    ds = dataset if isinstance(dataset, EpisodeDataset) else EpisodeDataset(dataset)
    ds.verify_all()
    tok = tokenizer or default_tokenizer(ds)
    m = ds.manifest
    domain = None
    if ds.kind == "control" and random_episodes > 0:
        domain = registry.get(m.get("domain", ds.name))
    tasks: dict[str, Any] = {}
    by_task: dict[str, list[int]] = {}
    for i, t in enumerate(ds.episode_task):
        by_task.setdefault(t, []).append(i)
    random: dict[str, Any] = {}
    if domain is not None:
        if workers > 1:
            with cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                futs = {t: pool.submit(measure_returns, domain, t, random_episodes, random_seed) for t in sorted(by_task)}
                random = {t: f.result() for t, f in tqdm(futs.items(), desc=f"random policy {ds.name}", disable=not progress)}
        else:
            random = {t: measure_returns(domain, t, random_episodes, random_seed)
                      for t in tqdm(sorted(by_task), desc=f"random policy {ds.name}", disable=not progress)}
    bar = tqdm(total=len(ds), unit="ep", desc=f"card {ds.name}", disable=not progress)
    for task in sorted(by_task):
        idx = by_task[task]
        spec = ds.specs[task]
        tokens, successes = 0, []
        for i in idx:
            ep = ds[i]
            tokens += len(tok.tokenize_episode(ep, spec))
            if "success" in ep.metadata:
                successes.append(bool(ep.metadata["success"]))
            bar.update(1)
        rets = ds.episode_return[idx]
        row: dict[str, Any] = {
            "episodes": len(idx),
            "timesteps": int(ds.episode_length[idx].sum()),
            "tokens": int(tokens),
            "tokens_per_timestep": tokens / max(1, int(ds.episode_length[idx].sum())),
            "expert_return": _stats(rets),
            "expert_returns": [float(x) for x in rets],
            "expert_success_rate": float(np.mean(successes)) if successes else None,
        }
        if ds.kind == "control" and spec.action:
            keep, e, thr = mixture.filter_episodes(rets)
            row["windowed_expert_return"] = e  # GATO_SPEC §4's expert return
            row["filter_threshold"] = thr
            row["kept_by_filter"] = int(keep.sum())
        if domain is not None:
            rand = random[task]
            row["random_return"] = _stats(rand)
            row["random_returns"] = [float(x) for x in rand]
            row["random_seeds"] = [random_seed, random_seed + random_episodes - 1]
        tasks[task] = row
    bar.close()
    share = mixture.default_weight_share()
    return {
        "dataset": ds.name,
        "domain": m.get("domain", ds.name),
        "kind": ds.kind,
        "generation": m.get("generation", {}),
        "versions": m.get("versions", {}),
        "domain_class": f"{m.get('domain_module', '?')}.{m.get('domain_class', '?')}",
        "format": m.get("format"),
        "tokenizer": {"text_vocab": tok.text.vocab_size if tok.text is not None else None,
                      "text_fingerprint": tok.text.fingerprint if tok.text is not None else None,
                      "vocab_size": tok.vocab.size},
        "num_tasks": len(tasks),
        "num_episodes": len(ds),
        "num_timesteps": int(ds.episode_length.sum()),
        "num_tokens": int(sum(t["tokens"] for t in tasks.values())),
        "default_sample_weight": share.get(ds.name),
        "table1_weight_percent": registry.default_weights().get(ds.name),
        "experts": m.get("experts", {}),
        "tasks": tasks,
    }


def _fmt(s: dict[str, Any] | None, digits: int = 3) -> str:
    if not s or s.get("mean") is None:
        return "—"
    return f"{s['mean']:.{digits}g} ± {s['std']:.{digits}g}"


def _human(n: float) -> str:
    for unit, k in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= k:
            return f"{n / k:.3g}{unit}"
    return str(int(n))


def render_card(card: dict[str, Any]) -> str:
    """The card's markdown: measured numbers from `card`, prose from its domain (`card_notes`)."""
    notes = card_notes(card["domain"])
    g = card["generation"]
    lines = [
        f"# Data card: `{card['dataset']}`",
        "",
        f"*Generated by `gatolab data card` on {card.get('generated_at', '?')}; every number below is measured from the data. "
        f"Machine-readable: [`{card['dataset']}.json`]({card['dataset']}.json).*",
        "",
        "## What it is",
        notes.get("what", f"Dataset of domain {card['domain']!r}."),
        "",
        "## How it was generated",
        f"- Domain: `{card['domain']}` ({card['domain_class']}), kind `{card['kind']}`.",
        f"- Expert: {notes.get('expert', 'see the domain module')}",
        f"- Episodes per task: {g.get('episodes_per_task', '?')}; seeds: {g.get('seed_rule', '?')} with seed = {g.get('seed', '?')}; "
        f"shards of {g.get('shard_size', '?')} episodes.",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(card["versions"].items())),
        "- Storage: Minari HDF5 shards with SHA-256 checksums (gatolab/data/storage.py).",
        f"- Tokens counted with the Gato tokenizer (vocabulary {card['tokenizer']['vocab_size']}, text model "
        f"{card['tokenizer']['text_vocab'] or 'unused'}).",
        "- Random-policy returns: the domain's uniform random policy, run here"
        + (f" for {next(iter(card['tasks'].values())).get('random_return', {}).get('n', 0)} episodes per task." if card["tasks"] else "."),
        "",
        "## Licence",
        notes.get("licence", "See the domain module."),
        "",
        "## Intended use",
        notes.get("use", "—"),
        "",
        "## Limitations",
        notes.get("limits", "—"),
        "",
        "## Statistics",
        f"Tasks {card['num_tasks']}, episodes {card['num_episodes']}, timesteps {card['num_timesteps']}, "
        f"tokens {card['num_tokens']} ({_human(card['num_tokens'])}). Sample weight in the default mixture: "
        + (f"{card['default_sample_weight']:.2%} (Table-1 proportion {card['table1_weight_percent']}%)."
           if card["default_sample_weight"] is not None else "not in the default mixture."),
        "",
        "| task | episodes | timesteps | tokens | expert return | expert success | windowed expert (§4) | kept by filter | random return |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for task, t in card["tasks"].items():
        succ = "—" if t.get("expert_success_rate") is None else f"{t['expert_success_rate']:.0%}"
        wexp = "—" if t.get("windowed_expert_return") is None else f"{t['windowed_expert_return']:.3g}"
        kept = "—" if t.get("kept_by_filter") is None else f"{t['kept_by_filter']}/{t['episodes']}"
        lines.append(f"| {task} | {t['episodes']} | {t['timesteps']} | {t['tokens']} | {_fmt(t['expert_return'])} | {succ} | "
                     f"{wexp} | {kept} | {_fmt(t.get('random_return'))} |")
    lines.append("")
    lines.append("Returns are mean ± standard deviation over episodes. The expert return is over the dataset's episodes; "
                 "the windowed expert return is GATO_SPEC §4's max windowed mean (W = min(1000, 0.1·N)); \"kept by filter\" "
                 "counts episodes at or above the §2.3 threshold (80% of it, read as within 20% of |E| for negative returns). "
                 "Expert success is what the environment reports (`info[\"success\"]`); a task that defines no success "
                 "(e.g. Pendulum) shows 0%.")
    if card.get("experts"):
        lines += ["", "## Trained experts",
                  "The RL experts behind the data (`experts/<task>/`, `gatolab experts train`), measured after training "
                  "through the same adapter against the random policy on the same seeds:", "",
                  "| task | algorithm | trained on (task) | env steps | wall time | expert return | random return | episodes | params sha256 |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for task, e in card["experts"].items():
            ev = e.get("evaluation", {})
            steps = "?" if e.get("train_steps") is None else f"{e['train_steps']:,}"
            wall = "?" if e.get("train_wall_s") is None else f"{e['train_wall_s'] / 60:.1f} min"
            lines.append(f"| {task} | {e['algo']} | {e['task']} | {steps} | {wall} | "
                         f"{ev.get('expert_return_mean', float('nan')):.3g} ± {ev.get('expert_return_std', float('nan')):.2g} | "
                         f"{ev.get('random_return_mean', float('nan')):.3g} ± {ev.get('random_return_std', float('nan')):.2g} | "
                         f"{ev.get('episodes', '?')} | `{e['params_sha256'][:12]}` |")
    return "\n".join(lines) + "\n"


def write_card(dataset: str | os.PathLike | EpisodeDataset, out_dir: str | os.PathLike = "data_cards", *,
               random_episodes: int = 20, random_seed: int = 1_000_000, tokenizer: GatoTokenizer | None = None,
               progress: bool = True, workers: int = 1) -> dict[str, Any]:
    """Measures a dataset, writes `<out>/<name>.json` and `.md`, and regenerates the summary."""
    card = card_stats(dataset, random_episodes=random_episodes, random_seed=random_seed, tokenizer=tokenizer, progress=progress,
                      workers=workers)
    card["generated_at"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out = Path(out_dir)
    io_utils.atomic_write_json(out / f"{card['dataset']}.json", card)
    write_summary(out)  # renders the .md of this card and of every other card in the folder
    return card


def load_cards(cards_dir: str | os.PathLike) -> list[dict[str, Any]]:
    out = []
    for p in sorted(Path(cards_dir).glob("*.json")):
        if p.name in ("summary.json", "returns.json"):
            continue
        try:
            d = json.loads(p.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"data card {p} is not valid JSON ({e})") from e
        if "dataset" not in d or "tasks" not in d:
            raise ValueError(f"data card {p}: expected keys 'dataset' and 'tasks'")
        out.append(d)
    return out


def summary_rows(cards: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Table-1-style rows: dataset, tasks, episodes, timesteps, tokens, weights, mean returns."""
    names = [c["dataset"] for c in cards if c["dataset"] in registry.default_weights()]
    share = mixture.default_weight_share(names) if names else {}
    rows = []
    for c in cards:
        rows.append({"dataset": c["dataset"], "tasks": c["num_tasks"], "episodes": c["num_episodes"],
                     "timesteps": c["num_timesteps"], "tokens": c["num_tokens"],
                     "weight_all_defaults": c.get("default_sample_weight"), "weight_these_cards": share.get(c["dataset"])})
    return rows


def write_summary(cards_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Regenerates every card's .md, README.md, summary.json and returns.json from the cards' JSON."""
    cards_dir = Path(cards_dir)
    cards = load_cards(cards_dir)
    # Weights are configuration, not measurements: every card shows today's registry weights
    # (a dataset added to the defaults changes every other dataset's share).
    share = mixture.default_weight_share()
    for c in cards:
        if c.get("default_sample_weight") != share.get(c["dataset"]):
            c["default_sample_weight"] = share.get(c["dataset"])
            io_utils.atomic_write_json(cards_dir / f"{c['dataset']}.json", c)
        io_utils.atomic_write_text(cards_dir / f"{c['dataset']}.md", render_card(c))
    rows = summary_rows(cards)
    returns = {}
    for c in cards:
        for task, t in c["tasks"].items():
            returns[task] = {"dataset": c["dataset"], "expert_return": (t.get("expert_return") or {}).get("mean"),
                             "windowed_expert_return": t.get("windowed_expert_return"),
                             "random_return": (t.get("random_return") or {}).get("mean"),
                             "expert_success_rate": t.get("expert_success_rate")}
    io_utils.atomic_write_json(cards_dir / "summary.json", rows)
    io_utils.atomic_write_json(cards_dir / "returns.json", returns)
    pct = lambda v: "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2%}"  # noqa: E731
    lines = [
        "# gatolab datasets (Table-1-style summary)",
        "",
        "Regenerated by `gatolab data card` / `gatolab data summary` from the cards in this folder; do not edit by hand.",
        "Compare Gato's Table 1 (GATO_SPEC §8). Weights: the default mixture's probability for the dataset when all "
        "default datasets are mixed, and when only the datasets listed here are.",
        "",
        "| dataset | tasks | episodes | timesteps | tokens | sample weight (all defaults) | sample weight (these) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| [{r['dataset']}]({r['dataset']}.md) | {r['tasks']} | {r['episodes']} | {r['timesteps']} | "
                     f"{_human(r['tokens'])} | {pct(r['weight_all_defaults'])} | {pct(r['weight_these_cards'])} |")
    if rows:
        lines.append(f"| **total** | {sum(r['tasks'] for r in rows)} | {sum(r['episodes'] for r in rows)} | "
                     f"{sum(r['timesteps'] for r in rows)} | {_human(sum(r['tokens'] for r in rows))} | | |")
    lines += ["", "Per-task expert and random-policy returns (for normalised scores, GATO_SPEC §6): [`returns.json`](returns.json).",
              "", "To regenerate (the data itself is not committed; every task of each domain at generation time):", "", "```"]
    for c in cards:
        g = c.get("generation", {})
        n_rand = next((t.get("random_return", {}).get("n") for t in c["tasks"].values() if t.get("random_return")), 0)
        lines.append(f"gatolab data generate --domain {c['domain']} --episodes {g.get('episodes_per_task')} --seed {g.get('seed')} "
                     f"--shard-size {g.get('shard_size')} --workers 2 --out runs/data")
        lines.append(f"gatolab data card --data runs/data/{c['dataset']} --random-episodes {n_rand} --out data_cards")
    lines.append("```")
    io_utils.atomic_write_text(cards_dir / "README.md", "\n".join(lines) + "\n")
    return rows
