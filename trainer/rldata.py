"""The ``rl`` records GRPO trains on: read, checked up front, prepared for TRL's GRPOTrainer.

Columns (the ``rl`` contract): ``id``, ``prompt`` (the prompt turns ending on the user, ``<audio>`` markers in
place), ``answer`` (the reference; a multiple-choice answer is the choice text), ``choices`` (list or null),
``task`` (``mcq``, ``asr``, ``qa``, ...), ``meta`` (JSON text or null), ``system``, ``tools``, ``audios`` (Hub
Audio structs), ``audio_info``, ``audio_seconds``, ``source``. TRL hands every column but ``prompt`` to the
reward functions by name.

A local folder is read through its manifest (``audiodata convert``) when it has one, else as a Hub-layout folder
of ``data/rl/{split}-NNNNN-of-NNNNN.parquet`` shards (what TRL users publish, and what the tests write until
``convert`` writes ``rl``); a Hub id through ``datasets.load_dataset``. Rows whose ``<audio>`` markers do not
match their clips, or without a prompt ending on the user, are skipped here, each logged with its reason (never
at step N, where a bad row of a group would stop the run).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from audiodata.records import AUDIO_MARKER
from trainer.config import ConfigError, TrainConfig, data_root, is_local
from trainer.data import SkipLog

REQUIRED = ("prompt", "answer")


def hub_shards(root: Path, config: str, split: str) -> list[Path]:
    return sorted((root / "data" / config).glob(f"{split}-*.parquet"))


def check_hub_layout(cfg: TrainConfig) -> None:
    """A local folder without a manifest must hold ``data/<config>/<split>-*.parquet`` shards."""
    root = data_root(cfg.data)
    if not root.is_dir():
        raise ConfigError(f"data {root}: no such folder")
    if not hub_shards(root, cfg.config_name, cfg.train_split):
        raise ConfigError(
            f"data {root}: neither a converted dataset (no manifest.json) nor a Hub-layout folder with "
            f"data/{cfg.config_name}/{cfg.train_split}-*.parquet shards"
        )
    if cfg.eval_split and not hub_shards(root, cfg.config_name, cfg.eval_split):
        shards = f"data/{cfg.config_name}/{cfg.eval_split}-*.parquet"
        raise ConfigError(f"data {root}: no split {cfg.eval_split!r} (no {shards} shards)")


def load_rl_rows(cfg: TrainConfig, split: str) -> Any:
    """The split as a ``datasets.Dataset``, audio left undecoded (``{bytes, path}``), contract columns checked."""
    import datasets

    if is_local(cfg.data):
        root = data_root(cfg.data)
        if (root / "manifest.json").is_file():
            from trainer.data import load_rows

            return _checked(load_rows(cfg, split), cfg)
        files = hub_shards(root, cfg.config_name, split)
        if not files:
            raise ConfigError(f"{root}: no data/{cfg.config_name}/{split}-*.parquet shards")
        ds = datasets.Dataset.from_parquet([str(f) for f in files])
    else:
        ds = datasets.load_dataset(cfg.data, cfg.config_name, split=split)
    return _checked(ds, cfg)


def _checked(ds: Any, cfg: TrainConfig) -> Any:
    import datasets

    if "messages" in ds.column_names and "prompt" not in ds.column_names:  # our loader names the prompt turns messages
        ds = ds.rename_column("messages", "prompt")
    missing = [c for c in REQUIRED if c not in ds.column_names]
    if missing:
        raise ConfigError(f"{cfg.data}: not an rl dataset (missing columns {', '.join(missing)})")
    if "audios" in ds.column_names:
        inner = getattr(ds.features["audios"], "feature", None)
        if inner is not None and getattr(inner, "decode", False):
            ds = ds.cast_column("audios", datasets.List(datasets.Audio(sampling_rate=inner.sampling_rate, decode=False)))
    return ds


def problem(row: dict[str, Any]) -> str | None:
    """Why ``row`` cannot be a GRPO prompt (None when it can)."""
    turns = row.get("prompt") or []
    if not turns or turns[-1].get("role") != "user":
        return "the prompt does not end on a user turn"
    markers = sum(str(m.get("content") or "").count(AUDIO_MARKER) for m in turns)
    clips = len(row.get("audio_info") or []) if "audio_info" in row else len(row.get("audios") or [])
    if markers != clips:
        return f"{markers} {AUDIO_MARKER} marker(s) in the prompt for {clips} clip(s)"
    if row.get("answer") is None:
        return "no answer to reward against"
    return None


def drop_unusable(ds: Any, skips: SkipLog) -> Any:
    """Leave out the rows :func:`problem` refuses, each logged once (rank 0)."""
    clips = "audio_info" if "audio_info" in ds.column_names else "audios"  # the small column when there is one
    cols = [c for c in ("id", "source", "prompt", clips, "answer") if c in ds.column_names]
    bad: list[int] = []
    view = ds.select_columns(cols)
    for i in range(len(view)):
        row = view[i]
        why = problem(row)
        if why is not None:
            bad.append(i)
            if int(os.environ.get("RANK", "0")) == 0:
                skips.add(row, why)
    if not bad:
        return ds
    drop = set(bad)
    return ds.select([i for i in range(len(ds)) if i not in drop])


def meta(value: Any) -> dict[str, Any] | None:
    """The ``meta`` column (JSON text) as an object, None when absent or not an object."""
    if isinstance(value, dict):
        return value
    if not isinstance(value, str) or not value:
        return None
    try:
        out = json.loads(value)
    except ValueError:
        return None
    return out if isinstance(out, dict) else None
