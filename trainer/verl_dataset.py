"""A verl dataset class for ``audiodata export --to verl`` Parquet: each prompt's ``audios`` handed to the processor.

verl's ``RLHFDataset`` (``verl/utils/dataset/rl_dataset.py``) turns ``<image>``/``<video>`` markers of the prompt into
``{"type": "image"|"video", ...}`` content parts (``_build_messages``) and returns the row with them as ``raw_prompt``;
its agent loop then collects them (``process_vision_info``) and calls ``processor(text=[template], images=...,
videos=...)``. It has no audio key: ``<audio>`` markers would stay text, and the clips in ``audios`` would never reach
the processor. :class:`AudioRLHFDataset` is the same dataset for audio, in verl's own interface (the constructor
verl's ``create_rl_dataset`` calls, ``__len__``, ``__getitem__`` with ``raw_prompt``, ``index``, ``extra_info``,
``tools_kwargs``, ``interaction_kwargs``), so verl loads it as a custom class::

    data.custom_cls.path=$(python -c "import trainer.verl_dataset as m; print(m.__file__)")
    data.custom_cls.name=AudioRLHFDataset

``raw_prompt`` holds ``{"type": "audio", "audio": waveform}`` parts where the markers were (Qwen2-Audio's and
Qwen2.5-Omni's chat templates render them as their audio placeholders), decoded by audiodata's own decoder at the
processor's sampling rate; :meth:`AudioRLHFDataset.process_audio_info` collects them again (``process_vision_info``'s
counterpart) and :func:`audio_model_inputs` is the processor call an agent loop makes for them
(``processor(text=[template], audio=clips)``: ``input_ids`` with the placeholders expanded, ``input_features``,
``feature_attention_mask``). Prompts longer than ``max_prompt_length`` tokens *with their audio tokens* are left out
as verl leaves out long ones (``filter_overlong_prompts``), each named on stderr.

What this does not do: verl's shipped agent loops (``single_turn_agent_loop.py``) and rollout servers pass images and
videos only, so a verl GRPO run on audio also needs an agent loop that calls :func:`audio_model_inputs` and a rollout
that takes audio. Tested here with a tiny Qwen2-Audio processor and without verl installed (it needs a GPU stack);
never run inside verl in this project.
"""

from __future__ import annotations

import copy
import re
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from audiodata.records import AUDIO_MARKER

#: verl's defaults for the settings this class reads (``config.data`` in verl's trainer config).
DEFAULTS: dict[str, Any] = {
    "prompt_key": "prompt",
    "audio_key": "audios",
    "max_prompt_length": 1024,
    "filter_overlong_prompts": True,
    "need_tools_kwargs": False,
    "sampling_rate": None,  # None: the processor's feature extractor's (16000 for Qwen2-Audio)
}


def _setting(config: Any, key: str) -> Any:
    getter = getattr(config, "get", None)
    value = getter(key, DEFAULTS[key]) if callable(getter) else DEFAULTS[key]
    return DEFAULTS[key] if value is None and key != "sampling_rate" else value


