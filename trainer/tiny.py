"""Tiny random audio language models for smoke runs and tests, built offline in a few seconds.

The real checkpoints are 7B and live on the Hugging Face Hub, which tests and CI cannot reach. A tiny model
with random weights exercises the same code paths as long as everything *around* the weights is real: the
model classes, the processor class, the chat template, the special tokens and the audio front-end. So:

* the tokenizer is a byte-level BPE built here with the ``tokenizers`` library (any text encodes, nothing is
  downloaded), carrying the family's special tokens as single added tokens, in the same order as the real
  vocabulary (``<|endoftext|>`` first, then ``<|im_start|>``, ``<|im_end|>``, ``<|AUDIO|>``, ...);
* the feature extractor is ``WhisperFeatureExtractor`` with the real checkpoint's settings (128 mel bins,
  30 s chunks, 16 kHz, hop 160), so 30 s clips are accepted and longer ones are cut at 30 s (750 audio tokens)
  exactly as with the real model;
* the processor is the family's own class with its real default chat template;
* the model is the family's own class with a tiny config (hidden size 32, 2 layers) whose token ids point at
  the tokenizer's special tokens.

``make_tiny_model(out_dir, family)`` writes all of it with ``save_pretrained`` so the usual loaders work offline:
``AutoProcessor.from_pretrained(out_dir)`` and, for Qwen2-Audio, ``AutoModelForMultimodalLM.from_pretrained(out_dir)``;
for Qwen2.5-Omni the *thinker* (the part that is trained) via
``Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(out_dir)``.

Qwen2.5-Omni caveat: transformers 5.23 cannot build *any* ``Qwen2_5OmniProcessor`` without torchvision (its
``video_processor`` is a mandatory, torchvision-only component, even for audio-only use). Without torchvision the
Omni directory still gets the thinker, the tokenizer (with the real chat template: ``AutoTokenizer``) and the
feature extractor and image processor (``AutoFeatureExtractor``, ``AutoImageProcessor``), but
``AutoProcessor.from_pretrained`` fails there ("Can't load video processor"); the README written next to the
model says which case it is.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:  # torch and transformers are imported lazily: `import trainer.tiny` stays cheap (the CLI lists FAMILIES)
    from transformers import PreTrainedModel, PreTrainedTokenizerBase, WhisperFeatureExtractor

FAMILIES = ("qwen2-audio", "qwen2.5-omni")

#: Real Qwen2-Audio-7B-Instruct special tokens, in vocabulary order (151643, 151644, ...).
_QWEN2_AUDIO_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>")

#: Real Qwen2.5-Omni special tokens, in vocabulary order (151643 ... 151656); the three unused ids between the
#: audio and vision tokens are kept so every token has the same offset from <|endoftext|> as in the real vocabulary.
_QWEN2_5_OMNI_SPECIALS = (
    *_QWEN2_AUDIO_SPECIALS,
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_bos|>",
    "<|vision_eos|>",
    "<|vision_pad|>",
    "<|IMAGE|>",
    "<|VIDEO|>",
)

#: Named multimodal tokens the Omni processor reads from its tokenizer (``tokenizer.audio_token`` etc.).
_QWEN2_5_OMNI_TOKEN_ATTRS = {
    "audio_token": "<|AUDIO|>",
    "audio_bos_token": "<|audio_bos|>",
    "audio_eos_token": "<|audio_eos|>",
    "image_token": "<|IMAGE|>",
    "video_token": "<|VIDEO|>",
    "vision_bos_token": "<|vision_bos|>",
    "vision_eos_token": "<|vision_eos|>",
}

#: Words merged into single BPE tokens so the chat roles are one token each, as in the real vocabulary
#: (the Omni config's ``user_token_id`` is the id of "user").
_MERGED_WORDS = ("user", "assistant", "system")
#: Runs of newlines merged as in the real vocabulary (Qwen's "\n\n" is one token, id 271): a reply that starts
#: with a newline then shares a token with the assistant header, the case label placement must survive.
_MERGED_RUNS = ("\n\n", "\n\n\n")

#: The chat template shipped with Qwen/Qwen2.5-Omni-7B (chat_template.json); transformers has no default for it.
QWEN2_5_OMNI_CHAT_TEMPLATE = (
    "{% set audio_count = namespace(value=0) %}{% set image_count = namespace(value=0) %}"
    "{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: "
    "{% endif %}<|vision_bos|><|IMAGE|><|vision_eos|>"
    "{% elif content['type'] == 'audio' or 'audio' in content or 'audio_url' in content %}"
    "{% set audio_count.value = audio_count.value + 1 %}{% if add_audio_id %}Audio {{ audio_count.value }}: "
    "{% endif %}<|audio_bos|><|AUDIO|><|audio_eos|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_bos|><|VIDEO|><|vision_eos|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

#: Text side of both tiny models. 8192 positions leave room for ten 30 s clips (750 audio tokens each).
_TEXT = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2}
_MAX_POSITIONS = 8192
#: Init std of all weights. LoRA leaves the LM head frozen, and a 32-wide head drawn with the usual 0.02 caps every
#: logit near +-0.6, so a LoRA smoke run barely moves the loss (5.64 -> 5.49 in 30 steps on 4 sample rows). With 0.3
#: the start is a bit above ln(vocab) (~6.5 vs 5.6) and the same run reaches ~3.4.
_INIT_STD = 0.3
#: Whisper-style audio encoder; 1500 source positions = 3000 mel frames = 30 s, as in the real encoders.
_AUDIO = {"d_model": 16, "encoder_layers": 2, "encoder_attention_heads": 4, "encoder_ffn_dim": 32, "num_mel_bins": 128}
_MAX_SOURCE_POSITIONS = 1500


def make_tiny_model(out_dir: str | os.PathLike, family: str = "qwen2-audio", seed: int = 0) -> Path:
    """Write a tiny random model + locally built tokenizer + processor to out_dir, no network.

    The same ``seed`` gives byte-identical weights, so tests can rely on fixed numbers. Returns ``out_dir``.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; expected one of {', '.join(FAMILIES)}")
    import torch

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    specials = _QWEN2_AUDIO_SPECIALS if family == "qwen2-audio" else _QWEN2_5_OMNI_SPECIALS
    token_attrs = {} if family == "qwen2-audio" else _QWEN2_5_OMNI_TOKEN_ATTRS
    tokenizer = _build_tokenizer(specials, token_attrs)
    feature_extractor = _build_feature_extractor()
    # one token in, one id out (transformers types both call forms as int | list[int])
    ids = {tok: cast(int, tokenizer.convert_tokens_to_ids(tok)) for tok in specials}

    # fork_rng keeps the caller's global RNG untouched; manual_seed makes the weights a function of `seed`.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if family == "qwen2-audio":
            model = _build_qwen2_audio(len(tokenizer), ids)
        else:
            model = _build_qwen2_5_omni_thinker(len(tokenizer), ids, cast(int, tokenizer.convert_tokens_to_ids("user")))
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.eos_token_id = [ids["<|im_end|>"], ids["<|endoftext|>"]]
    model.generation_config.bos_token_id = ids["<|endoftext|>"]
    model.save_pretrained(out, safe_serialization=True)

    if family == "qwen2-audio":
        from transformers import Qwen2AudioProcessor

        # chat_template=None selects the class's default, which is the Qwen2-Audio-7B-Instruct template.
        Qwen2AudioProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer).save_pretrained(out)
        processor_note = "`AutoProcessor.from_pretrained(dir)` gives a `Qwen2AudioProcessor`."
    else:
        processor_note = _save_omni_processor(out, tokenizer, feature_extractor)
    _write_readme(out, family, seed, model, ids, processor_note)
    return out


