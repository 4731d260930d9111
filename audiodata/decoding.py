"""The decoding contract for what audiodata publishes: every clip decodes the same through every path.

Users fight ``datasets``/torchcodec version changes when they load audio: ``datasets`` 4 moved Audio
decoding to torchcodec (which needs FFmpeg's libraries), earlier versions used soundfile/librosa and
returned a dict. What we store is plain FLAC (or WAV) at one rate, mono, with the ``pcm_hash`` of its
16-bit PCM in ``audio_info``, so:

- :func:`open` (``audiodata.open``) yields the records of a converted dataset, a local folder or a Hub
  dataset id, with each clip decoded by soundfile alone (no torchcodec, no FFmpeg) to a float32 numpy
  array and its sampling rate: the shape ``datasets`` gave before version 4, for any consumer.
- :data:`DECODERS` are the paths a user may decode through (soundfile, the one :func:`open` uses; and
  ``datasets``' own ``Audio`` decoding, where it can run), and :func:`decoder_problems` decodes every
  clip through each available one and compares the PCM with the stored ``pcm_hash``: ``audiodata
  verify --decoders``.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from audiodata.dataset import ConvertedDataset, DatasetError, ShardEntry, verify_hint
from audiodata.errors import UsageError

#: A Hub dataset id: owner/name.
HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")


# -- decoding paths -----------------------------------------------------------------------------


def decode_soundfile(blob: bytes) -> tuple[np.ndarray, int]:
    """Stored clip bytes -> (float32 samples, sampling rate) through libsndfile: mono is 1-D, more channels
    are (samples, channels). The path :func:`open` decodes through."""
    import soundfile as sf

    array, rate = sf.read(io.BytesIO(blob), dtype="float32", always_2d=False)
    return array, int(rate)


def decode_datasets(blob: bytes) -> tuple[np.ndarray, int]:
    """Stored clip bytes -> (float32 samples, sampling rate) through ``datasets.Audio`` as the installed
    version decodes (torchcodec from ``datasets`` 4, a dict with ``array`` before); never resampled."""
    import datasets

    decoded = datasets.Audio(decode=True).decode_example({"bytes": blob, "path": None})
    if isinstance(decoded, dict):  # datasets < 4
        return np.asarray(decoded["array"], dtype=np.float32), int(decoded["sampling_rate"])
    samples = decoded.get_all_samples()  # torchcodec AudioSamples: data is (channels, samples)
    data = samples.data.numpy()
    return (data[0] if data.shape[0] == 1 else data.T).astype(np.float32, copy=False), int(samples.sample_rate)


@cache
def _datasets_decodes() -> str | None:
    """None when ``datasets`` can decode audio here, else why not."""
    try:
        import datasets
    except ImportError:
        return "datasets is not installed"
    if int(datasets.__version__.split(".")[0]) < 4:
        return None
    try:
        import torchcodec.decoders  # noqa: F401  (loads FFmpeg's libraries: fails without them)
    except Exception as exc:  # ImportError, or torchcodec's RuntimeError naming the FFmpeg libraries it could not load
        return f"datasets {datasets.__version__} decodes audio with torchcodec, which does not load here ({type(exc).__name__})"
    return None


@dataclass(frozen=True)
class Decoder:
    """One way a user may decode a stored clip, and whether it can run here."""

    name: str
    decode: Callable[[bytes], tuple[np.ndarray, int]]
    unavailable: Callable[[], str | None] = lambda: None  # None when it runs here, else why not


DECODERS: dict[str, Decoder] = {
    "soundfile": Decoder("soundfile", decode_soundfile),
    "datasets": Decoder("datasets", decode_datasets, _datasets_decodes),
}


def available_decoders() -> dict[str, str | None]:
    """Every decoding path: None where it runs here, else the reason it does not."""
    return {name: d.unavailable() for name, d in DECODERS.items()}


def pcm16(array: np.ndarray) -> np.ndarray:
    """float samples in [-1, 1) back to the 16-bit PCM they were decoded from (exact for 16-bit sources)."""
    return np.clip(np.round(np.asarray(array, dtype=np.float64) * 32768.0), -32768, 32767).astype("<i2")


def decoded_hash(decoder: Decoder, blob: bytes) -> tuple[str, int, int]:
    """(``pcm_hash`` of the PCM ``decoder`` gives, its sampling rate, its channels) for stored clip bytes."""
    from audiodata.audio.transform import pcm_hash

    array, rate = decoder.decode(blob)
    return pcm_hash(pcm16(array)), rate, 1 if array.ndim == 1 else array.shape[1]


def decoder_problems(
    ds: ConvertedDataset, decoders: list[str], on_row: Callable[[], None] | None = None
) -> Iterator[tuple[str, str, str]]:
    """Decode every clip of ``ds`` through each of ``decoders`` and compare with the stored ``pcm_hash`` and
    rate: ``(code, where, message)`` for each disagreement (V018) and each clip a decoder fails on (V019).
    Damage the plain checks already report (a shard that does not read) is left to them."""
    paths = [DECODERS[name] for name in decoders]
    for entry in ds.shards():
        row = 0
        try:
            for batch in ds.shard_batches(entry, ["audios", "audio_info"], 32):
                for clips, infos in zip(batch.column("audios").to_pylist(), batch.column("audio_info").to_pylist(), strict=True):
                    for c, (clip, meta) in enumerate(zip(clips or [], infos or [], strict=False)):
                        blob = (clip or {}).get("bytes")
                        if blob:  # no bytes: V008
                            yield from _compare(paths, blob, meta or {}, f"{entry.file} row {row} audios[{c}]")
                    row += 1
                    if on_row is not None:
                        on_row()
        except (DatasetError, KeyError):
            continue  # a shard that does not read, or lacks the audio columns: V002/V005 say so


def _compare(paths: list[Decoder], blob: bytes, meta: dict[str, Any], where: str) -> Iterator[tuple[str, str, str]]:
    stored, rate = meta.get("pcm_hash"), meta.get("sampling_rate")
    for decoder in paths:
        try:
            digest, got_rate, channels = decoded_hash(decoder, blob)
        except Exception as exc:  # each library raises its own types for bytes it cannot read
            reason = " ".join(str(exc).split())[:200]
            yield "V019", where, f"does not decode through {decoder.name}: {type(exc).__name__}: {reason}"
            continue
        if digest != stored or got_rate != rate or channels != 1:
            yield (
                "V018",
                where,
                f"{decoder.name} decodes it to pcm_hash {digest} at {got_rate} Hz, {channels} channel(s); "
                f"audio_info says {stored} at {rate} Hz, mono",
            )


# -- audiodata.open ----------------------------------------------------------------------------


class AudioRecords:
    """The records of one config and split of a converted dataset, each clip decoded by soundfile.

    Iterating yields each row as a dict (every stored column), with ``audios`` a list of
    ``{"array": float32 numpy array, "sampling_rate": int, "path": str}``, one per ``<audio>`` marker,
    in order; shards are streamed a few rows at a time."""

    def __init__(self, dataset: ConvertedDataset, config: str, split: str, columns: list[str] | None = None) -> None:
        self.dataset, self.config, self.split = dataset, config, split
        self.columns = None if columns is None else list(dict.fromkeys([*columns, "audios"]))

    @property
    def sampling_rate(self) -> int:
        return self.dataset.sample_rate

    def __len__(self) -> int:
        return sum(s.rows for s in self.dataset.shards(self.config, self.split))

    def __repr__(self) -> str:
        return f"AudioRecords({str(self.dataset.root)!r}, config={self.config!r}, split={self.split!r}, rows={len(self)})"

    def __iter__(self) -> Iterator[dict[str, Any]]:
        row = 0
        current: ShardEntry | None = None
        for entry, batch in self.dataset.iter_batches(self.columns, 16, self.config, self.split):
            if entry != current:
                current, row = entry, 0
            for record in batch.to_pylist():
                record["audios"] = [self._clip(a, entry, row, c) for c, a in enumerate(record.get("audios") or [])]
                yield record
                row += 1

    def _clip(self, stored: dict[str, Any] | None, entry: ShardEntry, row: int, c: int) -> dict[str, Any]:
        blob = (stored or {}).get("bytes")
        try:
            if not blob:
                raise ValueError("no embedded audio bytes")
            array, rate = decode_soundfile(blob)
        except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, TypeError for damaged bytes
            raise DatasetError(
                f"shard {entry.file} row {row} audios[{c}] does not decode ({type(exc).__name__}: {exc}); "
                f"{verify_hint(self.dataset.root)}"
            ) from None
        return {"array": array, "sampling_rate": rate, "path": (stored or {}).get("path")}


def open(  # audiodata.open, as datasets has load_dataset: the one way in
    source: str | os.PathLike[str],
    config: str | None = None,
    split: str = "train",
    *,
    columns: list[str] | None = None,
    revision: str | None = None,
    token: str | None = None,
) -> AudioRecords:
    """The records of a converted dataset with every clip decoded by soundfile (float32 numpy, mono).

    ``source``: a folder written by ``audiodata convert``, or the Hub id it was published to (downloaded
    with ``huggingface_hub``: the manifest and card, then only the shards of ``config``/``split``).
    ``config``: needed only when the dataset has several (``sft``, ``dpo``, ``kto``, ``rl``). ``columns``: the
    columns to read (``audios`` always). Raises :class:`DatasetError` for a folder that is not a
    converted dataset, a damaged one or one of a newer format, :class:`UsageError` for a config or split
    it does not have."""
    local = Path(source).expanduser()
    hub = not local.exists() and HUB_ID.fullmatch(str(source)) is not None
    if hub:
        local = _snapshot(str(source), ["manifest.json", "README.md"], revision, token)
    ds = ConvertedDataset.open(local)
    names = list(ds.configs)
    if config is None:
        if len(names) != 1:
            raise UsageError(f"{source} has several configs ({', '.join(names)}): name one, e.g. config={names[0]!r}")
        config = names[0]
    found = ds.find_config(config, exact=True)
    if found is None:
        raise UsageError(f"{source} has no config {config!r} (configs: {', '.join(names) or 'none'})")
    if not ds.shards(found, split):
        raise UsageError(f"{source} config {found!r} has no split {split!r} (splits: {', '.join(ds.splits(found)) or 'none'})")
    if hub:
        _snapshot(str(source), [s.file for s in ds.shards(found, split)], revision, token)
    return AudioRecords(ds, found, split, columns)


def _snapshot(repo_id: str, files: list[str], revision: str | None, token: str | None) -> Path:
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo_id, repo_type="dataset", revision=revision, token=token, allow_patterns=files))


__all__ = [
    "DECODERS",
    "AudioRecords",
    "Decoder",
    "available_decoders",
    "decode_datasets",
    "decode_soundfile",
    "decoded_hash",
    "decoder_problems",
    "open",
    "pcm16",
]
