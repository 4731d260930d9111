"""Hostile audio in the audio stage.

- Non-finite samples (NaN, +-Inf, and finite samples that overflow once mixed or resampled) are A015, counted
  and located, never stored as an undefined int16 cast.
- Memory bombs inside both size bounds (long, wide, high-rate sources) are decoded in blocks: memory follows
  one block and the mono output, and the stored PCM is the one-shot conversion's, bit for bit (libsndfile's
  MP3 decoder, whose rounding follows read boundaries, within 1 LSB on long clips).
- A MemoryError on one clip is that record's reject (A016), never a dead worker.
- A file that vanishes or fails to read between resolve and decode is that record's A001/A005, never a traceback.
"""

from __future__ import annotations

import errno
import io
import json
import os
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import soxr

import audiodata
import audiodata.audio.decode as decode_mod
import audiodata.audio.load as load_mod
from audiodata.audio.decode import decode
from audiodata.audio.load import AudioError, AudioSource
from audiodata.audio.transform import _downmix, pcm_hash, quantize, to_pcm16
from audiodata.pipeline.process import AudioSettings, make_clip, process_record
from audiodata.records import MediaRef, Message, Record, SourceLoc
from tests.conftest import tree_bytes, write_jsonl

SETTINGS = AudioSettings()


def signal(seconds: float, rate: int, channels: int = 1, seed: int = 0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(seed)
    x = amp * np.sin(2 * np.pi * 440.0 * t)[:, None] + 0.01 * rng.standard_normal((t.size, channels))
    return x.astype(np.float32)


def write(path: Path, x: np.ndarray, rate: int, **kw: Any) -> Path:
    """Written a second at a time (libsndfile's Vorbis encoder crashes on one huge write)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sf.SoundFile(path, "w", rate, x.shape[1], **kw) as out:
        for i in range(0, x.shape[0], rate):
            out.write(x[i : i + rate])
    return path


def write_m4a(path: Path, x: np.ndarray, rate: int, layout: str) -> Path:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=rate)
        stream.layout = layout
        for i in range(0, x.shape[0], rate):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[i : i + rate].T), format="fltp", layout=layout)
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def ref(value: Any, field: str = "audios[0]", **kw: Any) -> MediaRef:
    if isinstance(value, dict):
        return MediaRef("array", value["array"], field, sampling_rate=value["sampling_rate"])
    return MediaRef("path", str(value), field, **kw)


def clip(path: Path | str, settings: AudioSettings = SETTINGS):
    return make_clip(ref(path), "/", settings)


def error_of(value: Any, root: Path | str = "/", settings: AudioSettings = SETTINGS) -> AudioError:
    with pytest.raises(AudioError) as exc:
        make_clip(ref(value), str(root), settings)
    return exc.value


def one_shot_pcm(path: Path, target: int = 16000) -> np.ndarray:
    """The audio stage before block decoding: one whole read, one downmix, soxr's one-shot resample."""
    x, rate = sf.read(path, dtype="float32", always_2d=True)
    mono = _downmix(x)
    return quantize(soxr.resample(mono, rate, target, quality="HQ") if rate != target else mono)


# ---------------------------------------------------------------- the same PCM, block by block


@pytest.mark.parametrize("rate", [7, 1000, 8000, 11025, 16001, 22050, 44100, 48000, 96000, 192000])
def test_soxr_streaming_is_the_one_shot_resampler_bit_for_bit(rate: int):
    x = (0.3 * np.random.default_rng(rate).standard_normal(min(rate * 3, 300_000))).astype(np.float32)
    expected = soxr.resample(x, rate, 16000, quality="HQ")
    for cut in (1, 777, 4096, 65536, 1 << 17):
        stream = soxr.ResampleStream(rate, 16000, 1, dtype="float32", quality="HQ")
        parts = [stream.resample_chunk(x[i : i + cut]) for i in range(0, x.size, cut)]
        parts.append(stream.resample_chunk(np.zeros(0, np.float32), last=True))
        assert np.array_equal(np.concatenate(parts), expected), cut


# format, subtype, rate, channels: every libsndfile decoder the audio stage meets, in blocks of an odd size
EXACT = [
    ("WAV", "PCM_16", 44100, 2),
    ("WAV", "FLOAT", 48000, 2),
    ("WAV", "PCM_24", 22050, 1),
    ("WAV", "ULAW", 8000, 1),
    ("WAV", "IMA_ADPCM", 16000, 1),
    ("FLAC", "PCM_24", 96000, 6),
    ("OGG", "VORBIS", 44100, 2),
    ("OGG", "OPUS", 48000, 1),
    ("AIFF", "PCM_16", 32000, 2),
    ("W64", "DOUBLE", 16000, 3),
    ("CAF", "ALAC_16", 48000, 1),
]


@pytest.mark.parametrize(("fmt", "subtype", "rate", "channels"), EXACT)
def test_block_decoding_gives_the_one_shot_pcm(tmp_path, monkeypatch, fmt, subtype, rate, channels):
    path = write(tmp_path / f"a.{fmt.lower()}", signal(4.0, rate, channels), rate, format=fmt, subtype=subtype)
    expected = one_shot_pcm(path)
    whole = clip(path)
    assert whole.pcm_hash == pcm_hash(expected)  # under ONE_SHOT_BYTES: one whole read, streamed resampling
    monkeypatch.setattr(decode_mod, "ONE_SHOT_BYTES", 0)  # every source in blocks...
    monkeypatch.setattr(decode_mod, "MAX_BLOCK_FRAMES", 10007)  # ...of an odd size, many boundaries
    streamed = clip(path)
    assert streamed.pcm_hash == pcm_hash(expected)
    assert (streamed.data, streamed.stats) == (whole.data, whole.stats)


def test_a_source_read_whole_is_resampled_in_one_call(tmp_path, monkeypatch):
    """A source read in one call and inside full scale goes through soxr's one-shot resampler (no stream is made);
    one reaching full scale goes block by block, as before. Either way the stored PCM and the measurements are the
    streamed conversion's (every source in blocks of an odd size)."""
    import audiodata.audio.transform as transform_mod

    made: list[tuple[Any, ...]] = []
    real = soxr.ResampleStream

    def stream(*args: Any, **kw: Any) -> Any:
        made.append(args)
        return real(*args, **kw)

    monkeypatch.setattr(transform_mod.soxr, "ResampleStream", stream)
    quiet = write(tmp_path / "quiet.wav", signal(3.0, 44100, 2), 44100, subtype="FLOAT")
    loud = write(tmp_path / "loud.wav", np.clip(signal(3.0, 44100, 2, amp=2.0), -1.0, 1.0), 44100, subtype="FLOAT")
    whole = {name: clip(path) for name, path in (("quiet", quiet), ("loud", loud))}
    assert whole["loud"].stats.clipped_fraction > 0 and whole["quiet"].stats.clipped_fraction == 0
    assert len(made) == 1  # the loud clip's stream only
    monkeypatch.setattr(decode_mod, "ONE_SHOT_BYTES", 0)
    monkeypatch.setattr(decode_mod, "MAX_BLOCK_FRAMES", 10007)
    for name, path in (("quiet", quiet), ("loud", loud)):
        streamed = clip(path)
        assert (streamed.pcm_hash, streamed.data, streamed.stats) == (whole[name].pcm_hash, whole[name].data, whole[name].stats)
    assert len(made) == 3


def test_ffmpeg_sources_are_streamed_to_the_one_shot_pcm(tmp_path):
    """PyAV decodes frame by frame anyway; its frames are gathered into blocks and streamed through soxr."""
    path = write_m4a(tmp_path / "wide.m4a", signal(8.0, 44100, 6), 44100, "5.1")
    whole = decode(AudioSource(path=path, name=path.name), 1200.0)  # the whole source, as before
    expected = quantize(soxr.resample(_downmix(whole.samples), 44100, 16000, quality="HQ"))
    streamed = clip(path)
    assert streamed.source_channels == 6 and streamed.pcm_hash == pcm_hash(expected)
    assert streamed.num_samples == expected.size


def test_long_mp3_in_blocks_is_within_one_lsb(tmp_path, monkeypatch):
    """mpg123 (libsndfile's MP3 decoder) rounds differently across read boundaries: a clip under
    ONE_SHOT_BYTES is read whole (the PCM of earlier versions); a longer one is read in blocks and
    differs from the whole read by at most 1 LSB on a small fraction of its samples."""
    path = write(tmp_path / "long.mp3", signal(60.0, 48000, 1, seed=2), 48000, format="MP3", subtype="MPEG_LAYER_III")
    expected = one_shot_pcm(path)
    assert clip(path).pcm_hash == pcm_hash(expected)
    monkeypatch.setattr(decode_mod, "ONE_SHOT_BYTES", 0)
    streamed = clip(path)
    pcm, _ = sf.read(io.BytesIO(streamed.data), dtype="int16")
    diff = np.abs(pcm.astype(np.int32) - expected.astype(np.int32))
    assert pcm.size == expected.size
    assert diff.max() <= 1
    assert np.count_nonzero(diff) / diff.size < 0.002  # about 0.04% measured (1148 of 3.2M samples on 200 s)


def test_to_pcm16_is_the_streamed_conversion(tmp_path):
    path = write(tmp_path / "a.wav", signal(3.0, 22050, 2), 22050, subtype="PCM_16")
    assert pcm_hash(to_pcm16(decode(AudioSource(path=path, name="a.wav"), 60.0), 16000)) == pcm_hash(one_shot_pcm(path))


# ---------------------------------------------------------------- memory follows the output, not the source


def traced_peak(fn: Any) -> tuple[Any, int]:
    tracemalloc.start()
    try:
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_wide_high_rate_source_is_decoded_in_blocks(tmp_path):
    """8 channels at 96 kHz for 25 s: 73 MiB of float32 once decoded, over ONE_SHOT_BYTES. The whole source
    was held before (plus its mono mix); now one block and the 0.8 MB mono output are."""
    rate, channels, seconds = 96000, 8, 25
    path = write(tmp_path / "wide.flac", signal(seconds, rate, channels), rate, format="FLAC", subtype="PCM_16")
    decoded_bytes = rate * channels * seconds * 4
    assert decoded_bytes > decode_mod.ONE_SHOT_BYTES
    made, peak = traced_peak(lambda: clip(path))
    assert made.num_samples == 16000 * seconds and made.source_channels == channels
    assert peak < decode_mod.BLOCK_BYTES + 8 * 2**20, f"{peak / 2**20:.1f} MiB for a {decoded_bytes / 2**20:.0f} MiB source"


def test_a_wide_ffmpeg_source_holds_no_more_than_a_block(tmp_path):
    path = write_m4a(tmp_path / "wide.m4a", signal(20.0, 48000, 6), 48000, "5.1")
    made, peak = traced_peak(lambda: clip(path))
    assert made.source_channels == 6
    assert peak < decode_mod.BLOCK_BYTES + 8 * 2**20, f"{peak / 2**20:.1f} MiB"


def test_a_low_rate_source_is_upsampled_a_block_at_a_time(tmp_path):
    """At 100 Hz a 131072-frame block is 21M output samples: soxr is fed so each call makes at most 128k."""
    path = write(tmp_path / "slow.wav", signal(600.0, 100, 1), 100, subtype="PCM_16")
    made, peak = traced_peak(lambda: clip(path, AudioSettings(encode=False)))
    assert made.num_samples == 600 * 16000
    assert made.pcm_hash == pcm_hash(one_shot_pcm(path))
    assert peak < 3 * made.num_samples * 2 + 8 * 2**20  # the int16 output (twice while joined), not float32 copies


def test_a_header_rate_no_audio_has_is_a005(tmp_path):
    head = bytearray((write(tmp_path / "a.wav", signal(1.0, 16000), 16000, subtype="PCM_16")).read_bytes())
    head[24:28] = (2**31 - 1).to_bytes(4, "little")  # the fmt chunk's sample rate
    (tmp_path / "fast.wav").write_bytes(bytes(head))
    err = error_of(tmp_path / "fast.wav")
    assert err.code == "A005" and "2147483647 Hz" in err.message


# ---------------------------------------------------------------- non-finite samples: A015


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_in_a_float_wav_are_a015_counted_and_located(tmp_path, bad):
    x = signal(1.0, 16000, 2)
    x[1600:1650, 1] = bad
    err = error_of(write(tmp_path / "bad.wav", x, 16000, subtype="FLOAT"))
    assert err.code == "A015"
    assert err.message == (
        f"{tmp_path / 'bad.wav'}: 50 of 32000 samples are NaN or infinite; the first at 0.100 s (channel 2 of 2, frame 1600)"
    )


def test_non_finite_samples_far_into_a_block_decoded_clip(tmp_path, monkeypatch):
    """Found in a late block, counted through to the end (the count covers every block)."""
    monkeypatch.setattr(decode_mod, "ONE_SHOT_BYTES", 0)
    x = signal(10.0, 44100, 3)
    x[400_000, 2] = np.inf
    x[420_000:420_010, 0] = np.nan
    err = error_of(write(tmp_path / "late.w64", x, 44100, format="W64", subtype="DOUBLE"))
    assert err.code == "A015"
    assert "11 of 1323000 samples are NaN or infinite; the first at 9.070 s (channel 3 of 3, frame 400000)" in err.message


def test_non_finite_array_audio_is_a015():
    err = error_of({"array": [0.1] * 4000 + [float("inf")] + [0.1] * 4000, "sampling_rate": 16000})
    assert err.code == "A015"
    assert err.message == "array audio in audios[0]: 1 of 8001 samples are NaN or infinite; the first at 0.250 s (frame 4000)"


def test_finite_samples_that_overflow_when_mixed_are_a015(tmp_path):
    """3e38 is a finite float32; two channels of it sum past float32's range: the mono mix would be inf."""
    x = np.full((16000, 2), 3e38, np.float32)
    err = error_of(write(tmp_path / "huge.wav", x, 16000, subtype="FLOAT"))
    assert err.code == "A015" and "overflow to infinity when mixed or resampled" in err.message


def test_finite_samples_that_overflow_in_the_resampler_are_a015(tmp_path):
    x = np.full((44100, 1), 3e38, np.float32)
    x[::2] *= -1  # the filter's sums of alternating extremes leave float32's range
    err = error_of(write(tmp_path / "huge.wav", x, 44100, subtype="FLOAT"))
    assert err.code == "A015" and "overflow" in err.message


def test_loud_but_finite_samples_are_stored_clipped_not_a015(tmp_path):
    """The guard fires on non-finite values only: 1e30 is clipped to full scale (A013 reports it)."""
    made = clip(write(tmp_path / "loud.wav", np.full((16000, 1), 1e30, np.float32), 16000, subtype="FLOAT"))
    pcm, _ = sf.read(io.BytesIO(made.data), dtype="int16")
    assert (pcm == 32767).all() and made.stats.clipped_fraction == 1.0


# ---------------------------------------------------------------- MemoryError: A016, the run goes on


def test_a_memory_error_on_one_clip_rejects_that_record_only(tmp_path, monkeypatch):
    from audiodata.audio.transform import PcmSink

    write(tmp_path / "ok.wav", signal(1.0, 16000), 16000, subtype="PCM_16")
    write(tmp_path / "big.wav", signal(1.0, 16000, 2), 16000, subtype="PCM_16")
    real_feed, real_whole = PcmSink.feed, PcmSink.feed_whole

    def feed(self: PcmSink, block: np.ndarray) -> None:
        if self.header.channels == 2:  # the clip the machine cannot hold
            raise MemoryError
        real_feed(self, block)

    def feed_whole(self: PcmSink, samples: np.ndarray, step: int) -> None:
        if self.header.channels == 2:  # ... read in one call
            raise MemoryError
        real_whole(self, samples, step)

    monkeypatch.setattr(PcmSink, "feed", feed)
    monkeypatch.setattr(PcmSink, "feed_whole", feed_whole)
    rec = Record(
        id="r",
        kind="sft",
        messages=[Message("user", "<audio><audio>x", "conversations[0].value"), Message("assistant", "y", "")],
        source=SourceLoc("in.jsonl", 0, 1),
        audios=[ref("ok.wav"), ref("big.wav", "audios[1]")],
        media_root=str(tmp_path),
    )
    out = process_record(0, rec, SETTINGS)
    assert out.row is None
    assert [(f.code, f.field) for f in out.findings] == [("A016", "audios[1]")]
    assert "big.wav: out of memory while decoding it" in out.findings[0].message
    # in a pool of workers (forked: the patch is inherited), the run finishes and accounts for every record
    records = [sft(f"{name}.wav", k) for k, name in enumerate(["ok", "big", "ok", "ok"])]
    write_jsonl(tmp_path / "in.jsonl", records)
    result = audiodata.convert([str(tmp_path / "in.jsonl")], tmp_path / "out", num_workers=2, batch_size=1)
    assert (result.records_written, result.records_rejected) == (3, 1)
    rejects = [json.loads(line) for line in (tmp_path / "out/rejects.jsonl").read_text().splitlines()]
    assert [(r["index"], r["reasons"][0]["code"]) for r in rejects] == [(1, "A016")]


def test_a_memory_error_outside_the_clips_rejects_the_record_only(tmp_path, monkeypatch):
    import audiodata.pipeline.process as process_mod

    write(tmp_path / "ok.wav", signal(1.0, 16000), 16000, subtype="PCM_16")
    rec = Record(
        id="r",
        kind="sft",
        messages=[Message("user", "<audio>x", "conversations[0].value"), Message("assistant", "y", "")],
        source=SourceLoc("in.jsonl", 0, 1),
        audios=[ref("ok.wav")],
        media_root=str(tmp_path),
    )

    def no_memory(*args: Any, **kw: Any) -> Any:
        raise MemoryError

    monkeypatch.setattr(process_mod, "build_row", no_memory)
    (out,) = process_mod.process_batch([(4, rec)], SETTINGS)
    assert (out.seq, out.row, [f.code for f in out.findings]) == (4, None, ["A016"])


def sft(audio: Any, k: int = 0) -> dict[str, Any]:
    turns = [{"from": "human", "value": "<audio>What?"}, {"from": "gpt", "value": f"answer {k}"}]
    return {"conversations": turns, "audios": [audio]}


# ---------------------------------------------------------------- files that vanish or fail to read


class FailingFile:
    """A file whose reads fail with ``err`` after ``after`` successful reads (EIO, a stale NFS handle)."""

    def __init__(self, fh: Any, err: int, after: int) -> None:
        self.fh, self.err, self.left = fh, err, after

    def _tick(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise OSError(self.err, os.strerror(self.err))

    def read(self, size: int = -1) -> bytes:
        self._tick()
        return self.fh.read(size)

    def readinto(self, buf: Any) -> int:
        self._tick()
        return self.fh.readinto(buf)

    def seek(self, *args: int) -> int:
        return self.fh.seek(*args)

    def tell(self) -> int:
        return self.fh.tell()

    def close(self) -> None:
        self.fh.close()


def failing_reads(monkeypatch: pytest.MonkeyPatch, err: int = errno.EIO, after: int = 2) -> None:
    real = load_mod.open_binary
    monkeypatch.setattr(load_mod, "open_binary", lambda *a, **k: FailingFile(real(*a, **k), err, after))


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    write(root / "a.wav", signal(3.0, 16000), 16000, subtype="PCM_16")
    write(root / "a.flac", signal(30.0, 48000, 2), 48000, format="FLAC", subtype="PCM_16")
    write(root / "a.mp3", signal(30.0, 44100), 44100, format="MP3", subtype="MPEG_LAYER_III")
    write_m4a(root / "a.m4a", signal(30.0, 44100, 2), 44100, "stereo")
    return root


@pytest.mark.parametrize("name", ["a.wav", "a.flac", "a.mp3", "a.m4a"])
@pytest.mark.parametrize(("err", "reason"), [(errno.EIO, "Input/output error"), (errno.ESTALE, "Stale file handle")])
def test_a_read_failure_part_way_is_a005_without_a_traceback(media, monkeypatch, capfd, name, err, reason):
    failing_reads(monkeypatch, err)
    e = error_of(name, media)
    assert (e.code, e.message) == ("A005", f"{name} cannot be read: {reason}")
    assert "Traceback" not in capfd.readouterr().err  # not even from inside libsndfile's C callbacks


@pytest.mark.parametrize("name", ["a.wav", "a.flac", "a.mp3"])
def test_a_read_failure_of_libsndfiles_own_descriptor_reads_is_a005_naming_the_cause(media, monkeypatch, capfd, name):
    """libsndfile reads a file on disk through its descriptor, in C: a read failing there after the header
    (here the descriptor made write-only once the file is open, so the kernel fails every later read) is
    still the record's located A005 with the OS's reason, never a clip cut short or a generic library error."""
    real = decode_mod.sf.SoundFile
    opened: list[int] = []

    def open_then_break(file: Any, *args: Any, **kw: Any) -> sf.SoundFile:
        f = real(file, *args, **kw)
        assert isinstance(file, int)  # the descriptor path, not Python callbacks
        junk = os.open(os.devnull, os.O_WRONLY)
        os.dup2(junk, file)
        os.close(junk)
        opened.append(file)
        return f

    monkeypatch.setattr(decode_mod.sf, "SoundFile", open_then_break)
    e = error_of(name, media)
    assert opened
    assert (e.code, e.message) == ("A005", f"{name} cannot be read: Bad file descriptor")
    assert "Traceback" not in capfd.readouterr().err


def test_the_descriptor_path_gives_the_callback_paths_samples(media, monkeypatch):
    """Decoding through libsndfile's own reads and through Python callbacks gives the same stored PCM."""
    by_fd = {n: make_clip(ref(n), str(media), SETTINGS).pcm_hash for n in ("a.wav", "a.flac", "a.mp3")}
    monkeypatch.setattr(load_mod.MediaFile, "descriptor", lambda self: None)
    by_callbacks = {n: make_clip(ref(n), str(media), SETTINGS).pcm_hash for n in ("a.wav", "a.flac", "a.mp3")}
    assert by_fd == by_callbacks


def test_a_file_deleted_after_it_was_resolved_is_a001(tmp_path, monkeypatch):
    import audiodata.pipeline.process as process_mod

    write(tmp_path / "gone.wav", signal(1.0, 16000), 16000)
    real = process_mod.open_ref

    def open_then_delete(*args: Any, **kw: Any) -> AudioSource:
        src = real(*args, **kw)
        assert src.path is not None
        src.path.unlink()  # deleted between resolving and decoding
        return src

    monkeypatch.setattr(process_mod, "open_ref", open_then_delete)
    e = error_of("gone.wav", tmp_path)
    assert (e.code, e.message) == ("A001", "audio file gone.wav disappeared before it could be read")


def test_a_file_deleted_before_its_size_is_read_is_a001(tmp_path, monkeypatch):
    write(tmp_path / "gone.wav", signal(1.0, 16000), 16000)
    real = load_mod._resolve

    def resolve_then_delete(*args: Any, **kw: Any) -> tuple[Path, int | None]:
        path, size = real(*args, **kw)
        path.unlink()
        return path, size

    monkeypatch.setattr(load_mod, "_resolve", resolve_then_delete)
    assert error_of("gone.wav", tmp_path).code == "A001"
    write(tmp_path / "gone.wav", signal(1.0, 16000), 16000)
    with load_mod.roots_resolved_once():  # found by one lstat, size known: deleted before it is opened
        assert error_of("gone.wav", tmp_path).code == "A001"


def test_an_unreadable_file_is_a005(tmp_path, monkeypatch):
    path = write(tmp_path / "locked.wav", signal(1.0, 16000), 16000)
    path.chmod(0)
    try:
        if not os.access(path, os.R_OK):  # not as root: chmod 000 is the real thing
            assert error_of("locked.wav", tmp_path).message == "locked.wav cannot be read: Permission denied"
    finally:
        path.chmod(0o644)
    real_open = os.open

    def denied(p: Any, *args: Any, **kw: Any) -> int:
        if str(p).endswith("locked.wav"):
            raise PermissionError(errno.EACCES, "Permission denied", str(p))
        return real_open(p, *args, **kw)

    monkeypatch.setattr(os, "open", denied)
    e = error_of("locked.wav", tmp_path)
    assert (e.code, e.message) == ("A005", "locked.wav cannot be read: Permission denied")


def test_fifos_and_devices_are_not_regular_files(tmp_path):
    os.mkfifo(tmp_path / "pipe.wav")  # opening it for reading would wait for a writer forever
    e = error_of("pipe.wav", tmp_path)
    assert (e.code, e.message) == ("A005", "audio pipe.wav is not a regular file")
    assert error_of("/dev/zero", tmp_path).message == "audio /dev/zero is not a regular file"


def test_convert_with_failing_media_accounts_for_every_record(media, tmp_path, monkeypatch, capfd):
    """Two workers, reads failing with EIO on some files: every record written or rejected, one clear
    line per reject, no traceback, no dead pool."""
    write(tmp_path / "m/ok.wav", signal(1.0, 16000), 16000, subtype="PCM_16")
    for name in ("a.flac", "a.m4a"):
        (tmp_path / "m" / name).write_bytes((media / name).read_bytes())
    real = load_mod.open_binary

    def sometimes(path: Path, *args: Any, **kw: Any) -> Any:
        fh = real(path, *args, **kw)
        return FailingFile(fh, errno.EIO, 3) if path.name != "ok.wav" else fh

    monkeypatch.setattr(load_mod, "open_binary", sometimes)
    write_jsonl(tmp_path / "m/in.jsonl", [sft("ok.wav", 0), sft("a.flac", 1), sft("a.m4a", 2), sft("ok.wav", 3)])
    result = audiodata.convert([str(tmp_path / "m/in.jsonl")], tmp_path / "out", num_workers=2, batch_size=1)
    assert (result.records_read, result.records_written, result.records_rejected) == (4, 2, 2)
    assert "Traceback" not in capfd.readouterr().err
    rejects = [json.loads(line) for line in (tmp_path / "out/rejects.jsonl").read_text().splitlines()]
    assert [(r["index"], r["reasons"][0]["code"], r["reasons"][0]["message"]) for r in rejects] == [
        (1, "A005", "a.flac cannot be read: Input/output error"),
        (2, "A005", "a.m4a cannot be read: Input/output error"),
    ]


def test_an_ignored_clip_error_still_rejects_in_convert(tmp_path):
    """--ignore A001 hides the finding from lint, but convert cannot write a record without its audio."""
    write_jsonl(tmp_path / "in.jsonl", [sft("missing.wav")])
    result = audiodata.convert([str(tmp_path / "in.jsonl")], tmp_path / "out", ignore=["A001"], num_workers=1)
    assert (result.records_written, result.records_rejected) == (0, 1)
    lint = audiodata.lint([str(tmp_path / "in.jsonl")], ignore=["A001"], num_workers=1)
    assert lint.to_dict()["findings"] == []


# ---------------------------------------------------------------- results in flight follow the rows' size


def test_jobs_shrink_as_rows_grow_and_the_output_does_not_change(tmp_path, monkeypatch):
    """A job brings back about BATCH_BYTES of rows: 16 records of 20-minute clips would be 600 MB in one
    worker and again in the window. Records per job follow the rows already back; the output does not."""
    import audiodata.pipeline.convert as convert_mod

    write(tmp_path / "m/big.wav", signal(20.0, 16000, seed=1, amp=0.5) * 1.5, 16000, subtype="PCM_16")  # ~600 kB of FLAC
    write(tmp_path / "m/small.wav", signal(0.5, 16000), 16000, subtype="PCM_16")
    write_jsonl(tmp_path / "m/big.jsonl", [sft("big.wav", k) for k in range(12)])
    write_jsonl(tmp_path / "m/small.jsonl", [sft("small.wav", k) for k in range(40)])
    sizes: list[int] = []
    real = convert_mod.process_batch

    def counting(batch: list, settings: AudioSettings) -> Any:
        sizes.append(len(batch))
        return real(batch, settings)

    monkeypatch.setattr(convert_mod, "process_batch", counting)
    audiodata.convert([str(tmp_path / "m/small.jsonl")], tmp_path / "small", num_workers=1)
    assert sizes == [1, 16, 16, 7]  # one record until a job says how big rows are, then full batches
    sizes.clear()
    monkeypatch.setattr(convert_mod, "BATCH_BYTES", 1_500_000)
    audiodata.convert([str(tmp_path / "m/big.jsonl")], tmp_path / "big", num_workers=1)
    assert sizes[0] == 1 and max(sizes) <= 3 and sum(sizes) == 12, sizes
    monkeypatch.setattr(convert_mod, "BATCH_BYTES", 2**40)
    audiodata.convert([str(tmp_path / "m/big.jsonl")], tmp_path / "big-whole", num_workers=1)
    assert tree_bytes(tmp_path / "big") == tree_bytes(tmp_path / "big-whole")