def _build_tokenizer(specials: tuple[str, ...], token_attrs: dict[str, str]) -> PreTrainedTokenizerBase:
    """Byte-level BPE over the 256-symbol ByteLevel alphabet, a few merges, and the special tokens on top.

    Qwen2Tokenizer is the class the real checkpoints use: it builds a ``tokenizers`` BPE with Qwen's
    pre-tokenizer (split regex + ByteLevel, NFC) from the vocab and merges given here.
    """
    from tokenizers import pre_tokenizers
    from transformers import Qwen2Tokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    # Sorted by code point, the ByteLevel alphabet is in the same order as GPT-2/Qwen's first 256 ids.
    vocab = {symbol: i for i, symbol in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    merges: list[tuple[str, str]] = []
    byte_char = bytes_to_unicode()  # byte-level BPE spells "\n" as "Ċ"
    for word in (*_MERGED_WORDS, *("".join(byte_char[b] for b in run.encode()) for run in _MERGED_RUNS)):
        prefix = word[0]
        for char in word[1:]:
            merges.append((prefix, char))
            prefix += char
            vocab.setdefault(prefix, len(vocab))
    for token in specials:  # after the regular tokens, like the real vocabulary
        vocab[token] = len(vocab)
    return Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,  # type: ignore[arg-type]  # transformers says list[str]; tokenizers' BPE takes these pairs
        unk_token=None,  # type: ignore[arg-type]  # transformers says str; None: no unknown token, as in the real vocabulary
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=_MAX_POSITIONS,
        extra_special_tokens=[t for t in specials if t not in ("<|endoftext|>", "<|im_end|>")],
        **token_attrs,
    )


