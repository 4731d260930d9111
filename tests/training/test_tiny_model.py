"""trainer.tiny: tiny random Qwen2-Audio / Qwen2.5-Omni models that take the same data as the real ones, offline."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("transformers")
pytest.importorskip("torch")

import huggingface_hub.constants
import torch
from transformers.utils import is_torchvision_available

from tests.conftest import tone
from trainer.tiny import FAMILIES, make_tiny_model

SR = 16000
#: Markers of each family's real chat template, as rendered for a user turn with audio and no system message.
TEMPLATE_MARKERS = {
    "qwen2-audio": [
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n",
        "<|im_start|>user\nAudio 1: <|audio_bos|><|AUDIO|><|audio_eos|>\nAudio 2: <|audio_bos|><|AUDIO|><|audio_eos|>\n",
        "<|im_start|>assistant\nA tone.<|im_end|>\n",
    ],
    "qwen2.5-omni": [
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n",
        "<|im_start|>user\n<|audio_bos|><|AUDIO|><|audio_eos|><|audio_bos|><|AUDIO|><|audio_eos|>",
        "<|im_start|>assistant\nA tone.<|im_end|>\n",
    ],
}
CONVERSATION = [
    {"role": "user", "content": [{"type": "audio"}, {"type": "audio"}, {"type": "text", "text": "Which clip is longer?"}]},
    {"role": "assistant", "content": "A tone."},
]
NO_OMNI_PROCESSOR = "transformers cannot build a Qwen2_5OmniProcessor without torchvision"


@pytest.fixture(scope="module", autouse=True)
def _offline() -> Iterator[None]:
    """No Hub access. huggingface_hub reads HF_HUB_OFFLINE once, at import, so its constant is patched too."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        yield


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory: pytest.TempPathFactory, _offline: None) -> dict[str, Path]:
    """Each family built once for the module."""
    root = tmp_path_factory.mktemp("tiny")
    return {family: make_tiny_model(root / family, family) for family in FAMILIES}


@pytest.fixture(params=FAMILIES)
def tiny(request: pytest.FixtureRequest, tiny_dirs: dict[str, Path]) -> tuple[str, Path]:
    return request.param, tiny_dirs[request.param]


def load_model(family: str, path: Path) -> Any:
    import transformers

    if family == "qwen2-audio":
        return transformers.AutoModelForMultimodalLM.from_pretrained(path).eval()
    return transformers.Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(path).eval()


def load_processor(family: str, path: Path) -> Any:
    if family == "qwen2.5-omni" and not is_torchvision_available():
        pytest.skip(NO_OMNI_PROCESSOR)
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(path)


def n_audio_tokens(n_samples: int) -> int:
    """Audio tokens the real processors give a clip: 100 mel frames/s capped at 30 s, then two stride-2 stages."""
    frames = min(math.ceil(n_samples / 160), 3000)
    return ((frames - 1) // 2 + 1 - 2) // 2 + 1


def test_formula_values() -> None:
    assert n_audio_tokens(int(0.6 * SR)) == 15
    assert n_audio_tokens(int(29.5 * SR)) == 737
    assert n_audio_tokens(30 * SR) == n_audio_tokens(35 * SR) == 750


def test_writes_small_offline_loadable_dir(tiny: tuple[str, Path]) -> None:
    family, path = tiny
    names = {p.name for p in path.iterdir()}
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"} <= names
    assert "README.md" in names
    assert sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) < 1_000_000
    assert "random" in (path / "README.md").read_text().lower()

    model = load_model(family, path)
    expected = "Qwen2AudioForConditionalGeneration" if family == "qwen2-audio" else "Qwen2_5OmniThinkerForConditionalGeneration"
    assert type(model).__name__ == expected
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    config = model.config
    assert config.audio_token_index == tok.convert_tokens_to_ids("<|AUDIO|>")
    assert config.get_text_config().vocab_size == len(tok)
    assert model.generation_config.pad_token_id == tok.pad_token_id == tok.convert_tokens_to_ids("<|endoftext|>")
    assert tok.eos_token == "<|im_end|>" and tok.eos_token_id in model.generation_config.eos_token_id
    if family == "qwen2.5-omni":
        assert config.audio_start_token_id == tok.convert_tokens_to_ids("<|audio_bos|>")
        assert config.audio_end_token_id == tok.convert_tokens_to_ids("<|audio_eos|>")
        assert config.vision_start_token_id == tok.convert_tokens_to_ids("<|vision_bos|>")
        assert config.image_token_index == tok.convert_tokens_to_ids("<|IMAGE|>")
        assert config.video_token_index == tok.convert_tokens_to_ids("<|VIDEO|>")
        assert config.user_token_id == tok.convert_tokens_to_ids("user")
        # the attributes Qwen2_5OmniProcessor.__init__ reads from its tokenizer
        assert (tok.audio_token, tok.image_token, tok.video_token) == ("<|AUDIO|>", "<|IMAGE|>", "<|VIDEO|>")
        assert (tok.audio_bos_token, tok.audio_eos_token) == ("<|audio_bos|>", "<|audio_eos|>")
        assert (tok.vision_bos_token, tok.vision_eos_token) == ("<|vision_bos|>", "<|vision_eos|>")
        assert tok.audio_token_id == config.audio_token_index


