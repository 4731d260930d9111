"""The audio stage: resolve, decode every container, resample once, encode FLAC, hash."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiodata.audio.load import AudioError
from audiodata.pipeline.process import AudioSettings, make_clip, process_record
from audiodata.readers.dialects.common import audio_ref
from audiodata.records import AudioRef, Message, Record, SourceLoc
from audiodata.rules.audio_rules import AudioContext
from audiodata.rules.engine import check_audio

FFMPEG = shutil.which("ffmpeg") is not None and shutil.which("ffprobe") is not None
needs_ffmpeg = pytest.mark.skipif(not FFMPEG, reason="ffmpeg/ffprobe not installed")
HAS_MP3 = "MP3" in sf.available_formats()
SETTINGS = AudioSettings()


def tone(rate: int, seconds: float, channels: int = 1, freq: float = 440.0) -> np.ndarray:
    n = round(rate * seconds)
    t = np.arange(n, dtype=np.float64) / rate
    x = (0.4 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    if channels == 1:
        return x
    return np.stack([x * (0.5 + 0.5 * c / channels) for c in range(channels)], axis=1)


def pcm16_tone(seconds: float = 0.5, rate: int = 16000) -> np.ndarray:
    return np.rint(tone(rate, seconds) * 32767).astype("<i2")


def blake(pcm: np.ndarray) -> str:
    return hashlib.blake2b(np.ascontiguousarray(pcm, dtype="<i2").tobytes(), digest_size=16).hexdigest()


def ffmpeg_encode(src: Path, dst: Path, *args: str) -> Path:
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", "-i", str(src), *args, str(dst)], check=True)
    return dst


def audio_warnings(clip) -> list[tuple[str, str]]:
    """What the audio rules say about one clip (they run on its measurements)."""
    rec = Record("r", "sft", [], SourceLoc("x.jsonl", 0, 1))
    return [(f.code, f.message) for f in check_audio(rec, AudioContext([clip.stats]))]


def clip_of(value, root: Path, settings: AudioSettings = SETTINGS):
    clip = make_clip(audio_ref(value, "audios[0]"), str(root), settings)
    return clip, audio_warnings(clip)


def error_code(value, root: Path, settings: AudioSettings = SETTINGS) -> str:
    with pytest.raises(AudioError) as exc:
        clip_of(value, root, settings)
    assert exc.value.message
    return exc.value.code


# name -> (rate, channels, seconds, soundfile kwargs, expected source_format)
SOURCES = {
    "wav_int16_22050": (22050, 1, 0.5, {"format": "WAV", "subtype": "PCM_16"}, "WAV"),
    "wav_float32_44100_stereo": (44100, 2, 0.5, {"format": "WAV", "subtype": "FLOAT"}, "WAV"),
    "flac_16000": (16000, 1, 0.5, {"format": "FLAC", "subtype": "PCM_16"}, "FLAC"),
    "ogg_vorbis_48000": (48000, 1, 0.5, {"format": "OGG", "subtype": "VORBIS"}, "OGG"),
    "mp3_44100": (44100, 1, 0.5, {"format": "MP3", "subtype": "MPEG_LAYER_III"}, "MP3"),
    "m4a_alac_44100": (44100, 2, 0.5, None, None),
}
EXT = {"wav": ".wav", "flac": ".flac", "ogg": ".ogg", "mp3": ".mp3", "m4a": ".m4a"}


def make_source(name: str, folder: Path) -> Path:
    rate, channels, seconds, kwargs, _ = SOURCES[name]
    path = folder / (name + EXT[name.split("_", 1)[0]])
    if kwargs is None:  # m4a through ffmpeg
        wav = folder / (name + "_src.wav")
        sf.write(wav, tone(rate, seconds, channels), rate, subtype="PCM_16")
        return ffmpeg_encode(wav, path, "-c:a", "alac")
    sf.write(path, tone(rate, seconds, channels), rate, **kwargs)
    return path


def source_params() -> list:
    params = []
    for name in SOURCES:
        marks = []
        if name.startswith("mp3") and not HAS_MP3:
            marks.append(pytest.mark.skip(reason="this libsndfile cannot write MP3"))
        if name.startswith("m4a"):
            marks.append(needs_ffmpeg)
        params.append(pytest.param(name, marks=marks, id=name))
    return params


def assert_stored_clip(clip, seconds: float) -> np.ndarray:
    info = sf.info(io.BytesIO(clip.data))
    assert (info.format, info.subtype, info.samplerate, info.channels) == ("FLAC", "PCM_16", 16000, 1)
    pcm, rate = sf.read(io.BytesIO(clip.data), dtype="int16")
    assert rate == 16000 and pcm.ndim == 1
    assert blake(pcm) == clip.pcm_hash
    assert len(pcm) == clip.num_samples
    assert (clip.codec, clip.sampling_rate, clip.channels) == ("flac", 16000, 1)
    assert abs(clip.duration - seconds) <= 0.001
    return pcm


@pytest.mark.parametrize("name", source_params())
def test_every_container_becomes_16k_mono_flac(tmp_path, name):
    rate, channels, seconds, _, fmt = SOURCES[name]
    path = make_source(name, tmp_path)
    clip, warnings = clip_of(path.name, tmp_path)
    assert warnings == []
    pcm = assert_stored_clip(clip, seconds)
    assert abs(clip.source_duration - seconds) <= 0.001
    assert (clip.source_sampling_rate, clip.source_channels) == (rate, channels)
    if fmt is not None:
        assert clip.source_format == fmt
    assert clip.origin == path.name
    # The tone survives: its level is near the source's (0.4 full scale, averaged over channels).
    peak = np.abs(pcm[len(pcm) // 4 : 3 * len(pcm) // 4]).max() / 32768
    expected = 0.4 * np.mean([0.5 + 0.5 * c / channels for c in range(channels)]) if channels > 1 else 0.4
    assert abs(peak - expected) < 0.05


@needs_ffmpeg
def test_m4a_aac_through_ffmpeg(tmp_path):
    wav = tmp_path / "src.wav"
    sf.write(wav, tone(48000, 0.5), 48000, subtype="PCM_16")
    m4a = ffmpeg_encode(wav, tmp_path / "speech.m4a", "-c:a", "aac", "-b:a", "64k")
    clip, warnings = clip_of("speech.m4a", tmp_path)
    assert warnings == []
    # AAC pads to whole 1024-sample frames; see the strict test below for the exact length.
    assert_stored_clip(clip, clip.duration)
    assert 0.5 <= clip.duration <= 0.5 + 1024 / 48000 + 0.001
    assert clip.source_sampling_rate == 48000 and clip.source_channels == 1
    assert clip.origin == m4a.name


def _ffprobe_duration(path: Path) -> float:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip())


@needs_ffmpeg
def test_m4a_aac_duration_matches_source(tmp_path):
    wav = tmp_path / "src.wav"
    sf.write(wav, tone(16000, 0.5), 16000, subtype="PCM_16")
    m4a = ffmpeg_encode(wav, tmp_path / "speech.m4a", "-c:a", "aac")
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(m4a), "-f", "s16le", "-"], capture_output=True, check=True)
    if abs(_ffprobe_duration(m4a) - 0.5) > 0.001 or len(raw.stdout) == 2 * 8000:
        pytest.skip("this ffmpeg already trims the padding itself (or the container does not record it)")
    clip, _ = clip_of("speech.m4a", tmp_path)
    assert abs(clip.duration - 0.5) <= 0.001


def test_same_samples_in_wav_and_flac_hash_the_same(tmp_path):
    pcm = pcm16_tone()
    sf.write(tmp_path / "a.wav", pcm, 16000, subtype="PCM_16")
    sf.write(tmp_path / "a.flac", pcm, 16000, subtype="PCM_16")
    wav, _ = clip_of("a.wav", tmp_path)
    flac, _ = clip_of("a.flac", tmp_path)
    assert wav.pcm_hash == flac.pcm_hash == blake(pcm)
    assert (wav.source_format, flac.source_format) == ("WAV", "FLAC")
    # 16 kHz in, 16 kHz out: the samples pass through untouched.
    np.testing.assert_array_equal(sf.read(io.BytesIO(wav.data), dtype="int16")[0], pcm)


def test_different_audio_hashes_differently(tmp_path):
    sf.write(tmp_path / "a.wav", pcm16_tone(), 16000, subtype="PCM_16")
    sf.write(tmp_path / "b.wav", np.rint(tone(16000, 0.5, freq=660.0) * 32767).astype("<i2"), 16000, subtype="PCM_16")
    assert clip_of("a.wav", tmp_path)[0].pcm_hash != clip_of("b.wav", tmp_path)[0].pcm_hash


def test_every_reference_form_gives_the_same_hash(tmp_path):
    pcm = pcm16_tone()
    root = tmp_path / "media"
    root.mkdir()
    path = root / "sub" / "a.wav"
    path.parent.mkdir()
    sf.write(path, pcm, 16000, subtype="PCM_16")
    raw = path.read_bytes()
    b64 = base64.b64encode(raw).decode()
    forms = {
        "relative": "sub/a.wav",
        "absolute": str(path),
        "file_uri": "file://" + str(path),
        "base64": b64,
        "base64_wrapped": "\n".join(b64[i : i + 76] for i in range(0, len(b64), 76)),
        "base64_urlsafe": base64.urlsafe_b64encode(raw).decode(),
        "data_uri": "data:audio/wav;base64," + b64,
        "bytes_dict": {"bytes": b64, "path": "a.wav"},
        "bytes_list": {"bytes": list(raw)},
        "openai": {"data": b64, "format": "wav"},
        "array": {"array": (pcm.astype(np.float64) / 32768).tolist(), "sampling_rate": 16000},
    }
    hashes = {}
    for name, value in forms.items():
        clip, warnings = clip_of(value, root)
        assert warnings == [], name
        assert clip.num_samples == len(pcm), name
        hashes[name] = clip.pcm_hash
    assert set(hashes.values()) == {blake(pcm)}, hashes


def test_array_is_resampled_and_hashed(tmp_path):
    x = tone(8000, 0.5)
    clip = make_clip(AudioRef("array", x.tolist(), "audios[0]", sampling_rate=8000), str(tmp_path), SETTINGS)
    warnings = audio_warnings(clip)
    assert [w[0] for w in warnings] == ["A009"]
    assert_stored_clip(clip, 0.5)
    assert (clip.source_format, clip.source_sampling_rate, clip.origin) == ("ARRAY", 8000, "inline")


def test_wav_output_codec(tmp_path):
    sf.write(tmp_path / "a.wav", tone(22050, 0.5), 22050)
    clip, _ = clip_of("a.wav", tmp_path, AudioSettings(codec="wav"))
    info = sf.info(io.BytesIO(clip.data))
    assert (info.format, info.subtype, info.samplerate, info.channels) == ("WAV", "PCM_16", 16000, 1)
    assert blake(sf.read(io.BytesIO(clip.data), dtype="int16")[0]) == clip.pcm_hash


def test_other_target_rate(tmp_path):
    sf.write(tmp_path / "a.wav", tone(44100, 0.5), 44100)
    clip, _ = clip_of("a.wav", tmp_path, AudioSettings(sample_rate=24000))
    assert (clip.sampling_rate, clip.num_samples) == (24000, 12000)
    assert sf.info(io.BytesIO(clip.data)).samplerate == 24000


# ---------------------------------------------------------------- errors


def test_missing_file_is_a001(tmp_path):
    assert error_code("nope.wav", tmp_path) == "A001"
    assert error_code(str(tmp_path / "nope.wav"), tmp_path) == "A001"


def test_dotdot_escape_is_a002(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    sf.write(tmp_path / "outside.wav", tone(16000, 0.5), 16000)
    assert error_code("../outside.wav", root) == "A002"
    assert error_code("sub/../../outside.wav", root) == "A002"


def test_symlink_inside_root_pointing_outside_is_a002(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    sf.write(tmp_path / "outside.wav", tone(16000, 0.5), 16000)
    os.symlink(tmp_path / "outside.wav", root / "link.wav")
    os.symlink(tmp_path, root / "dirlink")
    assert error_code("link.wav", root) == "A002"
    assert error_code("dirlink/outside.wav", root) == "A002"


def test_symlink_staying_inside_root_is_fine(tmp_path):
    sf.write(tmp_path / "real.wav", tone(16000, 0.5), 16000)
    os.symlink(tmp_path / "real.wav", tmp_path / "link.wav")
    assert clip_of("link.wav", tmp_path)[0].pcm_hash == clip_of("real.wav", tmp_path)[0].pcm_hash


def test_absolute_path_outside_root_allowed_unless_strict(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    sf.write(tmp_path / "outside.wav", tone(16000, 0.5), 16000)
    clip, _ = clip_of(str(tmp_path / "outside.wav"), root)
    assert clip.num_samples == 8000
    assert error_code(str(tmp_path / "outside.wav"), root, AudioSettings(allow_absolute_paths=False)) == "A002"


@pytest.mark.parametrize("url", ["https://example.com/a.wav", "http://example.com/a.wav", "s3://bucket/a.wav"])
def test_url_is_a003(tmp_path, url):
    assert error_code(url, tmp_path) == "A003"


@pytest.mark.parametrize(
    "value",
    ["@" * 200, "data:audio/wav;base64,@@@@not-base64!!", "data:audio/wav,plain", {"bytes": "%%%%", "path": "a.wav"}],
)
def test_invalid_base64_is_a004(tmp_path, value):
    assert error_code(value, tmp_path) == "A004"


def test_text_file_named_wav_is_a005(tmp_path):
    (tmp_path / "fake.wav").write_text("this is not audio\n" * 20)
    assert error_code("fake.wav", tmp_path) == "A005"


def test_inline_garbage_is_a005(tmp_path):
    assert error_code({"bytes": base64.b64encode(b"not audio at all" * 20).decode(), "path": "x.wav"}, tmp_path) == "A005"


def test_zero_sample_wav_is_a006(tmp_path):
    sf.write(tmp_path / "empty.wav", np.zeros(0, dtype=np.int16), 16000, subtype="PCM_16")
    assert sf.info(tmp_path / "empty.wav").frames == 0
    assert error_code("empty.wav", tmp_path) == "A006"


def test_50ms_clip_is_a007(tmp_path):
    sf.write(tmp_path / "short.wav", tone(16000, 0.05), 16000)
    assert error_code("short.wav", tmp_path) == "A007"
    sf.write(tmp_path / "ok.wav", tone(16000, 0.1), 16000)  # exactly the minimum is fine
    assert clip_of("ok.wav", tmp_path)[0].num_samples == 1600


def test_file_larger_than_max_audio_bytes_is_a011(tmp_path):
    sf.write(tmp_path / "a.wav", tone(16000, 0.5), 16000, subtype="PCM_16")
    size = (tmp_path / "a.wav").stat().st_size
    assert error_code("a.wav", tmp_path, AudioSettings(max_audio_bytes=size - 1)) == "A011"
    assert clip_of("a.wav", tmp_path, AudioSettings(max_audio_bytes=size))[0].num_samples == 8000
    b64 = base64.b64encode((tmp_path / "a.wav").read_bytes()).decode()
    assert error_code(b64, tmp_path, AudioSettings(max_audio_bytes=1000)) == "A011"
    assert error_code({"bytes": list(range(200)) * 10}, tmp_path, AudioSettings(max_audio_bytes=1000)) == "A011"


def test_duration_over_max_duration_is_a011(tmp_path):
    sf.write(tmp_path / "a.wav", tone(16000, 0.5), 16000)
    assert error_code("a.wav", tmp_path, AudioSettings(max_duration=0.4)) == "A011"
    array = {"array": tone(16000, 0.5).tolist(), "sampling_rate": 16000}
    assert error_code(array, tmp_path, AudioSettings(max_duration=0.4)) == "A011"
    assert clip_of("a.wav", tmp_path, AudioSettings(max_duration=0.5))[0].num_samples == 8000


@needs_ffmpeg
def test_m4a_over_max_duration_is_a011(tmp_path):
    sf.write(tmp_path / "src.wav", tone(16000, 0.5), 16000)
    ffmpeg_encode(tmp_path / "src.wav", tmp_path / "a.m4a", "-c:a", "aac")
    assert error_code("a.m4a", tmp_path, AudioSettings(max_duration=0.3)) == "A011"


def test_8khz_source_warns_a009(tmp_path):
    sf.write(tmp_path / "phone.wav", tone(8000, 0.5), 8000, subtype="PCM_16")
    clip, warnings = clip_of("phone.wav", tmp_path)
    assert [code for code, _ in warnings] == ["A009"]
    assert "8000" in warnings[0][1]
    assert clip.source_sampling_rate == 8000
    assert_stored_clip(clip, 0.5)


def test_m4a_without_pyav_is_a010(tmp_path, monkeypatch):
    m4a = tmp_path / "a.m4a"
    if FFMPEG:
        sf.write(tmp_path / "src.wav", tone(16000, 0.5), 16000)
        ffmpeg_encode(tmp_path / "src.wav", m4a, "-c:a", "aac")
    else:  # enough of an mp4 header to be recognised
        m4a.write_bytes(b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00" + b"\x00" * 64)
    monkeypatch.setattr("audiodata.audio.decode._pyav", lambda: None)  # FFmpeg libraries not installed
    assert error_code("a.m4a", tmp_path) == "A010"
    inline = {"bytes": base64.b64encode(m4a.read_bytes()).decode()}  # no name: recognised by its magic bytes
    assert error_code(inline, tmp_path) == "A010"
    (tmp_path / "fake.wav").write_text("plain text, not audio\n" * 10)
    assert error_code("fake.wav", tmp_path) == "A005"  # not media: still undecodable, not "needs ffmpeg"


# ---------------------------------------------------------------- process_record


def record(audios: list, root: Path) -> Record:
    return Record(
        id="utt/1",
        kind="sft",
        messages=[Message("user", "<audio>" * len(audios) + "What?", "messages[0].content"), Message("assistant", "a", "")],
        source=SourceLoc("in/corpus.jsonl", 5, 9),
        audios=[audio_ref(a, f"audios[{i}]") for i, a in enumerate(audios)],
        media_root=str(root),
    )


def test_process_record_with_one_bad_audio_is_rejected_and_located(tmp_path):
    sf.write(tmp_path / "good.wav", tone(16000, 0.5), 16000)
    out = process_record(3, record(["good.wav", "missing.wav"], tmp_path), SETTINGS)
    assert out.seq == 3
    assert out.row is None
    assert [(f.code, f.field) for f in out.findings] == [("A001", "audios[1]")]
    src = out.findings[0].source
    assert (src.file, src.index, src.line) == ("in/corpus.jsonl", 5, 9)
    assert out.findings[0].is_error


def test_process_record_good_builds_a_row(tmp_path):
    sf.write(tmp_path / "a.wav", tone(22050, 0.5), 22050)
    sf.write(tmp_path / "b.wav", tone(8000, 0.25), 8000)
    out = process_record(0, record(["a.wav", "b.wav"], tmp_path), SETTINGS)
    assert out.row is not None
    assert [(f.code, f.field) for f in out.findings] == [("A009", "audios[1]")]
    row = out.row
    assert [a["path"] for a in row["audios"]] == ["utt_1_0.flac", "utt_1_1.flac"]
    assert [i["num_samples"] for i in row["audio_info"]] == [8000, 4000]
    assert [i["pcm_hash"] for i in row["audio_info"]] == out.hashes
    for audio, info in zip(row["audios"], row["audio_info"], strict=True):
        assert blake(sf.read(io.BytesIO(audio["bytes"]), dtype="int16")[0]) == info["pcm_hash"]
    assert row["audio_seconds"] == 0.75
    assert row["messages"] == [{"role": "user", "content": "<audio><audio>What?"}, {"role": "assistant", "content": "a"}]
    assert row["source"] == {"file": "in/corpus.jsonl", "index": 5, "line": 9}
    assert "chosen" not in row


def test_process_record_enabled_filters_audio_findings(tmp_path):
    sf.write(tmp_path / "b.wav", tone(8000, 0.25), 8000)
    out = process_record(0, record(["b.wav"], tmp_path), AudioSettings(enabled=frozenset({"A001"})))
    assert out.row is not None and out.findings == []


def test_decoding_closes_the_file_on_every_path(tmp_path, monkeypatch):
    """The source is opened once (libsndfile, FFmpeg and the media sniffing share it) and closed
    whichever way decoding ends: a clip, an undecodable file, or A010 without FFmpeg."""
    import gc
    import warnings

    (tmp_path / "a.m4a").write_bytes(b"\x00\x00\x00\x20ftypM4A " + b"\x00" * 32)
    (tmp_path / "noise.wav").write_bytes(b"not audio" * 40)
    sf.write(tmp_path / "ok.wav", tone(16000, 0.5), 16000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert error_code("noise.wav", tmp_path) == "A005"
        assert clip_of("ok.wav", tmp_path)[0].num_samples == 8000
        monkeypatch.setattr("audiodata.audio.decode._pyav", lambda: None)
        assert error_code("a.m4a", tmp_path) == "A010"
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
