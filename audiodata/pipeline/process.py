"""The per-record work, as a pure function of a batch of records.

``process_batch`` resolves, decodes, resamples, measures, encodes and hashes every
audio of every record, runs the audio rules on the measurements, opens and checks the
record's images and videos (``audiodata.visual``, with the same path safety), and
returns rows ready for the writer, or located findings. With ``encode=False`` (lint) it
stops before encoding: same decode, same rules, no output. It holds
no state and touches no output, so it runs the same in this process, in a process
pool, or as a ``map_batches`` stage on a distributed engine such as Ray Data.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from audiodata.audio.analyse import measure
from audiodata.audio.decode import check_header
from audiodata.audio.load import AudioError, AudioSource, describe_ref, open_ref, roots_resolved_once, show_absolute
from audiodata.audio.transform import (
    CODECS,
    convert,
    convert_samples,
    encode,
    identity_hash,
    pcm_hash,
    read_if_stored_form,
    stored_as_is,
)
from audiodata.budget import DEFAULT_CUTOFF, token_counter
from audiodata.dedup.fingerprint import fingerprint
from audiodata.dedup.index import clip_identity
from audiodata.families import get_family
from audiodata.records import Clip, ClipStats, Record
from audiodata.rules.audio_rules import AudioContext
from audiodata.rules.engine import check_audio, keep_enabled
from audiodata.rules.findings import Finding
from audiodata.rules.rate_rules import rate_of
from audiodata.rules.transcript import TranscriptRate
from audiodata.visual import StoredVisual, VisualError, store_visual
from audiodata.writer.schema import meta_text, prompt_column
from audiodata.writer.shards import row_nbytes

MIN_SECONDS = 0.1
PREVIEW_SECONDS = 10.0


@dataclass(frozen=True)
class AudioSettings:
    sample_rate: int = 16000
    codec: str = "flac"
    max_audio_bytes: int = 256 * 2**20
    max_duration: float = 1200.0
    allow_absolute_paths: bool = True
    enabled: frozenset[str] | None = None  # rule codes to report; None: all
    encode: bool = True  # False: analyse only (lint), no stored audio
    model_family: str | None = None  # budget rules and the audio window follow this family
    cutoff_len: int = DEFAULT_CUTOFF
    tokenizer: str | None = None  # a local tokenizer for exact text token counts
    preview: bool = False  # keep a short MP3 excerpt of flagged records (the HTML report)
    fingerprint: bool = False  # acoustic fingerprints for near-duplicate detection (dedup)
    task: str = "auto"  # auto | asr | none: which records the transcript-rate (R) rules measure
    visual: str = "embed"  # images/videos: "embed" their bytes, or keep "refs" (paths relative to the media root)
    absolute_paths: bool = False  # messages name resolved files absolutely (default: relative to the media root)
    allow_remote: tuple[str, ...] = ()  # object-store prefixes media URLs may be fetched from (--allow-remote)
    #: clips are compared only with each other (lint, encode off): hashed by transform.identity_hash; a clip that is
    #: stored always carries its pcm_hash
    own_identity: bool = False


@dataclass
class Processed:
    """The outcome for one record: a row, or the findings that reject it."""

    seq: int
    row: dict[str, Any] | None
    findings: list[Finding] = field(default_factory=list)
    hashes: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    clips: list[ClipStats] = field(default_factory=list)
    preview: dict[str, Any] | None = None
    prints: list[Any] | None = None  # one Fingerprint per clip, with settings.fingerprint
    rate: TranscriptRate | None = None  # the transcript's chars/s, for the dataset-stage R rule
    #: per clip, what the split is keyed on: the recording a segment is cut from, else the clip's PCM hash
    split_keys: list[str] = field(default_factory=list)
    nbytes: int = 0  # the row's writer.shards.row_nbytes, measured here in the worker (0: no row)

    def dedup_clips(self) -> list[tuple[str | None, Any]]:
        """(hash, fingerprint) per clip as dedup compares them: silent clips have no identity."""
        prints = self.prints or [None] * len(self.hashes)
        return [clip_identity(h, fp, c.rms_dbfs) for h, fp, c in zip(self.hashes, prints, self.clips, strict=True)]


def process_batch(batch: list[tuple[int, Record]], settings: AudioSettings) -> list[Processed]:
    with roots_resolved_once():  # the records of a job share their media root: its links resolved once
        return [_process_guarded(seq, rec, settings) for seq, rec in batch]


def _process_guarded(seq: int, rec: Record, settings: AudioSettings) -> Processed:
    """A MemoryError outside the clips (a huge image, the row) still rejects this record only: a worker
    that dies takes its whole batch and the pool with it."""
    try:
        return process_record(seq, rec, settings)
    except MemoryError:
        return Processed(seq, None, [Finding("A016", "out of memory while processing the record", "", rec.source)])


def audio_context(clips: list[ClipStats], settings: AudioSettings) -> AudioContext:
    family = get_family(settings.model_family) if settings.model_family else None
    return AudioContext(clips, family, settings.cutoff_len, token_counter(settings.tokenizer), task=settings.task)


def process_record(seq: int, rec: Record, settings: AudioSettings) -> Processed:
    with show_absolute(settings.absolute_paths):
        return _process_record(seq, rec, settings)


def _process_record(seq: int, rec: Record, settings: AudioSettings) -> Processed:
    clips: list[Clip] = []
    failed: list[Finding] = []  # clips that could not be made
    for ref in rec.audios:
        try:
            clips.append(make_clip(ref, rec.media_root, settings, rec.input_dir))
        except AudioError as exc:
            failed.append(Finding(exc.code, exc.message, ref.field, rec.source))
        except MemoryError:  # one clip the machine cannot hold: that record's reject, never a dead worker
            failed.append(Finding("A016", out_of_memory(ref), ref.field, rec.source))
    findings = list(failed)
    measured = [c.stats for c in clips if c.stats is not None]
    rate = None
    if len(clips) == len(rec.audios):  # the audio rules need every clip
        ctx = audio_context(measured, settings)
        findings += check_audio(rec, ctx, settings.enabled)
        rate = rate_of(rec, ctx)
    visual: dict[str, list[StoredVisual]] = {"images": [], "videos": []}
    for name, refs in (("images", rec.images), ("videos", rec.videos)):
        for ref in refs:
            try:
                visual[name].append(store_visual(ref, name[:-1], rec.media_root, *_visual_args(settings)))
            except VisualError as exc:
                findings.append(Finding(exc.code, exc.message, ref.field, rec.source))
    findings = keep_enabled(findings, settings.enabled)
    if settings.encode and failed and not any(f.is_error for f in findings):
        findings += failed  # --ignore hides them from lint, but no row can be written without its audio
    preview = _preview(clips, findings) if settings.preview and findings else None
    if any(f.is_error for f in findings):
        return Processed(seq, None, findings, clips=measured, preview=preview)
    stats: dict[str, Any] = {
        "clips": len(clips),
        "source_sampling_rates": {str(c.source_sampling_rate): 1 for c in clips},
        "source_formats": {c.source_format: 1 for c in clips},
        "warnings": {f.code: 1 for f in findings},
    }
    stats.update({name: len(v) for name, v in visual.items() if v})
    if rec.metadata is not None:  # which keys the raw corpora's metadata holds, for the card
        stats["metadata_keys"] = {k: 1 for k in rec.metadata}
    row = build_row(rec, clips, settings.codec, visual) if settings.encode else None
    prints = [c.fingerprint for c in clips] if settings.fingerprint else None
    keys = [c.recording or c.pcm_hash for c in clips]
    nbytes = row_nbytes(row) if row is not None else 0
    return Processed(seq, row, findings, [c.pcm_hash for c in clips], stats, measured, preview, prints, rate, keys, nbytes)


def preview_record(rec: Record, settings: AudioSettings) -> dict[str, Any] | None:
    """A preview of a record flagged only once the whole dataset was seen (R005): decoded again,
    since the worker that first decoded it kept no audio."""
    try:
        clips = [make_clip(ref, rec.media_root, settings) for ref in rec.audios]
    except (AudioError, MemoryError):
        return None
    return _preview(clips, [])


def _visual_args(settings: AudioSettings) -> tuple[str, int, bool, bool]:
    return settings.visual, settings.max_audio_bytes, settings.allow_absolute_paths, settings.encode


def _preview(clips: list[Clip], findings: list[Finding]) -> dict[str, Any] | None:
    """The first seconds of the first flagged clip as MP3, for a player in the HTML report."""
    fields = {f.field for f in findings}
    clip = next((c for c in clips if c.stats and c.stats.field in fields and c.pcm is not None), None)
    clip = clip or next((c for c in clips if c.pcm is not None), None)
    if clip is None or clip.pcm is None:
        return None
    pcm = clip.pcm[: int(PREVIEW_SECONDS * clip.sampling_rate)]
    try:
        data, mime = encode(pcm, clip.sampling_rate, "mp3"), "audio/mpeg"
    except (RuntimeError, ValueError):  # libsndfile built without MP3: fall back to lossless
        data, mime = encode(pcm, clip.sampling_rate, "flac"), "audio/flac"
    field_name = clip.stats.field if clip.stats else ""
    return {"mime": mime, "data": data, "field": field_name, "seconds": round(pcm.shape[0] / clip.sampling_rate, 2)}


def out_of_memory(ref: Any) -> str:
    return (
        f"{describe_ref(ref)}: out of memory while decoding it; lower --num-workers or --max-duration, "
        "or split the clip"
    )


def make_clip(ref: Any, media_root: str, settings: AudioSettings, input_dir: str | None = None) -> Clip:
    """Read one reference into a stored clip (measured for the audio rules). Raises AudioError.

    The source is decoded, downmixed and resampled in blocks (:func:`audiodata.audio.transform.convert`):
    the worker holds one block and the mono output, whatever the source's length, rate or channels."""
    label = describe_ref(ref)
    if ref.kind == "array":
        try:
            samples = np.asarray(ref.value, dtype=np.float32).reshape(-1, 1)
            rate = int(ref.sampling_rate)
        except (TypeError, ValueError, OverflowError):
            raise AudioError("A005", f"{label} is not a list of numbers with a sampling rate") from None
        check_header(rate, 1, label, "array audio")
        if samples.shape[0] / rate > settings.max_duration:
            raise AudioError("A011", f"array audio exceeds --max-duration {settings.max_duration:g} s")
        converted = convert_samples(samples, rate, settings.sample_rate, label)
        src = None
    else:
        allow, remote = settings.allow_absolute_paths, settings.allow_remote
        src = open_ref(ref, media_root, settings.max_audio_bytes, allow, input_dir, allow_remote=remote)
        if settings.encode and ref.segment is None:  # a file already in the stored form: read once, decoded and kept
            src = read_if_stored_form(src, settings.sample_rate, settings.codec, settings.max_audio_bytes)
        converted = convert(src, settings.sample_rate, settings.max_duration, ref.segment)
    header, levels, pcm = converted.header, converted.levels, converted.pcm
    if levels.frames == 0:
        raise AudioError("A006", "the audio has no samples")
    seconds = levels.frames / header.sampling_rate
    if seconds < MIN_SECONDS:
        raise AudioError("A007", f"audio is {seconds * 1000:.0f} ms long, under {MIN_SECONDS * 1000:.0f} ms")
    levels.check_finite(label)  # NaN/Inf: the int16 cast is undefined, never store it (A015)
    data = b""
    if settings.encode:  # a source already in the stored form passes through as it is, hash checked (never a segment)
        as_is = (
            stored_as_is(src, header, pcm, settings.sample_rate, settings.codec, settings.max_audio_bytes, decoded_from_data=True)
            if src is not None and ref.segment is None
            else None
        )
        data = as_is if as_is is not None else encode(pcm, settings.sample_rate, settings.codec)
    return Clip(
        data=data,
        codec=settings.codec,
        sampling_rate=settings.sample_rate,
        channels=1,
        num_samples=int(pcm.shape[0]),
        pcm_hash=identity_hash(pcm) if settings.own_identity and not settings.encode else pcm_hash(pcm),
        origin=ref.origin(),
        source_format=header.format,
        source_sampling_rate=header.sampling_rate,
        source_channels=header.channels,
        source_duration=seconds,
        stats=measure(ref, header, levels, pcm),
        pcm=pcm if settings.preview else None,
        fingerprint=fingerprint(pcm, settings.sample_rate) if settings.fingerprint else None,
        recording=recording_key(src, media_root) if ref.segment is not None and src is not None else None,
    )


