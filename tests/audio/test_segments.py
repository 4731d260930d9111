"""Segments of long recordings (``MediaRef.segment``) decode to exactly the samples a hand cut gives.

Reference cuts: the whole file read with soundfile and sliced by sample index (identical float32 before
resampling, identical int16 after the same resampler), and FFmpeg's ``-ss``/``-t`` where that is sample
exact (WAV, FLAC). Lossy codecs: the same samples as the audio stage's whole-file decode, whichever way the
segment is reached (kept whole, or decoded forward). And one open (and decode) per file, not per segment.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiodata.audio import segment
from audiodata.audio.decode import _Collect
from audiodata.audio.load import AudioError, AudioSource
from audiodata.audio.transform import convert, convert_samples
from audiodata.pipeline.process import AudioSettings, make_clip
from audiodata.records import MediaRef, Segment, samples_at
from tests.conftest import SAMPLE
from tests.raw_asr_audio import long_signal

#: Starts and durations, some falling between two samples at 44.1 kHz (rounded half up: 14.105 s is 622030.5).
CUTS = [(0.5, 3.25), (14.105, 6.195), (1.2345678, 2.1), (0.0, 0.15), (23.5, 0.5), (8.2975, 5.8025)]


@pytest.fixture(scope="module")
def long_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("seg")
    speech = long_signal()
    stereo = np.stack([speech, -0.5 * speech[::-1]], axis=1)
    files = {"wav": root / "long.wav", "flac": root / "long.flac", "wav24": root / "long24.wav", "stereo": root / "st.flac"}
    sf.write(files["wav"], speech, 44100, subtype="PCM_16")
    sf.write(files["flac"], speech, 44100, subtype="PCM_16")
    sf.write(files["wav24"], long_signal(48000), 48000, subtype="PCM_24")  # another rate and depth
    sf.write(files["stereo"], stereo, 44100, subtype="PCM_16")
    return files


def _segment_float(path: Path, seg: Segment) -> np.ndarray:
    src = AudioSource(path=path, name=path.name, label=path.name)
    return segment.decode_segment_into(src, seg, 600.0, _Collect).decoded().samples


@pytest.mark.parametrize("kind", ["wav", "flac", "wav24", "stereo"])
def test_segments_are_the_samples_of_a_hand_cut(long_files: dict[str, Path], kind: str):
    path = long_files[kind]
    whole, rate = sf.read(path, dtype="float32", always_2d=True)
    settings = AudioSettings()
    for start, duration in CUTS:
        first = samples_at(start, rate)
        cut = whole[first : first + samples_at(duration, rate)]
        got = _segment_float(path, Segment(start, duration))
        assert got.dtype == np.float32 and np.array_equal(got, cut), (kind, start)  # before resampling: identical
        ref = MediaRef("path", path.name, "audio", segment=Segment(start, duration))
        clip = make_clip(ref, str(path.parent), settings)
        assert np.array_equal(_pcm(clip.data), convert_samples(cut, rate, 16000, "ref").pcm), (kind, start)  # after: identical


def _pcm(data: bytes) -> np.ndarray:
    import io

    return sf.read(io.BytesIO(data), dtype="int16")[0]


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg command")
@pytest.mark.parametrize("kind", ["wav", "flac"])
def test_segments_match_ffmpeg_ss_t(long_files: dict[str, Path], kind: str):
    """FFmpeg seeks WAV and FLAC to the sample (rounding half up, as audiodata does): the same 16-bit samples."""
    path = long_files[kind]
    for start, duration in CUTS:
        cut = ["-ss", repr(start), "-t", repr(duration)]
        cmd = ["ffmpeg", "-v", "error", *cut, "-i", str(path), "-f", "s16le", "-acodec", "pcm_s16le", "-"]
        want = np.frombuffer(subprocess.run(cmd, capture_output=True, check=True).stdout, "<i2")
        got = convert(AudioSource(path=path, name=path.name, label=path.name), None, 600.0, Segment(start, duration)).pcm
        assert np.array_equal(got, want), (kind, start, len(got), len(want))


@pytest.mark.parametrize("name", ["clip13_48k.ogg", "clip15_44k.mp3", "clip16_44k.m4a", "clip18_48k.opus"])
@pytest.mark.parametrize("whole_bytes", [64 * 2**20, 1000], ids=["kept-whole", "decoded-forward"])
def test_lossy_segments_are_the_whole_decodes_samples(name: str, whole_bytes: int, monkeypatch: pytest.MonkeyPatch):
    """libsndfile's Ogg seeks land hundreds of samples off, Opus needs pre-roll: lossy sources are never sought.
    In any order (a segment before the last one starts the decoder over)."""
    monkeypatch.setattr(segment, "WHOLE_BYTES", whole_bytes)
    segment.release()
    path = SAMPLE / "audio" / name
    src = AudioSource(path=path, name=name, label=name)
    whole = convert(src, None, 600.0)
    rate = whole.header.sampling_rate
    for start in (0.5, 0.1, 1.2, 1.3, 0.0):
        got = convert(src, None, 600.0, Segment(start, 0.4)).pcm
        first = samples_at(start, rate)
        assert np.array_equal(got, whole.pcm[first : first + samples_at(0.4, rate)]), start
    held = segment._HELD
    assert held is not None
    assert (held.whole is not None, held.forward is not None) == ((True, False) if whole_bytes > 1000 else (False, True))
    segment.release()


def test_many_segments_of_one_file_open_it_once(long_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch):
    opened: list[str] = []
    real = segment._open
    monkeypatch.setattr(segment, "_open", lambda src, key: opened.append(src.name) or real(src, key))
    segment.release()
    settings = AudioSettings()
    for k in range(40):
        ref = MediaRef("path", "long.flac", "audio", segment=Segment(0.5 * k, 0.5))
        make_clip(ref, str(long_files["flac"].parent), settings)
    assert opened == ["long.flac"]
    make_clip(MediaRef("path", "long.wav", "audio", segment=Segment(1.0, 0.5)), str(long_files["wav"].parent), settings)
    assert opened == ["long.flac", "long.wav"]  # another file: the first one is let go
    segment.release()


def test_segment_bounds(long_files: dict[str, Path]):
    root = str(long_files["wav"].parent)
    settings = AudioSettings(max_duration=5.0, max_audio_bytes=1000)  # a 2 MB file: its segments are bounded by seconds
    clip = make_clip(MediaRef("path", "long.wav", "a", segment=Segment(1.0, 4.0)), root, settings)
    assert clip.num_samples == 64000 and clip.origin == "long.wav#t=1,5"
    for seg, code, words in [
        (Segment(30.0, 1.0), "A006", "past the end of the audio (24.00 s)"),
        (Segment(1.0, 6.0), "A011", "6.0 s segment exceeds --max-duration 5"),
        (Segment(1.0, 1.0, (1,)), "A005", "channel 1 asked for, the audio has 1 channel"),
    ]:
        with pytest.raises(AudioError) as err:
            make_clip(MediaRef("path", "long.wav", "a", segment=seg), root, settings)
        assert err.value.code == code and words in err.value.message
    with pytest.raises(AudioError) as err:  # the whole file is still bounded by its bytes
        make_clip(MediaRef("path", "long.wav", "a"), root, settings)
    assert err.value.code == "A011"
    tail = make_clip(MediaRef("path", "long.wav", "a", segment=Segment(22.0, 4.0)), root, AudioSettings())
    assert tail.num_samples == 32000  # a segment running past the end stops there (A014 compares it with its duration)
    segment.release()


def test_one_channel_of_a_stereo_file(long_files: dict[str, Path]):
    whole, _ = sf.read(long_files["stereo"], dtype="float32", always_2d=True)
    for channel in (0, 1):
        got = _segment_float(long_files["stereo"], Segment(2.0, 1.0, (channel,)))
        assert np.array_equal(got[:, 0], whole[88200 : 88200 + 44100, channel])
    both = _segment_float(long_files["stereo"], Segment(2.0, 1.0, (0, 1)))
    assert both.shape == (44100, 2)
    segment.release()
