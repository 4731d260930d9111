"""The ms-swift target: messages + audios JSONL that ms-swift's preprocessor keeps as written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from audiodata.export.base import SWIFT_ROLES, ExportResult, _Audio, conversation
from audiodata.records import Record
from audiodata.writer.schema import meta_text

#: ms-swift 4.6.0 (installed wheel) keeps a row only when it can read it, silently dropping the rest
#: (swift/dataset/preprocessor/core.py:243-254): empty messages (core.py:700-701, 88), roles outside its set
#: (core.py:101), None content (core.py:102), a rejected_response equal to the last reply (core.py:159-161),
#: and, as a file is one table, a row lacking a column other rows have (it reads as None: core.py:156-161).
#: The target's rules (export_rules.TARGET_RULES["ms-swift"]: S002/S007, S001, P001, X201, X202) skip those
#: records before this formatter sees them.


def _swift(rec: Record, audios: list[_Audio], root: Path | None = None) -> dict[str, Any]:
    """One ms-swift row that its preprocessor keeps as written; ``root``: write audio paths absolute under it."""
    msgs = [{"role": SWIFT_ROLES[m.role], "content": m.content} for m in conversation(rec)]
    if rec.system:
        msgs.insert(0, {"role": "system", "content": rec.system})
    obj: dict[str, Any] = {"messages": msgs}
    if rec.kind == "dpo":
        chosen, rejected = (rec.chosen or [])[0], (rec.rejected or [])[0]
        msgs.append({"role": "assistant", "content": chosen.content})
        obj["rejected_response"] = rejected.content
    if rec.kind == "kto":  # ms-swift KTO: the last assistant turn of messages, judged by label
        obj["label"] = rec.label
    if rec.kind == "rl":  # ms-swift GRPO: extra columns go to the ORMs; solution is the one its own ORMs read
        obj.update(solution=rec.answer, choices=rec.choices, task=rec.task or "qa", meta=meta_text(rec.meta))
    obj["audios"] = [str(root / a.rel) if root is not None else a.rel for a in audios]
    if rec.tools:
        obj["tools"] = rec.tools
    obj["id"] = rec.id
    return obj


#: ms-swift's command per record kind (``swift rlhf --rlhf_type`` accepts dpo and kto).
SWIFT_COMMANDS = {
    "sft": "swift sft",
    "dpo": "swift rlhf --rlhf_type dpo",
    "kto": "swift rlhf --rlhf_type kto",
    "rl": "swift rlhf --rlhf_type grpo",
}


def swift_hints(r: ExportResult) -> list[str]:
    """How to train on an ms-swift export: one command per record kind, the train split as ``--dataset``,
    the validation split as ``--val_dataset``. Relative audio paths need ``ROOT_IMAGE_DIR``: ms-swift
    resolves a relative media path against its working folder, then that variable (ms-swift 4.6.0,
    swift/template/vision_utils.py:105-127 ``_check_path``; swift/template/base.py:459-467 for audio)."""
    dest = r.dest.resolve()
    env = f"ROOT_IMAGE_DIR={dest} " if r.relative_paths else ""
    lines = []
    if r.relative_paths:
        lines.append(
            f"audio paths are relative to {dest}: ms-swift reads them from its working folder or from "
            f"$ROOT_IMAGE_DIR, so set ROOT_IMAGE_DIR={dest} (or run swift from that folder)"
        )
    for kind, command in SWIFT_COMMANDS.items():
        train = [f"{dest / f}" for f, (k, split) in r.streams.items() if k == kind and split == "train"]
        val = [f"{dest / f}" for f, (k, split) in r.streams.items() if k == kind and split == "validation"]
        if train:
            tail = f" --val_dataset {' '.join(val)}" if val else ""
            lines.append(f"train with: {env}{command} --dataset {' '.join(train)}{tail}")
    return lines
