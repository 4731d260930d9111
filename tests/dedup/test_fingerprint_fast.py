"""The fingerprint's fast form (blocked scipy FFT into reused buffers, no BLAS) computes what its plain
numpy definition does, and takes no fresh memory from the kernel per clip (the cause of dedup_bench's
system time: ~2,700 page faults per 3 s clip)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import soxr

from audiodata.dedup import fingerprint as fpm
from audiodata.dedup.fingerprint import (
    HOP,
    MAX_SECONDS,
    N_BANDS,
    N_FFT,
    PHASES,
    RATE,
    VOICED_DB,
    Fingerprint,
    fingerprint,
    similarity,
)
from tests.conftest import SAMPLE


def _reference_energies(pcm: np.ndarray) -> np.ndarray:
    """The definition: Hann-windowed 1024-point frames every HOP, power summed per log-spaced band, log10."""
    x = pcm.astype(np.float64)
    if pcm.dtype == np.int16:
        x /= 32768.0
    x = x[: int(MAX_SECONDS * RATE)]
    if x.size < N_FFT:
        x = np.pad(x, (0, N_FFT - x.size))
    n = 1 + (x.size - N_FFT) // HOP
    frames = np.stack([x[i * HOP : i * HOP + N_FFT] for i in range(n)]) * np.hanning(N_FFT)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    freqs = np.fft.rfftfreq(N_FFT, 1 / RATE)
    edges = np.geomspace(fpm.F_LOW, fpm.F_HIGH, N_BANDS + 1)
    bands = np.stack([power[:, (freqs >= edges[b]) & (freqs < edges[b + 1])].sum(axis=1) for b in range(N_BANDS)], axis=1)
    return np.log10(bands + 1e-10)


def _reference_bits(e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    diff = e[:, :-1] - e[:, 1:]
    d = np.diff(diff, axis=0, prepend=diff[:1])
    bits = sum(((d[:, j] > 0).astype(np.uint64) << np.uint64(j)) for j in range(32)).astype(np.uint32)
    total = np.log10(np.power(10.0, e).sum(axis=1) + 1e-10)
    return bits, total >= total.max() - VOICED_DB / 10.0


def _reference(pcm: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(bits, voiced) of the clip and of its sub-frame phases, straight from the definition."""
    out = [_reference_bits(_reference_energies(pcm))]
    if pcm.shape[0] > N_FFT + HOP:
        out += [_reference_bits(_reference_energies(pcm[k:])) for k in PHASES]
    return out


def _speech(name: str) -> np.ndarray:
    x, sr = sf.read(SAMPLE / "audio" / name, dtype="float32", always_2d=True)
    y = soxr.resample(x[:, 0], sr, RATE) if sr != RATE else x[:, 0]
    return np.clip(np.rint(y * 32768), -32768, 32767).astype(np.int16)