def _build_feature_extractor() -> WhisperFeatureExtractor:
    """The preprocessor_config.json of Qwen2-Audio-7B(-Instruct) and Qwen2.5-Omni-7B: 30 s chunks of 128-bin log-mels."""
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor(
        feature_size=128,
        sampling_rate=16000,
        hop_length=160,
        chunk_length=30,
        n_fft=400,
        padding_value=0.0,
        return_attention_mask=True,
    )


def _text_config(vocab_size: int, ids: dict[str, int], rope: dict[str, Any]) -> dict[str, Any]:
    """The tiny Qwen2 language model both families share; only the rope differs."""
    return {
        "vocab_size": vocab_size,
        **_TEXT,
        "max_position_embeddings": _MAX_POSITIONS,
        "rope_parameters": rope,
        "initializer_range": _INIT_STD,
        "tie_word_embeddings": False,
        "use_sliding_window": False,
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
    }


def _build_qwen2_audio(vocab_size: int, ids: dict[str, int]) -> PreTrainedModel:
    """Qwen2AudioForConditionalGeneration with a 2-layer Qwen2 text model and a 2-layer Whisper-style encoder."""
    from transformers import Qwen2AudioConfig, Qwen2AudioForConditionalGeneration

    config = Qwen2AudioConfig(
        audio_config={
            "model_type": "qwen2_audio_encoder",
            **_AUDIO,
            "max_source_positions": _MAX_SOURCE_POSITIONS,
            "initializer_range": _INIT_STD,
        },
        text_config={"model_type": "qwen2", **_text_config(vocab_size, ids, {"rope_type": "default", "rope_theta": 10000.0})},
        audio_token_index=ids["<|AUDIO|>"],
    )
    return Qwen2AudioForConditionalGeneration(config).eval()


def _build_qwen2_5_omni_thinker(vocab_size: int, ids: dict[str, int], user_token_id: int) -> PreTrainedModel:
    """The Qwen2.5-Omni thinker (audio tower + vision tower + text model), the part that is fine-tuned.

    The vision tower is never used for audio data but the class always builds it. ``mrope_section`` must add
    up to half the head dim (32 / 4 heads / 2 = 4). ``vision_start_token_id`` is not a declared config field
    but ``get_rope_index`` reads it, so it must be set.
    """
    from transformers import Qwen2_5OmniThinkerConfig, Qwen2_5OmniThinkerForConditionalGeneration

    # call-arg: vision_start/end_token_id are not declared fields of this class (see above); it keeps extra keywords
    config = Qwen2_5OmniThinkerConfig(  # type: ignore[call-arg]
        audio_config={
            **_AUDIO,
            "max_source_positions": _MAX_SOURCE_POSITIONS,
            "n_window": 100,
            "output_dim": _TEXT["hidden_size"],
            "initializer_range": _INIT_STD,
        },
        vision_config={
            "depth": 2,
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_heads": 2,
            "in_channels": 3,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 112,
            "fullatt_block_indexes": [1],
            "out_hidden_size": _TEXT["hidden_size"],
            "initializer_range": _INIT_STD,
        },
        text_config=_text_config(vocab_size, ids, {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [1, 1, 2]}),
        audio_token_index=ids["<|AUDIO|>"],
        image_token_index=ids["<|IMAGE|>"],
        video_token_index=ids["<|VIDEO|>"],
        audio_start_token_id=ids["<|audio_bos|>"],
        audio_end_token_id=ids["<|audio_eos|>"],
        vision_start_token_id=ids["<|vision_bos|>"],
        vision_end_token_id=ids["<|vision_eos|>"],
        user_token_id=user_token_id,
        position_id_per_seconds=25,
        seconds_per_chunk=2,
        initializer_range=_INIT_STD,
    )
    return Qwen2_5OmniThinkerForConditionalGeneration(config).eval()