def recording_key(src: AudioSource, media_root: str) -> str:
    """The identity of the recording a segment is cut from: its file relative to the media root (so the key, and
    the split it decides, do not depend on where the corpus sits), or a hash of inline bytes."""
    if src.path is not None:
        root, path = Path(os.path.realpath(media_root)), Path(os.path.realpath(src.path))
        return "rec:" + (path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path))
    return "rec:" + hashlib.blake2b(src.data or b"", digest_size=16).hexdigest()


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def build_row(rec: Record, clips: list[Clip], codec: str, visual: dict[str, list[StoredVisual]] | None = None) -> dict[str, Any]:
    """One output row. ``images``/``videos`` are always set (empty lists for audio-only records); the
    writer keeps them only in runs that have such columns (see ``writer.schema.Visual``)."""
    ext = CODECS[codec][2]
    stem = _UNSAFE.sub("_", rec.id).strip("._") or "record"
    row: dict[str, Any] = {
        "id": rec.id,
        prompt_column(rec.kind): [m.to_dict() for m in rec.messages],
        "system": rec.system,
        "tools": rec.tools,
        "audios": [{"bytes": c.data, "path": f"{stem}_{k}.{ext}"} for k, c in enumerate(clips)],
        "audio_info": [
            {
                "sampling_rate": c.sampling_rate,
                "channels": c.channels,
                "num_samples": c.num_samples,
                "duration": round(c.duration, 6),
                "pcm_hash": c.pcm_hash,
                "origin": c.origin,
                "source_format": c.source_format,
                "source_sampling_rate": c.source_sampling_rate,
                "source_channels": c.source_channels,
            }
            for c in clips
        ],
        "audio_seconds": round(sum(c.duration for c in clips), 6),
        "source": {"file": rec.source.file, "index": rec.source.index, "line": rec.source.line},
    }
    for name, stored in (visual or {}).items():
        row[name] = [v.cell(f"{stem}_{name[:-1]}{k}") for k, v in enumerate(stored)]
    if rec.metadata is not None:  # kept by the writer in runs with a metadata column (writer.schema.Visual)
        row["metadata"] = json.dumps(rec.metadata, ensure_ascii=False, sort_keys=True, default=str)
    if rec.kind == "dpo":
        row["chosen"] = [m.to_dict() for m in rec.chosen or []]
        row["rejected"] = [m.to_dict() for m in rec.rejected or []]
    elif rec.kind == "kto":
        row["completion"] = [m.to_dict() for m in rec.completion or []]
        row["label"] = rec.label
    elif rec.kind == "rl":  # the prompt only: a reply the input carried is not written (Q005)
        row["answer"] = rec.answer
        row["choices"] = rec.choices
        row["task"] = rec.task or "qa"
        row["meta"] = meta_text(rec.meta)
    return row
