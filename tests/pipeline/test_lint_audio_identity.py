"""Why lint resamples every clip to 16 kHz (issue 15): its audio verdicts are convert's, and two of them
depend on the stored 16 kHz PCM, not on the decoded source. Each test here is a case a source-level
shortcut (hash the decoded source; judge silence by the source's level) would get wrong."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import soundfile as sf

from audiodata.audio.transform import identity_hash, pcm_hash
from audiodata.pipeline.lint import lint
from audiodata.pipeline.process import AudioSettings, make_clip
from audiodata.readers.dialects.common import audio_ref
from tests.conftest import write_jsonl


def speech_like(rate: int, seconds: float) -> np.ndarray:
    """A few harmonics under an envelope, all below 4 kHz: survives the 16 kHz low-pass."""
    t = np.arange(round(rate * seconds)) / rate
    x = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((180.0, 360.0, 720.0, 1500.0, 3100.0), 1))
    return (0.2 * x * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def source_digest(path) -> str:
    """What a source-level identity would compare: the decoded samples, their rate and channels."""
    data, rate = sf.read(path, dtype="float32", always_2d=True)
    return hashlib.blake2b(data.tobytes() + f"{rate}/{data.shape[1]}".encode(), digest_size=16).hexdigest()


def test_a_stored_copy_of_a_48k_source_is_an_exact_duplicate(tmp_path):
    """The 16 kHz FLAC convert stores for a 48 kHz WAV is the same clip once converted again (16-bit at the
    target rate passes through unchanged): convert keeps one of two such records, so lint says D001. Their
    decoded sources differ (rate, length, samples): a source hash would call them different."""
    sf.write(tmp_path / "orig.wav", speech_like(48000, 1.5), 48000, subtype="FLOAT")
    stored = make_clip(audio_ref("orig.wav", "audio"), str(tmp_path), AudioSettings())
    (tmp_path / "copy.flac").write_bytes(stored.data)
    again = make_clip(audio_ref("copy.flac", "audio"), str(tmp_path), AudioSettings())
    assert again.pcm_hash == stored.pcm_hash  # what convert's dedup compares: one clip
    assert source_digest(tmp_path / "orig.wav") != source_digest(tmp_path / "copy.flac")
    records = [{"audio": "orig.wav", "text": "same words"}, {"audio": "copy.flac", "text": "same words"}]
    jsonl = write_jsonl(tmp_path / "c.jsonl", records)
    found = [(f.code, f.source.index) for f in lint([str(jsonl)], media_root=str(tmp_path), num_workers=1).findings]
    assert ("D001", 1) in found


def test_silence_is_judged_on_the_stored_pcm_not_the_source(tmp_path):
    """A 48 kHz clip whose energy lies above 8 kHz is loud at its source (about -9 dBFS RMS) and silent once
    stored at 16 kHz (the low-pass removes it all): convert stores silence, so lint says A012. No bound on the
    source's level decides this without filtering it."""
    rate = 48000
    t = np.arange(rate) / rate
    loud_high = (0.5 * np.sin(2 * np.pi * 12000 * t)).astype(np.float32)
    sf.write(tmp_path / "hiss.wav", loud_high, rate, subtype="FLOAT")
    source_rms = 20 * math.log10(float(np.sqrt(np.mean(loud_high.astype(np.float64) ** 2))))
    assert source_rms > -10
    clip = make_clip(audio_ref("hiss.wav", "audio"), str(tmp_path), AudioSettings(encode=False))
    assert clip.stats is not None and clip.stats.rms_dbfs < -60
    jsonl = write_jsonl(tmp_path / "c.jsonl", [{"audio": "hiss.wav", "text": "nothing to hear"}])
    assert [f.code for f in lint([str(jsonl)], media_root=str(tmp_path), num_workers=1).findings] == ["A012"]


def test_lint_identity_tells_the_same_clips_apart_as_pcm_hash(tmp_path):
    """lint hashes clips with its own function (never compared with a stored pcm_hash) over the same stored PCM:
    equal for equal PCM, different for a clip one sample apart, as pcm_hash is."""
    sf.write(tmp_path / "a.wav", speech_like(22050, 1.0), 22050)
    own = make_clip(audio_ref("a.wav", "audio"), str(tmp_path), AudioSettings(encode=False, preview=True, own_identity=True))
    plain = make_clip(audio_ref("a.wav", "audio"), str(tmp_path), AudioSettings(encode=False, preview=True))
    assert own.pcm is not None and plain.pcm is not None and np.array_equal(own.pcm, plain.pcm)
    assert own.pcm_hash == identity_hash(own.pcm) and plain.pcm_hash == pcm_hash(plain.pcm)
    other = own.pcm.copy()
    other[1234] += 1
    assert identity_hash(other) != own.pcm_hash and pcm_hash(other) != plain.pcm_hash
    assert identity_hash(own.pcm.copy()) == own.pcm_hash
    stored = make_clip(audio_ref("a.wav", "audio"), str(tmp_path), AudioSettings(own_identity=True))
    assert stored.pcm_hash == plain.pcm_hash  # a clip that is written always carries the stored pcm_hash
