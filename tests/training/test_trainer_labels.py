"""Assistant labels placed by character offsets survive tokens that straddle the assistant header.

The tiny tokenizer merges newline runs as Qwen's real vocabulary does ("\\n\\n" is one token), so a reply
that starts with a newline shares its first token with the header: the old header-token match found no
header there and the turn lost its labels without a word.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

pytest.importorskip("trl")


from trainer.collators import IGNORE, AudioCollator, LabelError
from trainer.config import TrainConfig
from trainer.data import load_rows
from trainer.families import get_family
from trainer.tiny import make_tiny_model

os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(scope="module")
def collator(tmp_path_factory: pytest.TempPathFactory) -> AudioCollator:
    from transformers import AutoProcessor

    tiny = make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", family="qwen2-audio")
    return AudioCollator(get_family("qwen2-audio"), AutoProcessor.from_pretrained(tiny))


@pytest.fixture(scope="module")
def audio_row(sample_out) -> dict[str, Any]:
    out, _ = sample_out
    return load_rows(TrainConfig(model="m", data=str(out)), "train")[0]


def conversation(row: dict[str, Any], first: str, second: str) -> dict[str, Any]:
    messages = [
        {"role": "user", "content": "<audio>Say it."},
        {"role": "assistant", "content": first},
        {"role": "user", "content": "And again?"},
        {"role": "assistant", "content": second},
    ]
    return {**row, "id": "rec-7", "messages": messages, "audios": row["audios"][:1]}


def labelled_runs(collator: AudioCollator, enc: dict[str, Any]) -> list[str]:
    tok = collator.processor.tokenizer
    ids, labels = enc["input_ids"], enc["labels"]
    runs, cur = [], []
    for i, (t, lab) in enumerate(zip(ids.tolist(), labels.tolist(), strict=True)):
        if lab != IGNORE:
            assert lab == t
            cur.append(i)
        elif cur:
            runs.append(tok.decode(ids[cur[0] : cur[-1] + 1]))
            cur = []
    if cur:
        runs.append(tok.decode(ids[cur[0] : cur[-1] + 1]))
    return runs


def test_the_tiny_tokenizer_merges_a_reply_newline_into_the_header(collator: AudioCollator):
    tok = collator.processor.tokenizer
    header = [tok.convert_tokens_to_ids("<|im_start|>"), *tok.encode("assistant\n", add_special_tokens=False)]
    ids = tok.encode("<|im_start|>assistant\n\nHello", add_special_tokens=False)
    assert tok.decode(ids[2:3]) == "\n\n"  # one token across the boundary, as with Qwen's vocabulary
    assert ids[: len(header)] != header  # so matching the header's token ids finds no assistant turn here


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("\nIt says hello.", "\n\nStill hello."),  # the merged-newline case, twice
        ("  Two spaces first.", " one space"),
        ("Grüße aus Köln — 你好!", "\n日本語のテキスト"),  # multi-byte characters, split into byte tokens
        ("trailing spaces  ", "\n"),
        ("", "Empty first reply."),
    ],
)
def test_labels_are_exactly_the_assistant_turns(collator: AudioCollator, audio_row: dict[str, Any], first: str, second: str):
    enc = collator.encode_sft(conversation(audio_row, first, second))
    runs = labelled_runs(collator, enc)
    assert len(runs) == 2
    for got, reply in zip(runs, (first, second), strict=True):
        want = reply + "<|im_end|>"
        assert got.endswith(want) and got[: len(got) - len(want)] in ("", "\n")  # at most the header's shared newline
    ids = enc["input_ids"]
    assert not bool((enc["labels"][ids == collator.audio_id] != IGNORE).any())  # audio is never a target
    batch = collator([enc, collator.encode_sft(conversation(audio_row, "ok", "fine"))])  # the per-batch check passes
    assert set(batch) == {"input_ids", "attention_mask", "labels", "input_features", "feature_attention_mask"}


def test_a_reply_starting_with_a_newline_keeps_its_first_token(collator: AudioCollator, audio_row: dict[str, Any]):
    enc = collator.encode_sft(conversation(audio_row, "\nHello.", "Bye."))
    tok = collator.processor.tokenizer
    first = int((enc["labels"] != IGNORE).nonzero()[0])
    assert tok.decode(enc["input_ids"][first : first + 1]) == "\n\n"  # the straddling token is learned
    assert tok.decode(enc["input_ids"][first - 1 : first]) == "assistant"


def test_the_batch_check_fails_loudly_with_the_record_id(collator: AudioCollator, audio_row: dict[str, Any]):
    enc = collator.encode_sft(conversation(audio_row, "Hello.", "Bye."))
    lost = dict(enc, labels=enc["labels"].clone())
    second = (lost["labels"] != IGNORE).nonzero().flatten()[-3:]
    lost["labels"][second] = IGNORE  # the end of the second turn loses its labels
    with pytest.raises(LabelError, match=r"record 'rec-7'.*assistant turn 2"):
        collator([lost])
    leaked = dict(enc, labels=enc["labels"].clone())
    leaked["labels"][3] = leaked["input_ids"][3]  # a system-prompt token becomes a target
    with pytest.raises(LabelError, match=r"record 'rec-7'.*3 labelled spans for 2 assistant turns"):
        collator([leaked])


def test_truncation_keeps_the_check_honest(collator: AudioCollator, audio_row: dict[str, Any]):
    row = conversation(audio_row, "Short.", "A much longer second reply " * 4)
    full = collator.encode_sft(row)
    cut = AudioCollator(collator.family, collator.processor, max_length=len(full["input_ids"]) - 10)
    enc = cut.encode_sft(row)
    assert enc["_truncated"] and len(enc["input_ids"]) == len(full["input_ids"]) - 10
    cut([enc])  # a cut last turn passes
    enc["labels"][-1] = IGNORE
    enc["labels"][-3] = IGNORE  # a hole inside the cut turn does not
    with pytest.raises(LabelError):
        cut([enc])


def test_audio_inside_a_reply_is_never_a_target_and_passes_the_check(collator: AudioCollator, audio_row: dict[str, Any]):
    row = {**conversation(audio_row, "Here it is: <audio> as asked.", "Bye."), "audios": audio_row["audios"][:1] * 2}
    enc = collator.encode_sft(row)
    ids, labels = enc["input_ids"], enc["labels"]
    audio = ids == collator.audio_id
    assert int(audio.sum()) > 0 and not bool((labels[audio] != IGNORE).any())
    learned = collator.processor.tokenizer.decode(ids[(labels != IGNORE)])
    assert learned.startswith("Here it is: Audio 2: <|audio_bos|><|audio_eos|>\n as asked.<|im_end|>")  # as before: text targets
    collator([enc])  # one reply split by a clip still counts as one assistant turn