class AudioRLHFDataset(Dataset):
    """verl's ``RLHFDataset`` for audio prompts: ``<audio>`` markers become audio content parts with their clips."""

    def __init__(
        self,
        data_files: str | list[str],
        tokenizer: Any,
        config: Any,
        processor: Any = None,
        max_samples: int = -1,
    ) -> None:
        import datasets

        files = [data_files] if isinstance(data_files, str) else list(data_files)
        self.data_files, self.tokenizer, self.processor, self.config = files, tokenizer, processor, config
        self.prompt_key = _setting(config, "prompt_key")
        self.audio_key = _setting(config, "audio_key")
        self.max_prompt_length = int(_setting(config, "max_prompt_length"))
        self.need_tools_kwargs = bool(_setting(config, "need_tools_kwargs"))
        rate = _setting(config, "sampling_rate")
        fe = getattr(processor, "feature_extractor", None)
        self.sampling_rate = int(rate or getattr(fe, "sampling_rate", 0) or 16000)
        frames = []
        for path in files:
            kind = "json" if str(path).endswith((".json", ".jsonl")) else "parquet"
            ds = datasets.load_dataset(kind, data_files=str(path))["train"]
            if self.audio_key in ds.column_names:  # decoded here, by audiodata's decoder, not by the Audio feature
                ds = ds.cast_column(self.audio_key, datasets.List(datasets.Audio(decode=False)))
            frames.append(ds)
        self.dataframe = datasets.concatenate_datasets(frames)
        if 0 < max_samples < len(self.dataframe):
            self.dataframe = self.dataframe.select(range(max_samples))
        self.dropped: list[tuple[int, str]] = []  # (row, why) of the prompts left out
        if _setting(config, "filter_overlong_prompts"):
            self.dataframe = self._filter_long()

    # -- verl's interface -------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.dataframe)

    def __getitem__(self, item: int) -> dict[str, Any]:
        row: dict[str, Any] = dict(self.dataframe[item])
        row["raw_prompt"] = self._build_messages(row)
        row["dummy_tensor"] = torch.tensor([0], dtype=torch.uint8)  # verl's DataProto needs a tensor
        extra = row.get("extra_info") or {}
        row["extra_info"] = extra
        row["index"] = extra.get("index", 0)
        row["tools_kwargs"] = extra.get("tools_kwargs", {})
        row["interaction_kwargs"] = extra.get("interaction_kwargs", {})
        if extra.get("need_tools_kwargs", self.need_tools_kwargs) and not row["tools_kwargs"]:
            print(f"[audiodata] tools_kwargs is empty for index {row['index']}", file=sys.stderr)
        return row

    @classmethod
    def process_audio_info(cls, messages: list[dict[str, Any]]) -> list[np.ndarray] | None:
        """The clips of ``raw_prompt`` in order (None without any): what the processor's ``audio=`` takes."""
        clips = [
            part["audio"]
            for m in messages
            if isinstance(m.get("content"), list)
            for part in m["content"]
            if isinstance(part, Mapping) and part.get("type") == "audio"
        ]
        return clips or None

    @classmethod
    async def process_vision_info(cls, messages: list[dict[str, Any]], image_patch_size: Any = None, config: Any = None) -> Any:
        """verl's agent loop asks every dataset class for images and videos: an audio prompt has none."""
        return None, None

    # -- building ---------------------------------------------------------------------------------------------------
    def _build_messages(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        """The prompt turns with each ``<audio>`` marker replaced by ``{"type": "audio", "audio": waveform}`` (and the
        text around it as text parts), as verl's ``_build_messages`` does for images; the ``audios`` column is
        consumed. One clip per marker, or ValueError naming the row."""
        messages = copy.deepcopy(list(row[self.prompt_key]))
        stored = row.pop(self.audio_key, None) or []
        if not stored:
            return messages
        clips = [self._decode(a) for a in stored]
        used = 0
        for m in messages:
            content = m.get("content")
            if not isinstance(content, str) or AUDIO_MARKER not in content:
                continue
            parts: list[dict[str, Any]] = []
            for piece in re.split(f"({re.escape(AUDIO_MARKER)})", content):
                if piece == AUDIO_MARKER:
                    if used >= len(clips):
                        raise ValueError(f"row {row.get('extra_info', {}).get('index')}: more {AUDIO_MARKER} markers than clips")
                    parts.append({"type": "audio", "audio": clips[used]})
                    used += 1
                elif piece:
                    parts.append({"type": "text", "text": piece})
            m["content"] = parts
        if used != len(clips):
            raise ValueError(
                f"row {row.get('extra_info', {}).get('index')}: {used} {AUDIO_MARKER} markers for {len(clips)} clips"
            )
        return messages

    def _decode(self, entry: Any) -> np.ndarray:
        from trainer.data import decode_clip

        if isinstance(entry, Mapping) and entry.get("bytes"):
            return decode_clip(dict(entry), self.sampling_rate)
        if isinstance(entry, Mapping) and entry.get("array") is not None:  # already decoded by someone else
            return np.asarray(entry["array"], dtype=np.float32)
        raise ValueError(f"an {self.audio_key} entry without bytes: {str(entry)[:80]}")

    def prompt_tokens(self, item: int) -> int:
        """The prompt's length in tokens with its audio placeholders expanded (processor), or its text alone."""
        row = dict(self.dataframe[item])
        messages = self._build_messages(row)
        if self.processor is not None:
            return int(audio_model_inputs(self.processor, messages, self.sampling_rate)["input_ids"].shape[-1])
        return len(self.tokenizer.apply_chat_template(row[self.prompt_key], add_generation_prompt=True, tokenize=True))

    def _filter_long(self) -> Any:
        keep = []
        for i in range(len(self.dataframe)):
            try:
                n = self.prompt_tokens(i)
            except Exception as exc:  # a clip that does not decode, markers that do not match: named, left out
                self.dropped.append((i, f"{type(exc).__name__}: {exc}"))
                continue
            if n > self.max_prompt_length:
                self.dropped.append((i, f"{n} prompt tokens with its audio, over max_prompt_length {self.max_prompt_length}"))
                continue
            keep.append(i)
        for i, why in self.dropped:
            print(f"[audiodata] verl dataset: row {i} left out: {why}", file=sys.stderr)
        return self.dataframe.select(keep) if len(keep) < len(self.dataframe) else self.dataframe


def audio_model_inputs(processor: Any, messages: list[dict[str, Any]], sampling_rate: int | None = None) -> Any:
    """What an agent loop hands the model for ``raw_prompt``: the chat template rendered with the generation prompt,
    then the processor given the text and the clips (``input_ids`` with the placeholders expanded, ``attention_mask``,
    ``input_features``, ``feature_attention_mask``), as verl's ``apply_chat_template`` does for images."""
    template = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    clips = AudioRLHFDataset.process_audio_info(messages)
    kwargs: dict[str, Any] = {"text": [template], "return_tensors": "pt"}
    if clips:
        rate = sampling_rate or getattr(getattr(processor, "feature_extractor", None), "sampling_rate", 16000)
        kwargs.update(audio=clips, sampling_rate=rate)
    return processor(**kwargs)