def test_two_clips_real_template_and_forward(tiny: tuple[str, Path]) -> None:
    family, path = tiny
    processor = load_processor(family, path)
    model = load_model(family, path)
    clips = [tone(0.6, freq=300.0, seed=1), tone(29.5, freq=440.0, seed=2)]
    rendered = processor.apply_chat_template(CONVERSATION, tokenize=False, add_generation_prompt=False)
    for marker in TEMPLATE_MARKERS[family]:
        assert marker in rendered
    batch = processor(text=[rendered], audio=clips, sampling_rate=SR, return_tensors="pt", padding=True)
    assert set(batch) == {"input_ids", "attention_mask", "input_features", "feature_attention_mask"}
    assert tuple(batch["input_features"].shape) == (2, 128, 3000)
    audio_id = processor.tokenizer.convert_tokens_to_ids("<|AUDIO|>")
    expected = [n_audio_tokens(len(clip)) for clip in clips]
    assert expected == [15, 737]
    assert int((batch["input_ids"] == audio_id).sum()) == sum(expected)
    check_forward(model, dict(batch))


def test_omni_thinker_without_processor(tiny_dirs: dict[str, Path]) -> None:
    """What an Omni collator can do where the processor cannot be built (no torchvision): the same tensors by hand."""
    family = "qwen2.5-omni"
    path = tiny_dirs[family]
    from transformers import AutoFeatureExtractor, AutoTokenizer

    tok, fe = AutoTokenizer.from_pretrained(path), AutoFeatureExtractor.from_pretrained(path)
    rendered = tok.apply_chat_template(CONVERSATION, tokenize=False, add_generation_prompt=False)
    for marker in TEMPLATE_MARKERS[family]:
        assert marker in rendered
    clips = [tone(0.6, seed=1), tone(29.5, seed=2)]
    features = fe(clips, sampling_rate=SR, padding="max_length", return_attention_mask=True, return_tensors="pt")
    lengths = features["attention_mask"].sum(-1)
    counts = [int(n) for n in ((lengths - 1) // 2 + 1 - 2) // 2 + 1]
    assert counts == [15, 737]
    head, *tails = rendered.split(tok.audio_token)
    expanded = head + "".join(tok.audio_token * n + tail for n, tail in zip(counts, tails, strict=True))
    text = tok([expanded], return_tensors="pt")
    assert int((text["input_ids"] == tok.audio_token_id).sum()) == 15 + 737
    batch = {**text, "input_features": features["input_features"], "feature_attention_mask": features["attention_mask"]}
    check_forward(load_model(family, path), batch)


def check_forward(model: Any, batch: dict[str, Any]) -> None:
    with torch.no_grad():
        out = model(**batch, labels=batch["input_ids"])
    assert torch.isfinite(out.loss)
    assert tuple(out.logits.shape) == (1, batch["input_ids"].shape[1], model.config.get_text_config().vocab_size)


def test_long_clip_truncated_like_real_model(tiny: tuple[str, Path]) -> None:
    family, path = tiny
    processor = load_processor(family, path)
    text = "<|im_start|>user\n<|audio_bos|><|AUDIO|><|audio_eos|>What is it?<|im_end|>\n"
    batch = processor(text=[text], audio=[tone(35.0)], sampling_rate=SR, return_tensors="pt", padding=True)
    assert int(batch["feature_attention_mask"].sum()) == 3000
    assert int((batch["input_ids"] == processor.tokenizer.convert_tokens_to_ids("<|AUDIO|>")).sum()) == 750
    check_forward(load_model(family, path), dict(batch))


def test_tokenizer_round_trip_and_special_tokens(tiny: tuple[str, Path]) -> None:
    family, path = tiny
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    for text in ["Hello, world!", "  spaces\tand\nnewlines ", "naïve café, 你好, emoji 🎧", "user said: assistant"]:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"]
    if family == "qwen2.5-omni":
        specials += ["<|vision_bos|>", "<|vision_eos|>", "<|IMAGE|>", "<|VIDEO|>"]
    for token in specials:
        token_id = tok.convert_tokens_to_ids(token)
        assert isinstance(token_id, int) and token_id >= 256  # an added token, not a byte
        x, y = (tok(c, add_special_tokens=False)["input_ids"] for c in "xy")
        assert tok(f"x{token}y", add_special_tokens=False)["input_ids"] == [*x, token_id, *y]
        assert tok.decode([token_id]) == token
    assert len(tok("<|im_start|>user\n", add_special_tokens=False)["input_ids"]) == 3  # the role is one token


def test_deterministic(tiny: tuple[str, Path], tmp_path: Path) -> None:
    family, path = tiny
    rng_state = torch.random.get_rng_state()
    again = make_tiny_model(tmp_path / "again", family, seed=0)
    assert torch.equal(torch.random.get_rng_state(), rng_state)  # the caller's RNG is left alone
    other = make_tiny_model(tmp_path / "other", family, seed=1)
    weights = (path / "model.safetensors").read_bytes()
    assert (again / "model.safetensors").read_bytes() == weights
    assert (other / "model.safetensors").read_bytes() != weights
    for name in ("config.json", "tokenizer.json", "chat_template.jinja"):
        assert (again / name).read_text() == (path / name).read_text()


def test_rejects_unknown_family(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown family"):
        make_tiny_model(tmp_path, "voxtral")
