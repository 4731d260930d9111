"""Per-family collators: one example in, model inputs out; then a padded batch.

``encode_sft``/``encode_dpo``/``encode_kto`` run per example (in the data loader, parallel with
``dataloader_num_workers``): decode the stored audio once (long clips split, skipped or truncated
by ``long_audio``), render the family's chat template, let the processor expand the audio
placeholders, and build the labels (SFT: assistant spans only, placed by character offsets, see
:mod:`trainer.labels`) or the completion mask (DPO, KTO). ``__call__`` pads a list of encoded examples
into a batch holding only model inputs (TRL forwards every key to ``model(...)``), after checking
that every SFT example's labels are exactly its assistant turns.

Truncation never cuts through an audio placeholder run (that is what makes training
crash with "Audio features and audio tokens do not match"): a too-long example is cut
after its last audio token, and if even that does not fit it is skipped and logged.

Dummy audio (``dummy_audio``, on by default with several processes): a batch without any
clip gets one short silent clip, its placeholder tokens appended to the first row after
its last real token with attention mask 0 and no label (LLaMA-Factory's fake inputs do
the same, ``data/collator.py``). The encoder runs on every rank, so ZeRO-3/FSDP gather its
weights everywhere and DDP sees the projector used; no real token attends to those
positions (causal order and the mask) and none is learned, so the encoder output enters
the loss multiplied by zero: the loss is unchanged and its gradients are exact zeros.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from trainer.data import BATCH_META, META_ID, META_REPEAT, META_ROW, AudioDecodeError, SkipExample, decode_clip
from trainer.families import Family
from trainer.labels import IGNORE, LabelError, assistant_spans, check_labels, span_labels
from trainer.longaudio import split_clip, window_samples

#: Per-example bookkeeping the batch check reads; never handed to the model.
RECORD, LABEL_TEXTS, TRUNCATED = "_record", "_label_texts", "_truncated"
META = (RECORD, LABEL_TEXTS, TRUNCATED)

__all__ = ["IGNORE", "AudioCollator", "LabelError"]
#: The reply columns of a preference example, in the order they are encoded (and cached).
DPO_REPLIES, KTO_REPLIES = ("chosen", "rejected"), ("completion",)
DUMMY_SECONDS = 0.5  # 12 placeholder tokens for Qwen2-Audio: a run of several, never its legacy 1-token path


@dataclass
class AudioCollator:
    family: Family
    processor: Any
    max_length: int | None = None
    system_prompt: str | None = None  # for records without a system prompt
    long_audio: str = "split"  # split | skip | truncate (TrainConfig.long_audio)
    dummy_audio: bool = False  # a silent clip for batches without audio (see the module docstring)
    pad_id: int = field(init=False)
    audio_id: int = field(init=False)
    window: int | None = field(init=False)
    _dummy: tuple[torch.Tensor, dict[str, torch.Tensor]] | None = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        tok = self.processor.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.convert_tokens_to_ids("<|endoftext|>")
        self.pad_id = int(pad)
        self.audio_id = self.family.audio_token_id(self.processor)
        self.window = window_samples(self.family.math)

    # -- per example -----------------------------------------------------------------
    def audios(self, row: dict[str, Any]) -> tuple[list[np.ndarray], list[int]]:
        """The record's clips ready for the processor, and how many segments each marker became."""
        try:
            pcms = [decode_clip(a, self.family.math.sampling_rate) for a in row.get("audios") or []]
        except AudioDecodeError as exc:
            raise SkipExample(f"audio: {exc}") from None
        clips: list[np.ndarray] = []
        windows: list[int] = []
        for k, pcm in enumerate(pcms):
            over = self.window is not None and len(pcm) > self.window
            if over and self.long_audio == "skip":
                rate, window = self.family.math.sampling_rate, self.family.math.window_seconds
                secs = len(pcm) / rate
                raise SkipExample(f"audio {k + 1} is {secs:.1f} s, over the model's {window:.0f} s window (long_audio: skip)")
            pieces = split_clip(pcm, self.window) if over and self.long_audio == "split" else [pcm]
            clips += pieces
            windows.append(len(pieces))
        return clips, windows

    def system(self, row: dict[str, Any]) -> str | None:
        return row.get("system") or self.system_prompt

    def render(self, conv: list[dict[str, Any]], add_generation_prompt: bool) -> str:
        return self.family.render(self.processor, conv, add_generation_prompt)

    def encode_sft(self, row: dict[str, Any]) -> dict[str, Any]:
        enc, ids, labels, texts, _ = self.sft_tokens(row)
        return self.finish_sft(row, enc, ids, labels, texts)

    def sft_tokens(self, row: dict[str, Any]) -> tuple[dict[str, Any], torch.Tensor, torch.Tensor, list[str], list[int]]:
        """Everything of an SFT example before truncation: the processor's output (its audio features), the
        tokens, their labels, the assistant texts the labels must decode to and the tokens each clip became.
        ``encode_sft`` finishes it; ``audiodata cache`` (trainer/cache.py) stores it."""
        audios, windows = self.audios(row)
        conv = self.family.conversation(row["messages"], self.system(row), windows)
        text = self.render(conv, False)
        spans = assistant_spans(self.render, conv, text)
        if spans is None:
            raise SkipExample("the chat template does not render each assistant turn as a continuation of its prompt")
        if not spans:
            raise SkipExample("no assistant tokens to learn from")
        enc = self.family.process(self.processor, text, audios)
        ids = enc["input_ids"][0]
        counts = self.family.audio_token_counts(enc)
        labels = span_labels(self.processor.tokenizer, text, ids, spans, self.audio_id, counts)
        if not bool((labels != IGNORE).any()):
            raise SkipExample("no assistant tokens to learn from")
        return enc, ids, labels, [text[a:b] for a, b in spans], counts

    def finish_sft(
        self, row: dict[str, Any], audio: dict[str, Any], ids: torch.Tensor, labels: torch.Tensor, texts: list[str]
    ) -> dict[str, Any]:
        """The model-ready example: cut to ``max_length`` (:meth:`fit`), the audio features, the batch check's texts."""
        kept, labels = self.fit(ids, labels)
        out = self._example(audio, kept, labels=labels)
        out.update({RECORD: row.get("id"), LABEL_TEXTS: texts, TRUNCATED: len(kept) < len(ids)})
        return out

    def encode_cached(self, row: dict[str, Any]) -> dict[str, Any]:
        """An SFT example from the columns ``audiodata cache`` stored for ``row`` (trainer/cache.py): no template,
        no tokenizer; the audio features from the cache too when it holds them, else from the decoded clips, whose
        audio-token counts must be the cached ones. A row without cache columns is encoded as ``encode_sft`` does."""
        from trainer import cache

        if cache.IDS not in row:
            return self.encode_sft(row)
        audio = self._cached_audio(row)
        ids, labels = cache.tokens(row)
        return self.finish_sft(row, audio, ids, labels, list(row[cache.LABEL_TEXTS]))

    def clip_features(self, row: dict[str, Any]) -> dict[str, Any]:
        """The record's clips (decoded, long ones windowed as :meth:`audios` does) as the processor's features."""
        clips, _ = self.audios(row)
        return self.family.features(self.processor, clips) if clips else {}

    def encode_dpo(self, row: dict[str, Any]) -> dict[str, Any]:
        """Prompt once (its audio expanded once), then prompt+chosen and prompt+rejected sharing that audio."""
        enc, prompt, replies, _ = self.preference_tokens(row, DPO_REPLIES)
        return self.finish_preference(enc, prompt, dict(zip(DPO_REPLIES, replies, strict=True)))

    def encode_kto(self, row: dict[str, Any]) -> dict[str, Any]:
        """Prompt once (its audio expanded once) and the one judged completion, with its boolean label."""
        label = kto_label(row)
        enc, prompt, replies, _ = self.preference_tokens(row, KTO_REPLIES)
        return {**self.finish_preference(enc, prompt, {"completion": replies[0]}), "label": label}

    def preference_tokens(
        self, row: dict[str, Any], names: tuple[str, ...]
    ) -> tuple[dict[str, Any], torch.Tensor, list[torch.Tensor], list[int]]:
        """Everything of a DPO/KTO example before truncation: the processor's output for the prompt (its audio
        features), the prompt's tokens (audio expanded), each reply's tokens (``names``: the row's reply columns)
        and the tokens each clip became. ``finish_preference`` finishes it; ``audiodata cache`` stores it."""
        audios, windows = self.audios(row)
        prompt_conv = self.family.conversation(row["messages"], self.system(row), windows)
        prompt_text = self.render(prompt_conv, True)
        enc = self.family.process(self.processor, prompt_text, audios)
        prompt = enc["input_ids"][0]
        responses = []
        for name in names:
            full = self.render(prompt_conv + self.family.conversation(row[name], None), False)
            if not full.startswith(prompt_text):
                raise SkipExample(f"the chat template does not extend the prompt with the {name} response")
            text = full[len(prompt_text) :].rstrip("\n")
            ids = self.processor.tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"][0]
            responses.append(ids)
        return enc, prompt, responses, self.family.audio_token_counts(enc)

    def finish_preference(self, audio: dict[str, Any], prompt: torch.Tensor, replies: dict[str, torch.Tensor]) -> dict[str, Any]:
        """The model-ready example: the replies cut so prompt + the longest fit ``max_length`` (the prompt, audio
        included, is never cut: an example whose prompt alone is over is skipped), the audio features."""
        longest = max(len(r) for r in replies.values())
        if self.max_length is not None and len(prompt) + longest > self.max_length:
            room = self.max_length - len(prompt)
            if room < 1:
                raise SkipExample(f"the prompt alone is {len(prompt)} tokens (audio included), over max_length {self.max_length}")
            replies = {name: r[:room] for name, r in replies.items()}
        out = self._example(audio, prompt, labels=None)
        out.update({f"{name}_ids": r for name, r in replies.items()})
        return out

    def encode_dpo_cached(self, row: dict[str, Any]) -> dict[str, Any]:
        """A DPO example from the columns ``audiodata cache`` stored for ``row``: as :meth:`encode_cached` does for SFT."""
        from trainer import cache

        if cache.CHOSEN not in row:
            return self.encode_dpo(row)
        audio = self._cached_audio(row)
        replies = {"chosen": cache.ids(row, cache.CHOSEN), "rejected": cache.ids(row, cache.REJECTED)}
        return self.finish_preference(audio, cache.ids(row, cache.IDS), replies)

    def encode_kto_cached(self, row: dict[str, Any]) -> dict[str, Any]:
        """A KTO example from the columns ``audiodata cache`` stored for ``row`` (the label from the row itself)."""
        from trainer import cache

        if cache.COMPLETION not in row:
            return self.encode_kto(row)
        label = kto_label(row)
        audio = self._cached_audio(row)
        replies = {"completion": cache.ids(row, cache.COMPLETION)}
        return {**self.finish_preference(audio, cache.ids(row, cache.IDS), replies), "label": label}

    def _cached_audio(self, row: dict[str, Any]) -> dict[str, Any]:
        """A cached row's audio features: from the cache when it holds them, else from the decoded clips, whose
        audio-token counts must be the cached ones (or the cache is stale). A row the cache refused is skipped."""
        from trainer import cache

        if row.get(cache.SKIP):
            raise SkipExample(row[cache.SKIP])
        if cache.FEATURES in row:
            return cache.features(row)
        audio = self.clip_features(row)
        counts = self.family.audio_token_counts(audio) if audio else []
        if counts != list(row[cache.AUDIO_TOKENS]):
            raise LabelError(
                f"record {row.get('id')!r}: the processor makes {counts} audio tokens, the cache holds "
                f"{list(row[cache.AUDIO_TOKENS])}: the cache is stale; rebuild it with `audiodata cache`"
            )
        return audio

    def fit(self, ids: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cut to ``max_length`` but never inside or before an audio run."""
        if self.max_length is None or len(ids) <= self.max_length:
            return ids, labels
        audio_pos = (ids == self.audio_id).nonzero()
        last = int(audio_pos[-1]) + 1 if len(audio_pos) else 0
        if last > self.max_length:
            raise SkipExample(f"{last} tokens up to the last audio token, over max_length {self.max_length}")
        ids, labels = ids[: self.max_length], labels[: self.max_length]
        if not bool((labels != IGNORE).any()):
            raise SkipExample(f"nothing to learn left within max_length {self.max_length}")
        return ids, labels

    def _example(self, enc: dict[str, Any], ids: torch.Tensor, labels: torch.Tensor | None) -> dict[str, Any]:
        out: dict[str, Any] = {"input_ids": ids}
        if labels is not None:
            out["labels"] = labels
        for key in ("input_features", "feature_attention_mask"):
            if key in enc:
                out[key] = enc[key]
        return out

    # -- batches ---------------------------------------------------------------------
    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        meta = _take_meta(examples)
        if "chosen_ids" in examples[0]:
            batch = self.collate_dpo(examples)
        elif "completion_ids" in examples[0]:
            batch = self.collate_kto(examples)
        else:
            self.check_batch(examples)
            ids = [e["input_ids"] for e in examples]
            labels = [e["labels"] for e in examples]
            seen = [torch.ones_like(x) for x in ids]
            audio = _audio(examples)
            if not audio and self.dummy_audio:
                audio = self.attach_dummy(ids, seen, labels, IGNORE)
            batch = {"input_ids": _pad(ids, self.pad_id), "attention_mask": _pad(seen, 0), "labels": _pad(labels, IGNORE)}
            batch.update(audio)
        if meta is not None:
            meta["dummy_audio"] = self.dummy_audio and not any("input_features" in e for e in examples)
            batch[BATCH_META] = meta
        return batch

    def check_batch(self, examples: list[dict[str, Any]]) -> None:
        """Every example's labelled tokens decode to exactly its assistant turns (cheap; on every batch)."""
        tok = self.processor.tokenizer
        for e in examples:
            if LABEL_TEXTS not in e:
                continue
            problem = check_labels(tok, e["input_ids"], e["labels"], list(e[LABEL_TEXTS]), bool(e[TRUNCATED]), self.audio_id)
            if problem:
                raise LabelError(f"record {e.get(RECORD)!r}: labels are not the assistant turns: {problem}")

    def collate_dpo(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        """2B rows: prompt+chosen for every pair, then prompt+rejected; the audio repeated in the same order."""
        rows, masks = [], []
        for name in ("chosen_ids", "rejected_ids"):
            for e in examples:
                rows.append(torch.cat([e["input_ids"], e[name]]))
                masks.append(torch.cat([torch.zeros_like(e["input_ids"]), torch.ones_like(e[name])]))
        seen = [torch.ones_like(r) for r in rows]
        audio = {k: torch.cat([v, v]) for k, v in _audio(examples).items()}
        if not audio and self.dummy_audio:  # one clip, in the first chosen row only
            audio = self.attach_dummy(rows, seen, masks, 0)
        batch: dict[str, Any] = {
            "input_ids": _pad(rows, self.pad_id),
            "attention_mask": _pad(seen, 0),
            "completion_mask": _pad(masks, 0),
        }
        batch.update(audio)
        for key in ("ref_chosen_logps", "ref_rejected_logps"):
            if key in examples[0]:
                batch[key] = torch.tensor([float(e[key]) for e in examples])
        return batch

    def collate_kto(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """B rows of prompt+completion, and TRL's KL rows: prompt i with the completion of row i-1 (the batch's
        completions rotated by one, as ``DataCollatorForVisionUnpairedPreference`` does). The KL rows keep
        their own prompt, so the audio features are the same for both forwards."""
        completions = [e["completion_ids"] for e in examples]
        batch: dict[str, Any] = {}
        audio = _audio(examples)
        dummy = not audio and self.dummy_audio  # the KL forward takes the same features: both first rows get it
        for prefix, replies in (("", completions), ("KL_", completions[-1:] + completions[:-1])):
            rows, masks = [], []
            for e, reply in zip(examples, replies, strict=True):
                if self.max_length is not None:
                    reply = reply[: max(1, self.max_length - len(e["input_ids"]))]
                rows.append(torch.cat([e["input_ids"], reply]))
                masks.append(torch.cat([torch.zeros_like(e["input_ids"]), torch.ones_like(reply)]))
            seen = [torch.ones_like(r) for r in rows]
            if dummy:
                audio = self.attach_dummy(rows, seen, masks, 0)
            batch[f"{prefix}input_ids"] = _pad(rows, self.pad_id)
            batch[f"{prefix}attention_mask"] = _pad(seen, 0)
            batch[f"{prefix}completion_mask"] = _pad(masks, 0)
        batch["label"] = torch.tensor([bool(e["label"]) for e in examples])
        batch.update(audio)
        return batch


    def attach_dummy(
        self, rows: list[torch.Tensor], seen: list[torch.Tensor], targets: list[torch.Tensor], no_target: int
    ) -> dict[str, Any]:
        """Append the silent clip's placeholder tokens to the first row (unseen, untargeted); its features."""
        ids, feats = self.dummy_clip()
        rows[0] = torch.cat([rows[0], ids])
        seen[0] = torch.cat([seen[0], torch.zeros_like(ids)])
        targets[0] = torch.cat([targets[0], torch.full_like(ids, no_target)])
        return dict(feats)

    def dummy_clip(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The silent clip's tokens and features, made once by the family's own processor (so the
        placeholder count always matches what its encoder returns)."""
        if self._dummy is None:
            rate = self.family.math.sampling_rate
            token = self.processor.tokenizer.convert_ids_to_tokens(self.audio_id)
            enc = self.family.process(self.processor, token, [np.zeros(int(DUMMY_SECONDS * rate), np.float32)])
            feats: dict[str, torch.Tensor] = {k: enc[k] for k in ("input_features", "feature_attention_mask") if k in enc}
            self._dummy = (enc["input_ids"][0], feats)
        return self._dummy


def kto_label(row: dict[str, Any]) -> bool:
    """A KTO row's label, which must be a boolean (anything else: the example is skipped with the reason)."""
    label = row.get("label")
    if not isinstance(label, bool):
        raise SkipExample(f"KTO label must be true or false, got {label!r}")
    return label


def _take_meta(examples: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Remove what encoded examples say about themselves (row, record id, repeat) into one BATCH_META dict."""
    if META_ROW not in examples[0]:
        return None
    meta: dict[str, Any] = {"rows": [], "ids": [], "repeat": []}
    for e in examples:
        meta["rows"].append(int(e.pop(META_ROW)))
        rid = e.pop(META_ID, None)
        meta["ids"].append(None if rid is None else str(rid))
        meta["repeat"].append(bool(e.pop(META_REPEAT, False)))
    return meta


def _pad(seqs: list[torch.Tensor], value: int) -> torch.Tensor:
    width = max(len(s) for s in seqs)
    out = torch.full((len(seqs), width), value, dtype=seqs[0].dtype)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
    return out


def _audio(examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Clips of all examples in order: the model fills the audio placeholders in that order."""
    feats = [e["input_features"] for e in examples if "input_features" in e]
    if not feats:
        return {}
    out = {"input_features": torch.cat(feats)}
    masks = [e["feature_attention_mask"] for e in examples if "feature_attention_mask" in e]
    if masks:
        out["feature_attention_mask"] = torch.cat(masks)
    return out
