"""The canonical record model: one place that says what a training example is.

Every reader turns its dialect into these objects; the rules, the audio stage, the
writer, dedup and the trainer only ever see them. Borrowing lhotse's split between
recordings and supervisions: a :class:`MediaRef` says where an audio (or an image or
video) comes from, a :class:`Clip` is that audio after decoding, and a :class:`Record`
ties ordered lists of audios, images and videos to the conversation that refers to them
through ``<audio>``, ``<image>`` and ``<video>`` markers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

AUDIO_MARKER = "<audio>"
IMAGE_MARKER = "<image>"
VIDEO_MARKER = "<video>"

#: ``sft``: a conversation; ``dpo``: a prompt with a chosen and a rejected response; ``kto``: a prompt
#: with one completion and a boolean label (TRL's unpaired preference format); ``rl``: a prompt with the
#: reference answer a reward function checks the model's own completions against (GRPO: TRL, ms-swift, verl).
RecordKind = Literal["sft", "dpo", "kto", "rl"]
RECORD_KINDS: tuple[str, ...] = ("sft", "dpo", "kto", "rl")

#: The task tags of ``rl`` records that the rules know how to check (``Record.task``); any other string is a
#: user's own tag, kept as written.
RL_TASKS: tuple[str, ...] = ("mcq", "asr", "qa", "caption", "translate")

#: Canonical conversation roles. ``system`` lives in :attr:`Record.system`; a system
#: turn left inside ``messages`` is a structural error the rules report.
ROLES = ("user", "assistant", "tool", "function_call")
PROMPT_ROLES = ("user", "tool")
RESPONSE_ROLES = ("assistant", "function_call")


@dataclass(frozen=True, slots=True)
class SourceLoc:
    """Where a record came from: the input file as given, its 0-based position in
    that file and the 1-based line on which it starts; inputs without lines (a tar, a
    Parquet file, a Hub dataset) name the ``member`` instead: a tar member, ``row 12``."""

    file: str
    index: int
    line: int | None = None
    member: str | None = None

    def __str__(self) -> str:
        where = self.member or (f"line {self.line}" if self.line is not None else f"index {self.index}")
        return f"{self.file}:{where} (record {self.index})"


@dataclass(slots=True)
class Message:
    """One turn. ``content`` is plain text with ``<audio>`` markers kept in place."""

    role: str
    content: str
    field: str = ""  # where the text sits in the input, e.g. "conversations[2].value"
    raw_role: str = ""  # the role as written, when an alias was mapped (for the alias rule and --fix)
    role_field: str = ""  # where the role sits in the input, e.g. "conversations[2].from"

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


MediaRefKind = Literal["path", "base64", "data_uri", "bytes", "array", "url"]


def samples_at(seconds: float, rate: int) -> int:
    """``seconds`` as a sample count at ``rate``, rounded half up after 8 decimals (lhotse's ``compute_num_samples``:
    1.1 s at 16 kHz is 17600 samples, not 17600.000000000004 floored or banker's-rounded)."""
    return math.floor(round(seconds * rate, 8) + 0.5)


@dataclass(frozen=True, slots=True)
class Segment:
    """A part of a longer recording: ``start`` seconds in, ``duration`` seconds long (None: to the end),
    from the given ``channels`` only (None: all, downmixed). Sample positions are seconds x rate rounded half
    up (lhotse's ``compute_num_samples``, and FFmpeg's ``-ss``/``-t``), so the same times cut the same samples
    from every reader.

    The one way every reader (NeMo offsets, lhotse cuts and supervisions, subtitle windows) names a part of a
    file: the audio stage decodes only these samples, by seeking (``audiodata.audio.decode``)."""

    start: float = 0.0
    duration: float | None = None
    channels: tuple[int, ...] | None = None

    @property
    def end(self) -> float | None:
        return None if self.duration is None else self.start + self.duration

    def frames(self, rate: int) -> tuple[int, int | None]:
        """(first frame, frame count or None: to the end) at ``rate``."""
        first = samples_at(self.start, rate)
        return first, None if self.duration is None else samples_at(self.duration, rate)

    def fragment(self) -> str:
        """The W3C media-fragment suffix naming it (``#t=12.5,17``), recorded as the clip's origin."""
        end = "" if self.end is None else f",{self.end:g}"
        return f"#t={self.start:g}{end}"
AudioRefKind = MediaRefKind


@dataclass(slots=True)
class MediaRef:
    """A reference to one audio, image or video as the input wrote it, not yet read.

    ``value`` is a path string, a base64 string, a data URI, raw bytes, or (audio only) a
    list of float samples (``kind == "array"``, with ``sampling_rate``). ``field`` locates
    the reference in the input (``audios[1]``, ``messages[0].content[0].path``). One type
    for every medium, so every reader classifies references with one function
    (``readers.dialects.common.media_ref``) and every stage opens them with one safe loader.
    """

    kind: MediaRefKind
    value: Any
    field: str
    name: str | None = None
    sampling_rate: int | None = None
    declared_duration: float | None = None  # seconds, when the input states it (``duration``)
    segment: Segment | None = None  # only this part of the audio (long recordings: NeMo offsets, lhotse cuts)

    def origin(self) -> str:
        """The original reference as it is recorded in the output: a path (with ``#t=start,end`` for a
        segment), or "inline"."""
        tail = self.segment.fragment() if self.segment is not None else ""
        if self.kind in ("path", "url"):
            return str(self.value) + tail
        return "inline" + tail


#: The audio reference is the general media reference (kept under its first name for callers).
AudioRef = MediaRef


@dataclass(slots=True)
class Record:
    """One training example in canonical form.

    For ``sft`` the ``messages`` are the whole conversation. For ``dpo`` they are the
    prompt (ending on a user turn) and ``chosen``/``rejected`` hold the competing
    responses. For ``kto`` they are the prompt, ``completion`` holds the one response
    and ``label`` says whether it is desirable (True) or not (False). For ``rl`` they are
    the prompt; ``answer`` is the reference a reward checks completions against (for
    multiple choice, the choice's text), ``choices`` the options of a multiple-choice
    question, ``task`` its tag (``RL_TASKS`` or a user's own) and ``meta`` what else the
    input said of it (handed to reward functions as a JSON object). ``completion`` of an
    ``rl`` record holds a reply the input carried after the prompt (ms-swift GRPO rows):
    GRPO discards it, so it is not written, and rule Q005 says so.
    ``images`` and ``videos`` (Omni and vision corpora) follow their ``<image>``/``<video>``
    markers in order, as ``audios`` follow ``<audio>``.
    ``media_root`` is the folder relative media paths resolve against and may not leave; ``input_dir``
    (the input file's own folder, when it lies inside ``media_root``) is where they are looked for next.
    """

    id: str
    kind: RecordKind
    messages: list[Message]
    source: SourceLoc
    audios: list[AudioRef] = field(default_factory=list)
    images: list[MediaRef] = field(default_factory=list)  # in <image> marker order
    videos: list[MediaRef] = field(default_factory=list)  # in <video> marker order
    system: str | None = None
    tools: str | None = None
    chosen: list[Message] | None = None
    rejected: list[Message] | None = None
    completion: list[Message] | None = None
    label: bool | None = None
    media_root: str = "."
    input_dir: str | None = None  # the input file's folder: relative paths missing under media_root are looked for here
    dialect: str = ""
    #: what a raw corpus says beyond the conversation (speaker, language, segment times, NeMo's extra keys, lhotse's
    #: supervisions), kept in the output's ``metadata`` column; None for the chat dialects
    metadata: dict[str, Any] | None = None
    answer: str | None = None  # rl: the reference answer (a multiple-choice answer is the choice text)
    choices: list[str] | None = None  # rl: the options of a multiple-choice question, in order (A, B, ...)
    task: str | None = None  # rl: "mcq", "asr", "qa", "caption", "translate" or a user's tag
    meta: dict[str, Any] | None = None  # rl: free-form facts about the record (data source, category, ...)
    _texts: list[tuple[str, str]] | None = field(default=None, repr=False, compare=False)

    def texts(self) -> list[tuple[str, str]]:
        """Every text of the record with its field, for text-level rules (computed once: rules
        treat records as read-only)."""
        if self._texts is None:
            out = [(m.field or f"messages[{i}]", m.content) for i, m in enumerate(self.messages)]
            for name, turns in (("chosen", self.chosen), ("rejected", self.rejected), ("completion", self.completion)):
                for i, m in enumerate(turns or []):
                    out.append((m.field or f"{name}[{i}]", m.content))
            self._texts = out
        return self._texts

    def responses(self) -> list[list[Message]]:
        """The response sides the prompt is trained with: one for SFT (inside ``messages``:
        empty here), chosen and rejected for DPO, the completion for KTO."""
        if self.kind == "dpo":
            return [self.chosen or [], self.rejected or []]
        if self.kind == "kto":
            return [self.completion or []]
        return []


@dataclass(frozen=True, slots=True)
class ClipStats:
    """What the audio rules need to know about one decoded clip, measured once at decode.

    Levels are in dBFS of the stored mono PCM; ``clipped_fraction`` counts source samples
    at full scale (before resampling smooths the plateaus); ``declared`` lists the
    durations the input or the container header state, to compare with ``seconds``.
    """

    field: str
    seconds: float
    samples_16k: int
    source_sampling_rate: int
    source_channels: int
    peak_dbfs: float
    rms_dbfs: float
    clipped_fraction: float
    declared: tuple[tuple[str, float], ...] = ()


@dataclass(slots=True)
class Clip:
    """One audio after the audio stage: decoded, mono, resampled once, encoded.

    ``pcm_hash`` is the BLAKE2b-128 of the stored 16-bit PCM, so it survives any
    lossless change of container and can be re-checked from ``data`` alone.
    """

    data: bytes
    codec: str
    sampling_rate: int
    channels: int
    num_samples: int
    pcm_hash: str
    origin: str
    source_format: str
    source_sampling_rate: int
    source_channels: int
    source_duration: float
    stats: ClipStats | None = None
    pcm: Any = None  # the int16 samples, kept only when a preview is wanted
    fingerprint: Any = None  # an acoustic fingerprint (audiodata.dedup), only when dedup asks
    #: the recording a segment was cut from (``rec:`` + its path relative to the media root, or a hash of inline
    #: bytes); None for a whole file. Segments and windows of one recording share it, so they share a split.
    recording: str | None = None

    @property
    def duration(self) -> float:
        return self.num_samples / self.sampling_rate if self.sampling_rate else 0.0
