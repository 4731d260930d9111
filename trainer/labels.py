"""Assistant-only labels from character offsets of the rendered chat template, and their check.

Matching the assistant header's token ids (``<|im_start|>assistant\\n``) loses labels silently with a
real BPE vocabulary: Qwen's pre-tokenizer keeps ``\\s*[\\r\\n]+`` together, so a reply that starts with a
newline merges with the header's newline into one ``\\n\\n`` token and the header never matches. So the
spans are found in the *text*: each assistant turn is where the template's rendering of the
conversation up to that turn extends the rendering of the prompt before it (``add_generation_prompt``),
and tokens are labelled when their character offsets (``return_offsets_mapping``) overlap a span.
A token straddling the boundary (that ``\\n\\n``) is labelled: the model learns to emit it.

Every example carries the texts it should learn; the collator checks every batch against them and
raises with the record id when the labelled tokens are not exactly the assistant turns.
"""

from __future__ import annotations

from typing import Any

import torch

IGNORE = -100


class LabelError(RuntimeError):
    """The labelled tokens are not the assistant turns: a template/tokenizer bug, never a data problem."""


def assistant_spans(render: Any, conv: list[dict[str, Any]], text: str) -> list[tuple[int, int]] | None:
    """Character spans ``[start, end)`` of each assistant turn's content and its end-of-turn marker in
    ``text`` (the rendering of ``conv``); None when the template does not render the conversation as
    a continuation of each prompt (such a template cannot be trained turn by turn)."""
    spans: list[tuple[int, int]] = []
    for k, turn in enumerate(conv):
        if turn["role"] != "assistant":
            continue
        before = render(conv[:k], True)  # the prompt the model would be given: "...<|im_start|>assistant\n"
        through = render(conv[: k + 1], False).rstrip()  # up to and including "<|im_end|>"
        if not (text.startswith(before) and text.startswith(through) and len(through) >= len(before)):
            return None
        spans.append((len(before), len(through)))
    return spans


def span_labels(
    tokenizer: Any, text: str, ids: torch.Tensor, spans: list[tuple[int, int]], audio_id: int, audio_counts: list[int]
) -> torch.Tensor:
    """Labels for ``ids`` (the processor's tokens of ``text`` with each audio placeholder expanded to
    ``audio_counts[k]`` tokens): the token id where its characters overlap a span, IGNORE elsewhere."""
    enc = tokenizer(text, return_offsets_mapping=True)
    base, offsets = enc["input_ids"], enc["offset_mapping"]
    counts = iter(audio_counts)
    expanded: list[int] = []
    labels: list[int] = []
    for tok, (s, e) in zip(base, offsets, strict=True):
        if tok == audio_id:
            n = next(counts, None)
            if n is None:
                raise LabelError("more audio placeholders in the text than clips")
            expanded += [tok] * n
            labels += [IGNORE] * n
            continue
        expanded.append(tok)
        labels.append(tok if any(s < b and e > a for a, b in spans) else IGNORE)
    if expanded != ids.tolist():
        raise LabelError(
            f"the processor's tokens differ from the tokenizer's ({len(ids)} vs {len(expanded)} tokens): "
            "labels cannot be placed by character offsets"
        )
    return torch.tensor(labels, dtype=ids.dtype)


def check_labels(
    tokenizer: Any, ids: torch.Tensor, labels: torch.Tensor, expected: list[str], truncated: bool, audio_id: int
) -> str | None:
    """None when the labelled runs of ``ids`` are exactly the ``expected`` assistant texts in order
    (a run may start with whitespace of a token shared with the header; after truncation the last run
    may be cut short; audio placeholders inside a reply are never targets and are left out of both sides);
    otherwise what is wrong."""
    runs = _bridge(_runs(labels != IGNORE), ids, audio_id)
    if len(runs) != len(expected) and not (truncated and len(runs) < len(expected)):
        return f"{len(runs)} labelled spans for {len(expected)} assistant turns"
    audio_token = tokenizer.convert_ids_to_tokens(audio_id)
    for k, (a, b) in enumerate(runs):
        got = tokenizer.decode([t for t in ids[a:b].tolist() if t != audio_id])
        want = expected[k].replace(audio_token, "")
        if truncated and k == len(runs) - 1:
            cut = got.rstrip("\ufffd")  # a multi-byte character cut by the truncation
            if not (want.lstrip().startswith(cut.lstrip()) or cut.endswith(want)):
                return f"assistant turn {k + 1}: labelled {got!r}, not a prefix of {want!r}"
            continue
        if not got.endswith(want) or got[: len(got) - len(want)].strip():
            return f"assistant turn {k + 1}: labelled {got!r}, expected {want!r}"
    return None


def _bridge(runs: list[tuple[int, int]], ids: torch.Tensor, audio_id: int) -> list[tuple[int, int]]:
    """Join runs separated only by audio placeholder tokens (a clip inside a reply)."""
    out: list[tuple[int, int]] = []
    for a, b in runs:
        if out and bool((ids[out[-1][1] : a] == audio_id).all()):
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def _runs(mask: torch.Tensor) -> list[tuple[int, int]]:
    """``[start, end)`` of each run of True in a 1-d mask."""
    out: list[tuple[int, int]] = []
    start = None
    for i, v in enumerate(mask.tolist()):
        if v and start is None:
            start = i
        elif not v and start is not None:
            out.append((start, i))
            start = None
    if start is not None:
        out.append((start, len(mask)))
    return out
