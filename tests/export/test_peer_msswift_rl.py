"""ms-swift's own GRPO data loading against audiodata's RL records, both ways.

``swift rlhf --rlhf_type grpo`` loads a dataset as every ms-swift command does, but with
``remove_unused_columns=False`` (swift/arguments/rlhf_args.py, GRPO branch of ``__post_init__``), so ``solution`` and
every other extra column reach the ORMs (``swift/dataset/preprocessor/core.py`` carries ``solution`` through as
``__#solution``); its trainer then drops a trailing assistant turn (``swift/utils/utils.py`` ``remove_response``).
Here that loader (the installed ms-swift 4.6.0 wheel) reads

* the hand-written ms-swift GRPO rows (tests/fixtures/rl/swift_grpo.jsonl): what ms-swift hands its trainer is what
  audiodata converts (prompt, system, answer = solution, audios);
* audiodata's ``export --to ms-swift`` of the converted RL dataset: every row kept, its prompt, ``solution``,
  ``choices``, ``task`` and ``meta`` those of the stored record, its audio paths pointing at the exported clips.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from audiodata.export import export
from tests.export.test_peer_msswift import swift_env  # noqa: F401  (fixture: ms-swift's caches in a temporary folder)
from tests.pipeline.test_rl import by_source, converted, corpus, rows  # noqa: F401  (fixtures: the RL corpus, converted)

pytest.importorskip("swift.dataset.preprocessor")
from swift.dataset.dataset_syntax import DatasetSyntax
from swift.utils import remove_response


def grpo_rows(path: Path) -> list[dict[str, Any]]:
    """The rows ms-swift's GRPO command loads from ``path`` (its loader with ``remove_unused_columns=False``), each
    prompt as the trainer sees it (``remove_response``)."""
    syntax = DatasetSyntax.parse(str(path))
    meta = syntax.get_dataset_meta(False)
    loader = meta.loader(num_proc=1, load_from_cache_file=False, strict=False, remove_unused_columns=False)
    out = list(loader.load(syntax, meta, use_hf=False))
    for row in out:
        remove_response(row["messages"])
    return out


def ours(row: dict[str, Any]) -> list[dict[str, str]]:
    """A stored RL row's prompt as ms-swift writes it: the system prompt as a leading system message."""
    system = [{"role": "system", "content": row["system"]}] if row["system"] else []
    return [*system, *row["prompt"]]


def test_ms_swift_grpo_rows_read_alike(corpus: Path, converted: Path, swift_env: None) -> None:  # noqa: F811
    theirs = grpo_rows(corpus / "swift_grpo.jsonl")
    mine = by_source(converted, "swift_grpo.jsonl")
    assert len(theirs) == len(mine) == 3
    for swift, row in zip(theirs, mine, strict=True):
        assert swift["messages"] == ours(row)  # the reply after the prompt: dropped by both
        assert swift["solution"] == row["answer"]
        assert len(swift["audios"]) == len(row["hashes"]) == 1


def test_export_rows_are_kept_by_ms_swift_grpo(converted: Path, tmp_path: Path, swift_env: None) -> None:  # noqa: F811
    dest = tmp_path / "swift"
    result = export(converted, "ms-swift", dest)
    assert result.records_written == 14 and result.records_skipped == 0
    theirs = {r["id"]: r for r in grpo_rows(dest / "default_train.jsonl")}
    stored = rows(converted)
    assert set(theirs) == set(stored)
    for rid, swift in theirs.items():
        row = stored[rid]
        assert swift["messages"] == ours(row)
        assert (swift["solution"], swift["choices"], swift["task"], swift["meta"]) == (
            row["answer"], row["choices"], row["task"], row["meta"],
        )  # fmt: skip
        assert all(Path(p).is_file() for p in swift["audios"]) and len(swift["audios"]) == len(row["hashes"])
