"""What audiodata knows about each audio-LM family, without loading any model.

The lint budget rules, the audio-window rule and the trainer share these numbers:
how many tokens a clip expands to, how long a clip the encoder sees before it
truncates, the chat-template overhead and the template's default system prompt.
Formulas follow the processors (see shared research notes, LLaMA-Factory section 2.5).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from audiodata.errors import UsageError


def _whisper_tokens(samples_16k: int) -> int:
    """Qwen2-Audio / Qwen2.5-Omni: mel frames (10 ms hop, capped at 30 s), conv stride 2, pool 2, plus bos/eos."""
    frames = min(math.ceil(samples_16k / 160), 3000)
    if frames <= 0:
        return 2
    n = ((frames - 1) // 2 + 1 - 2) // 2 + 1
    return max(0, n) + 2


def _minicpm_tokens(samples_16k: int) -> int:
    """MiniCPM-o: audio cut into 1 s chunks (never truncated), ~25 tokens each plus start/end tokens."""
    total = 0
    for start in range(0, max(samples_16k, 1), 16000):
        frames = math.ceil(min(16000, samples_16k - start) / 160)
        cnn = (frames - 1) // 2 + 1
        total += max(0, (cnn - 2) // 2 + 1) + 2
    return total


@dataclass(frozen=True)
class ModelFamily:
    name: str
    audio_tokens: Callable[[int], int]  # samples at 16 kHz -> tokens one clip expands to
    window_seconds: float | None  # audio past this is silently cut by the feature extractor
    default_system: str
    llamafactory_template: str
    hub_example: str
    sampling_rate: int = 16000
    # chatml: "<|im_start|>system\n...<|im_end|>\n", "<|im_start|>user\n...<|im_end|>\n<|im_start|>assistant\n", "...<|im_end|>\n"
    system_overhead: int = 5
    user_overhead: int = 8
    assistant_overhead: int = 2


FAMILIES: dict[str, ModelFamily] = {
    f.name: f
    for f in (
        ModelFamily(
            "qwen2-audio",
            _whisper_tokens,
            30.0,
            "You are a helpful assistant.",
            "qwen2_audio",
            "Qwen/Qwen2-Audio-7B-Instruct",
        ),
        ModelFamily(
            "qwen2.5-omni",
            _whisper_tokens,
            30.0,
            "You are Qwen, a virtual human developed by the Qwen Team, Alibaba Group, capable of perceiving auditory and "
            "visual inputs, as well as generating text and speech.",
            "qwen2_omni",
            "Qwen/Qwen2.5-Omni-7B",
        ),
        ModelFamily(
            "minicpm-o",
            _minicpm_tokens,
            None,
            "You are a helpful assistant. You can accept audio and text input and output voice and text.",
            "minicpm_o",
            "openbmb/MiniCPM-o-2_6",
        ),
    )
}

#: The window assumed when no family is named: Whisper-style encoders see 30 s.
DEFAULT_WINDOW = 30.0


def get_family(name: str) -> ModelFamily:
    try:
        return FAMILIES[name]
    except KeyError:
        raise UsageError(f"unknown model family {name!r}; choose one of {', '.join(FAMILIES)}") from None
