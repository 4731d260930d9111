"""Model families behind one small interface: how to load, prompt, tokenize and adapt each.

A family knows its model class, its processor call (``audio=``, never the removed
``audios=``), how a conversation with ``<audio>`` markers becomes its chat template's
content list, and the LoRA target regex that
keeps adapters on the language model and off the audio encoder. Token arithmetic
(audio tokens per clip, the 30 s window) lives in :mod:`audiodata.families`, shared
with lint.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audiodata.families import FAMILIES as TOKEN_MATH
from audiodata.families import ModelFamily
from audiodata.records import AUDIO_MARKER
from trainer.config import ConfigError

LM_PROJECTIONS = r"(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"


@dataclass(frozen=True)
class Family:
    name: str
    model_types: tuple[str, ...]  # config.model_type values that mean this family
    model_class: str  # transformers class to load for training
    projector: str  # module name of the audio->text projector (optional training)
    padding_side_kwarg: bool  # the processor pads left by default (Omni): force right for training
    towers: tuple[str, ...] = ("audio_tower",)  # encoders never trained (frozen in full fine-tuning, kept out of 4-bit)
    layer_classes: tuple[str, ...] = ("Qwen2DecoderLayer", "Qwen2AudioEncoderLayer")  # FSDP wraps each of these

    @property
    def unquantized(self) -> tuple[str, ...]:
        """Modules QLoRA keeps in higher precision: the towers and the projector."""
        return tuple(dict.fromkeys((*self.towers, self.projector.split(".")[0])))

    @property
    def math(self) -> ModelFamily:
        return TOKEN_MATH[self.name]

    def lora_target_regex(self) -> str:
        """LoRA on the language model's attention and MLP only: the audio tower has q/k/v too."""
        return rf".*language_model.*\.{LM_PROJECTIONS}"

    def load(self, path: str, dtype: Any, attn_implementation: str | None, **extra: Any) -> Any:
        """The training class from ``path``; ``extra`` goes to ``from_pretrained`` (quantization, device map)."""
        import transformers

        cls = getattr(transformers, self.model_class)
        kwargs: dict[str, Any] = {"dtype": dtype, **extra}
        if attn_implementation:
            kwargs["attn_implementation"] = attn_implementation
        return cls.from_pretrained(path, **kwargs)

    def load_processor(self, path: str) -> Any:
        """The family's processor; for Qwen2.5-Omni without torchvision (its processor insists on a
        video processor), an audio-only equivalent built from its tokenizer and feature extractor."""
        from transformers import AutoProcessor

        try:
            return AutoProcessor.from_pretrained(path)
        except (OSError, AttributeError, ImportError, ValueError) as exc:
            if self.name != "qwen2.5-omni":
                raise
            print(f"[audiodata] {path}: full processor unavailable ({type(exc).__name__}); using the audio-only one")
            return AudioTextProcessor.from_pretrained(path)

    def training_processor(self, path: str, chat_template: str | None = None) -> Any:
        """The processor as training uses it: ``chat_template`` (a file) replacing the model's, and a pad token
        (Qwen's ``<|endoftext|>``, else EOS) when the tokenizer has none. The trainer and ``audiodata cache``
        both load it here, so a cache is made with exactly the processor that trains."""
        processor = self.load_processor(path)
        template = read_chat_template(chat_template)
        if template:
            processor.chat_template = template
        tok = processor.tokenizer
        if tok.pad_token is None:
            tok.pad_token = "<|endoftext|>" if "<|endoftext|>" in tok.get_vocab() else tok.eos_token
        return processor

    def conversation(
        self, messages: list[dict[str, str]], system: str | None, windows: list[int] | None = None
    ) -> list[dict[str, Any]]:
        """Our ``{role, content}`` turns with ``<audio>`` markers -> the template's content lists.
        ``windows[k]``: how many audio segments the k-th marker stands for (a long clip split in windows)."""
        conv: list[dict[str, Any]] = []
        if system:
            conv.append({"role": "system", "content": [{"type": "text", "text": system}]})
        marker = 0
        for m in messages:
            parts: list[dict[str, Any]] = []
            for k, piece in enumerate(m["content"].split(AUDIO_MARKER)):
                if k:
                    n = windows[marker] if windows is not None and marker < len(windows) else 1
                    parts += [{"type": "audio"} for _ in range(n)]
                    marker += 1
                if piece:
                    parts.append({"type": "text", "text": piece})
            role = {"function_call": "assistant", "tool": "user"}.get(m["role"], m["role"])
            conv.append({"role": role, "content": parts})
        return conv

    def render(self, processor: Any, conv: list[dict[str, Any]], add_generation_prompt: bool) -> str:
        return processor.apply_chat_template(conv, tokenize=False, add_generation_prompt=add_generation_prompt)

    def process(self, processor: Any, text: str, audios: list[Any]) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"text": [text], "return_tensors": "pt"}
        if audios:
            kwargs.update(audio=audios, sampling_rate=self.math.sampling_rate)
        if self.padding_side_kwarg:
            kwargs["padding_side"] = "right"
        return dict(processor(**kwargs))

    def features(self, processor: Any, audios: list[Any]) -> dict[str, Any]:
        """The processor's audio features of ``audios`` (``input_features``, ``feature_attention_mask``) and the
        placeholder tokens each clip becomes, from the processor's own call on a text of bare placeholders
        (no second copy of its feature extraction): ``(features, audio_token_counts)``."""
        token = processor.tokenizer.convert_ids_to_tokens(self.audio_token_id(processor))
        enc = self.process(processor, token * len(audios), audios)
        return {k: enc[k] for k in ("input_features", "feature_attention_mask") if k in enc}

    def audio_token_id(self, processor: Any) -> int:
        tok = processor.tokenizer
        token = getattr(processor, "audio_token", None) or getattr(tok, "audio_token", None) or "<|AUDIO|>"
        return int(tok.convert_tokens_to_ids(token))

    def audio_token_counts(self, enc: dict[str, Any]) -> list[int]:
        """Tokens each clip's placeholder expanded to, from its mel frames (both processors' formula)."""
        mask = enc.get("feature_attention_mask")
        if mask is None:
            return []
        return [((int(n) - 1) // 2 + 1 - 2) // 2 + 1 for n in mask.sum(-1).tolist()]


FAMILIES: dict[str, Family] = {
    "qwen2-audio": Family("qwen2-audio", ("qwen2_audio",), "Qwen2AudioForConditionalGeneration", "multi_modal_projector", False),
    "qwen2.5-omni": Family(
        "qwen2.5-omni",
        ("qwen2_5_omni", "qwen2_5_omni_thinker"),
        "Qwen2_5OmniThinkerForConditionalGeneration",
        "audio_tower.proj",
        True,
        ("audio_tower", "visual"),
        ("Qwen2_5OmniDecoderLayer", "Qwen2_5OmniAudioEncoderLayer"),
    ),
}


def get_family(name: str) -> Family:
    if name not in FAMILIES:
        raise ConfigError(f"unsupported model family {name!r}; supported: {', '.join(FAMILIES)}")
    return FAMILIES[name]


def detect_family(model_path: str) -> Family:
    """The family of a checkpoint, from its config's ``model_type`` (local path or Hub id)."""
    from transformers import AutoConfig

    try:
        cfg = AutoConfig.from_pretrained(model_path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the model config of {model_path}: {exc}") from None
    for fam in FAMILIES.values():
        if cfg.model_type in fam.model_types:
            return fam
    raise ConfigError(
        f"{model_path} is a {cfg.model_type!r} model; the trainer supports {', '.join(FAMILIES)} (pass --family to force one)"
    )


def module_is_language_model(name: str) -> bool:
    """True for modules of the language model (where LoRA belongs), False for the audio/vision towers."""
    return bool(re.search(r"language_model", name)) and not re.search(r"audio_tower|visual", name)


def read_chat_template(path: str | None) -> str | None:
    return Path(path).read_text(encoding="utf-8") if path else None


class AudioTextProcessor:
    """What a Qwen2.5-Omni processor does for text + audio, without its image/video parts.

    Features: the Whisper extractor padded to 30 s with its attention mask (``feature_attention_mask``);
    each ``<|AUDIO|>`` expands to ``((L-1)//2+1-2)//2+1`` tokens for a clip of L mel frames, exactly the
    count the thinker's audio tower produces.
    """

    audio_token = "<|AUDIO|>"

    def __init__(self, tokenizer: Any, feature_extractor: Any) -> None:
        self.tokenizer, self.feature_extractor = tokenizer, feature_extractor
        self.chat_template = getattr(tokenizer, "chat_template", None)

    @classmethod
    def from_pretrained(cls, path: str) -> AudioTextProcessor:
        from transformers import AutoFeatureExtractor, AutoTokenizer

        return cls(AutoTokenizer.from_pretrained(path), AutoFeatureExtractor.from_pretrained(path))

    def apply_chat_template(self, conversation: list[dict[str, Any]], tokenize: bool = False, **kw: Any) -> Any:
        return self.tokenizer.apply_chat_template(conversation, chat_template=self.chat_template, tokenize=tokenize, **kw)

    def __call__(
        self, text: list[str], audio: list[Any] | None = None, sampling_rate: int = 16000, padding_side: str = "right", **kw: Any
    ) -> dict[str, Any]:
        texts = list(text)
        out: dict[str, Any] = {}
        if audio:
            feats = self.feature_extractor(
                audio, sampling_rate=sampling_rate, padding="max_length", return_attention_mask=True, return_tensors="pt"
            )
            frames = feats["attention_mask"].sum(-1).tolist()
            counts = iter([((n - 1) // 2 + 1 - 2) // 2 + 1 for n in frames])
            expanded = []
            for t in texts:
                parts = t.split(self.audio_token)
                pieces = [parts[0]]
                for rest in parts[1:]:
                    pieces.append(self.audio_token * next(counts) + rest)
                expanded.append("".join(pieces))
            texts = expanded
            out["input_features"] = feats["input_features"]
            out["feature_attention_mask"] = feats["attention_mask"]
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, padding_side=padding_side)
        out.update(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
        return out

    def save_pretrained(self, path: str) -> None:
        self.tokenizer.save_pretrained(path)
        self.feature_extractor.save_pretrained(path)