def _save_omni_processor(out: Path, tokenizer: PreTrainedTokenizerBase, feature_extractor: WhisperFeatureExtractor) -> str:
    """Save a Qwen2_5OmniProcessor when torchvision is there, else its torchvision-free parts; say which."""
    from transformers import Qwen2VLImageProcessor
    from transformers.utils import is_torchvision_available

    # Real Omni-7B image settings (min/max pixels); the class defaults patch 14, merge 2, temporal patch 2.
    image_kwargs = {"min_pixels": 3136, "max_pixels": 12845056}
    if is_torchvision_available():
        from transformers import Qwen2_5OmniProcessor, Qwen2VLVideoProcessor

        processor = Qwen2_5OmniProcessor(
            image_processor=Qwen2VLImageProcessor(**image_kwargs),
            video_processor=Qwen2VLVideoProcessor(),
            feature_extractor=feature_extractor,
            tokenizer=tokenizer,
            chat_template=QWEN2_5_OMNI_CHAT_TEMPLATE,
        )
        processor.save_pretrained(out)
        return "`AutoProcessor.from_pretrained(dir)` gives a `Qwen2_5OmniProcessor` (text is padded on the LEFT by default)."
    tokenizer.chat_template = QWEN2_5_OMNI_CHAT_TEMPLATE
    tokenizer.save_pretrained(out)
    processor_dict = {
        "feature_extractor": feature_extractor.to_dict(),
        "image_processor": Qwen2VLImageProcessor(**image_kwargs).to_dict(),
        "processor_class": "Qwen2_5OmniProcessor",
    }
    (out / "processor_config.json").write_text(json.dumps(processor_dict, indent=2, sort_keys=True) + "\n")
    return (
        "NONE: transformers cannot build a `Qwen2_5OmniProcessor` without torchvision (its video processor "
        "is mandatory), and torchvision was not installed when this was built, so `AutoProcessor` fails here. "
        "The tokenizer (with the real chat template, `AutoTokenizer`) and the feature extractor "
        "(`AutoFeatureExtractor`) load on their own; rebuild where torchvision works to get the processor."
    )


def _write_readme(out: Path, family: str, seed: int, model: PreTrainedModel, ids: dict[str, int], processor_note: str) -> None:
    """A model card that no one can mistake for a real checkpoint."""
    n_params = sum(p.numel() for p in model.parameters())
    token_ids = ", ".join(f"`{tok}`={i}" for tok, i in ids.items())
    loader = "transformers.AutoModelForMultimodalLM" if family == "qwen2-audio" else f"transformers.{type(model).__name__}"
    text = f"""# Tiny random {family} model (NOT a real checkpoint)

Random weights, for smoke runs and tests only: its outputs are noise.

* family: `{family}`; class `{type(model).__name__}`; {n_params:,} parameters; seed {seed}; init std {_INIT_STD}
* made offline by `trainer.tiny.make_tiny_model(out_dir, family={family!r}, seed={seed})`
* tokenizer: byte-level BPE built locally with the `tokenizers` library (256 byte symbols + a few merges)
  and the family's special tokens as single tokens: {token_ids}
* feature extractor: `WhisperFeatureExtractor` with the real settings (128 mel bins, 30 s chunks, 16 kHz),
  so clips longer than 30 s are truncated to 750 audio tokens like the real model
* chat template: the real default template of the family
* model: `{loader}.from_pretrained(dir)`
* processor: {processor_note}
"""
    (out / "README.md").write_text(text)


__all__ = ["FAMILIES", "QWEN2_5_OMNI_CHAT_TEMPLATE", "make_tiny_model"]
