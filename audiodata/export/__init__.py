"""``export``: a converted dataset out again, in the form a trainer reads directly.

Targets:

* ``llamafactory``: the stored audio as files under ``DEST/audio/<config>/<split>/``,
  one JSON array per config and split (``<name>_<split>.json``) in sharegpt form
  (``conversations`` of ``{from, value}`` with LLaMA-Factory's default tags, ``system``,
  ``tools``, ``audios`` relative to ``DEST``; DPO: a prompt ending on the user plus
  ``chosen``/``rejected`` message objects) or alpaca form, and ``DEST/dataset_info.json``
  with one entry per file, so ``llamafactory-cli train`` with ``dataset_dir=DEST``
  loads it unchanged.
* ``llamafactory-v1``: LLaMA-Factory v1's native rows (``data/v1_*.jsonl``), one
  ``DEST/<name>_<split>.jsonl`` each with the ``DEST/<name>_<split>.yaml`` v1 loads
  (``train_dataset``), the audio as files like ``llamafactory``: messages of typed items
  (``audio_url`` in place of each ``<audio>``, a ``function_call`` turn as ``tool_call``
  items), ``loss_weight`` 1.0 on assistant messages and 0.0 on the others as v1's converters
  set it; DPO as ``chosen_messages``/``rejected_messages`` with the shared prompt on both
  sides. v1 opens every path relative to the working directory: train from ``DEST``.
* ``ms-swift``: ``DEST/<name>_<split>.jsonl`` of ``{"messages", "audios"}`` (system as a
  leading system message; DPO: the chosen reply ends ``messages`` and
  ``rejected_response`` holds the rejected text). Audio paths are absolute, since ms-swift
  resolves a relative one against the folder it runs in (``--relative-paths``: relative to
  ``DEST``, for ``ROOT_IMAGE_DIR=DEST``). Rows ms-swift would drop or misread are skipped and
  counted.
* ``minicpm``: ``DEST/<name>_<split>.jsonl`` of ``{"audio": <base64 FLAC>, "text",
  "prompt"}`` for single-turn, single-audio SFT records; others are skipped and counted.
* ``align-anything``: ``DEST/<name>_<split>.parquet`` of the rows Align-Anything's ``AA_TA2T`` template
  reads (``prompt``, ``audio_path`` as a ``datasets`` Audio feature holding the stored bytes,
  ``response_1``/``response_2``, ``overall_response``), for SFT and DPO records of one audio question and
  its answer (:mod:`audiodata.export.alignanything`); train with ``--train_datasets DEST
  --train_data_files <file> --train_template AA_TA2T``.

* ``trl``, ``verl``, ``mmau``: RL records (the ``rl`` config) as TRL GRPO JSONL (``prompt``, ``solution``,
  ``choices``, ``task``, ``meta``, ``audios``), verl Parquet (``data_source``, ``prompt``, ``ability``,
  ``reward_model``, ``extra_info``, ``audios`` inline) and MMAU-style multiple-choice JSON
  (:mod:`audiodata.export.rl`); ``ms-swift`` writes RL records as GRPO rows (``messages`` + ``solution``...).
  The other targets skip RL records (X005), these three the other kinds (X501).
Images and videos (``images``/``videos`` columns) are written next to the record's audio
and listed under the same keys (LLaMA-Factory: ``columns.images``/``columns.videos``; ms-swift:
its standard keys). The stored audio bytes are written as they are (no re-encoding), so converting an
export back yields the same PCM hashes. Shards are streamed batch by batch; records
that a target cannot express are skipped with a reason, never silently.
"""

from __future__ import annotations

from audiodata.export.base import (
    AUDIO_FORMATS,
    EVAL_SPLITS,
    FORMS,
    TARGETS,
    DestinationNotEmpty,
    ExportError,
    ExportResult,
    safe_name,
)
from audiodata.export.msswift import SWIFT_COMMANDS, swift_hints
from audiodata.export.run import export
from audiodata.rules.export_rules import SWIFT_TOOL_PROMPT, TARGET_RULES

__all__ = [
    "AUDIO_FORMATS",
    "EVAL_SPLITS",
    "FORMS",
    "SWIFT_COMMANDS",
    "SWIFT_TOOL_PROMPT",
    "TARGETS",
    "TARGET_RULES",
    "DestinationNotEmpty",
    "ExportError",
    "ExportResult",
    "export",
    "safe_name",
    "swift_hints",
]
