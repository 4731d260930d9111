"""The RL targets: TRL GRPO JSONL, verl Parquet and MMAU-style audio-QA JSON, written so that each peer reads them
as it reads its own data and ``audiodata convert`` reads them back as the same records (readers/dialects/rl.py).

- ``trl``: ``{"prompt": [turns], "solution": ..., "choices", "task", "meta", "audios", "id"}`` per line. TRL's
  GRPOTrainer hands every column but ``prompt`` to the reward functions (``trl/trainer/grpo_trainer.py``,
  ``_calculate_rewards``); ``solution`` is the name its own ``trl.rewards.accuracy_reward`` reads. A system prompt is
  the first turn of ``prompt`` (TRL's conversational form has no system column). ``meta`` is the JSON text the
  shards hold, so a reward gets the same keywords from an export as from the shards.
- ``verl``: Parquet with ``data_source``, ``prompt``, ``ability``, ``reward_model: {style: rule, ground_truth}``,
  ``extra_info: {index, split, task, choices, meta}`` as ``examples/data_preprocess/gsm8k.py`` writes them and
  ``verl/utils/dataset/rl_dataset.py`` reads them; verl's reward (``compute_score(data_source, solution_str,
  ground_truth, extra_info)``) gets the choices and task through ``extra_info``. verl reads images and videos by
  ``<image>``/``<video>`` markers and ``images``/``videos`` columns and has no audio key: the clips go in an
  ``audios`` column of Hub ``Audio`` structs (the bytes inline, as its ``images`` hold theirs), ``<audio>`` markers
  in place, for a custom dataset class (``data.custom_cls``) to hand to the processor.
- ``mmau``: a JSON array of ``{id, audio_id, question, choices, answer, ...meta}``, the layout of
  ``mmau-test-mini.json`` (github.com/Sakshi113/MMAU), ``audio_id`` a path relative to the file. ``question`` is
  the user turn without its marker and the lettered options the reader appended; MMAU's own keys (``dataset``,
  ``task`` = sound/music/speech, ``category``...) come back from ``meta``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from datasets import Audio, Features, List, Value

from audiodata.export.alignanything import ParquetRows
from audiodata.export.base import EVAL_SPLITS, ExportResult, _Audio
from audiodata.readers.dialects.rl import VERL_SOURCE, question_of
from audiodata.records import Record
from audiodata.writer.schema import meta_text


def _prompt(rec: Record) -> list[dict[str, str]]:
    turns = [m.to_dict() for m in rec.messages]
    return [{"role": "system", "content": rec.system}, *turns] if rec.system else turns


def _trl(rec: Record, audios: list[_Audio]) -> dict[str, Any]:
    """One TRL GRPO row (the target's rules ran first: an RL record)."""
    obj: dict[str, Any] = {
        "prompt": _prompt(rec),
        "solution": rec.answer,
        "choices": rec.choices,
        "task": rec.task or "qa",
        "meta": meta_text(rec.meta),
        "audios": [a.rel for a in audios],
    }
    if rec.tools:
        obj["tools"] = rec.tools
    obj["id"] = rec.id
    return obj


def verl_features() -> Features:
    """verl's columns as its preprocessing scripts write them, plus ``audios`` (Hub Audio structs)."""
    return Features(
        {
            "data_source": Value("string"),
            "prompt": List({"role": Value("string"), "content": Value("string")}),
            "ability": Value("string"),
            "reward_model": {"style": Value("string"), "ground_truth": Value("string")},
            "extra_info": {
                "index": Value("int64"),
                "split": Value("string"),
                "id": Value("string"),
                "task": Value("string"),
                "choices": List(Value("string")),
                "meta": Value("string"),
            },
            "audios": List(Audio()),
        }
    )


def verl_row(rec: Record, audios: list[_Audio], index: int, split: str) -> dict[str, Any]:
    """One verl row; ``meta`` travels whole in ``extra_info.meta`` (JSON text) less the ``data_source`` it names."""
    meta = dict(rec.meta or {})
    source = meta.pop("data_source", None)
    style = meta.pop("reward_style", None)
    return {
        "data_source": str(source) if source is not None else VERL_SOURCE,
        "prompt": _prompt(rec),
        "ability": rec.task or "qa",
        "reward_model": {"style": str(style) if style is not None else "rule", "ground_truth": rec.answer},
        "extra_info": {
            "index": index,
            "split": split,
            "id": rec.id,
            "task": rec.task or "qa",
            "choices": rec.choices,
            "meta": meta_text(meta) if meta else None,
        },
        "audios": [{"bytes": a.data, "path": a.rel.rsplit("/", 1)[-1]} for a in audios],
    }


class VerlRows(ParquetRows):
    """verl rows written like any export Parquet file (:class:`ParquetRows`), each row numbered
    (``extra_info.index``) in file order, as verl's preprocessing numbers them."""

    def __init__(self, path: Path, split: str) -> None:
        super().__init__(path, verl_features())
        self.split, self.n = split, 0

    def add(self, obj: dict[str, Any]) -> None:
        obj["extra_info"]["index"] = self.n
        obj["extra_info"]["split"] = self.split
        self.n += 1
        super().add(obj)


def _verl(rec: Record, audios: list[_Audio]) -> dict[str, Any]:
    return verl_row(rec, audios, 0, "")  # index and split: set by VerlRows.add, which knows the file's order


def _mmau(rec: Record, audios: list[_Audio]) -> dict[str, Any]:
    """One MMAU-style item (the target's rules ran first: one user turn, one audio leading it)."""
    meta = dict(rec.meta or {})
    obj: dict[str, Any] = {
        "id": rec.id,
        "audio_id": f"./{audios[0].rel}",
        "question": question_of(rec.messages[0].content, rec.choices),
    }
    if rec.choices is not None:
        obj["choices"] = rec.choices
    obj["answer"] = rec.answer
    for key, value in meta.items():  # MMAU's own keys (dataset, task, split, category, ...) after its core ones
        obj.setdefault(key, value)
    return obj


#: The RL targets: their formatter and data file suffix.
RL_TARGETS = ("trl", "verl", "mmau")


def rl_hints(r: ExportResult) -> list[str]:
    """How each peer takes an RL export: the files by split, in the peer's own terms."""
    dest = r.dest.resolve()
    train = [str(dest / f) for f, (kind, split) in r.streams.items() if kind == "rl" and split not in EVAL_SPLITS]
    val = [str(dest / f) for f, (kind, split) in r.streams.items() if kind == "rl" and split in EVAL_SPLITS]
    if not train and not val:
        return []
    files = train or val
    if r.target == "trl":
        return [
            f"load with: datasets.load_dataset('json', data_files={files!r})['train'] (audio paths relative to {dest}); "
            "GRPOTrainer hands solution, choices, task and meta to the reward functions",
        ]
    if r.target == "verl":
        names = lambda fs: "[" + ",".join(fs) + "]"  # noqa: E731  (Hydra list syntax)
        tail = f" data.val_files={names(val)}" if val else ""
        return [
            f"train with: python3 -m verl.trainer.main_ppo algorithm.adv_estimator=grpo data.train_files={names(files)}{tail} "
            "(verl reads images and videos itself; the audios column needs a data.custom_cls that hands it to the processor)",
        ]
    if r.target == "mmau":
        return [f"MMAU's evaluation.py --input FILE takes these files once a model_prediction key is added: {', '.join(files)}"]
    return []