def _clips() -> list[np.ndarray]:
    speech = np.concatenate([_speech(n) for n in ("clip01_22k.wav", "clip02_22k.wav", "clip07_16k.flac", "clip09_16k.flac")])
    rng = np.random.default_rng(7)
    cuts = [
        speech[o : o + int(s * RATE)]
        for o, s in zip(rng.integers(0, speech.size // 2, 12), rng.uniform(0.3, 6.0, 12), strict=True)
    ]
    long = np.tile(speech, int(np.ceil(62 * RATE / speech.size)))[: 62 * RATE]  # over MAX_SECONDS: cut at 60 s
    edges = [speech[:500], speech[:N_FFT], speech[: N_FFT + HOP], speech[: N_FFT + HOP + 1], speech[: N_FFT + 5 * HOP + 17]]
    return [*cuts, long, *edges]


@pytest.mark.parametrize("dtype", ["int16", "float32", "float64"])
def test_fast_fingerprint_matches_its_definition(dtype: str):
    """Bits and voiced frames agree with the float64 definition up to float32 rounding (a bit whose
    energy difference is within rounding of zero may flip), phases included; a clip matches itself."""
    flips = total = 0
    for pcm16 in _clips():
        pcm = pcm16 if dtype == "int16" else (pcm16 / 32768.0).astype(dtype)
        fast, ref = fingerprint(pcm), _reference(pcm16)
        got = [(fast.bits, fast.voiced), *fast.phases]
        assert len(got) == len(ref), pcm.size
        for (bits, voiced), (rbits, rvoiced) in zip(got, ref, strict=True):
            assert bits.dtype == np.uint32 and bits.shape == rbits.shape, pcm.size
            assert voiced.dtype == bool and np.count_nonzero(voiced != rvoiced) <= 1, pcm.size
            flips += int(np.bitwise_count(bits ^ rbits).sum())
            total += 32 * bits.size
        assert fast.sketch.dtype == np.uint16 and fast.sketch.shape == (16,)
        assert fast.seconds == pcm.shape[0] / RATE
        if fast.voiced.sum() >= 16:
            assert similarity(fast, fast) == 1.0
    assert total > 100_000 and flips / total < 1e-3, (flips, total)


def test_sketch_matches_its_definition():
    """The sketch's 256 hyperplane signs, packed 16 to a band with bit j of band k from hyperplane 16k + j."""
    for pcm in _clips():
        fast = fingerprint(pcm)
        e = _reference_energies(pcm)
        v = fast.voiced if fast.voiced.any() else np.ones(len(e), bool)
        frames = e[v] - e[v].mean(axis=0)
        pooled = frames[:, :32].reshape(len(frames), 16, 2).mean(axis=2)
        vec = np.concatenate([s.mean(axis=0) if len(s) else np.zeros(16) for s in np.array_split(pooled, fpm.SEGMENTS)])
        proj = vec @ fpm._PROJ.astype(np.float64)
        signs = proj > 0
        got = ((fast.sketch[:, None] >> np.arange(16, dtype=np.uint16)) & 1).astype(bool).reshape(-1)
        sure = np.abs(proj) > 1e-3 * np.abs(proj).max()  # signs that rounding cannot flip
        assert np.array_equal(got[sure], signs[sure]), pcm.size


def test_other_rates_are_fingerprinted_at_16k():
    pcm = _speech("clip07_16k.flac")
    up = np.clip(np.rint(soxr.resample(pcm.astype(np.float32), RATE, 24000)), -32768, 32767).astype(np.int16)
    assert similarity(fingerprint(pcm), fingerprint(up, 24000)) >= 0.95


_FAULTS = """
import resource, sys
import numpy as np
import soundfile as sf
from audiodata.dedup.fingerprint import fingerprint
x, sr = sf.read(sys.argv[1], dtype="int16")
speech = np.tile(x, 4)
rng = np.random.default_rng(3)
clips = [speech[o : o + int(s * 16000)].copy() for o, s in zip(rng.integers(0, speech.size // 2, 40), rng.uniform(1, 5, 40))]
fingerprint(clips[0])
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for c in clips:
    fingerprint(c)
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / len(clips))
"""


def test_no_fresh_memory_from_the_kernel_per_clip():
    """In a fresh process (a pool worker's state), each clip reuses the per-thread buffers: after the first,
    fingerprinting takes (almost) no page faults. The plain numpy form took ~2,700 per 3 s clip there
    (glibc handing its temporaries back to the kernel and faulting them in again, zero-filled), and spent
    as much CPU in the kernel as in arithmetic."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", _FAULTS, str(SAMPLE / "audio" / "clip07_16k.flac")],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert float(out.stdout.strip()) < 50, out.stdout


def test_fingerprint_is_thread_safe():
    """Buffers are per thread: fingerprints made concurrently equal those made one by one."""
    from concurrent.futures import ThreadPoolExecutor

    clips = _clips()[:8]
    alone = [fingerprint(c) for c in clips]
    with ThreadPoolExecutor(4) as pool:
        together: list[Fingerprint] = list(pool.map(fingerprint, clips * 3))
    for k, fp in enumerate(together):
        ref = alone[k % len(clips)]
        assert (
            np.array_equal(fp.bits, ref.bits) and np.array_equal(fp.voiced, ref.voiced) and np.array_equal(fp.sketch, ref.sketch)
        )
