"""An acoustic fingerprint for speech that survives re-encoding, resampling, gain and mild noise.

Computed on the 16 kHz mono PCM the audio stage already holds, so it costs one FFT pass.
Two parts, both small (bounded by ``MAX_SECONDS``), never the audio itself:

* ``bits``: one 32-bit word per 16 ms frame, Haitsma-Kalker style: the sign of the energy
  difference between adjacent log-spaced bands (300 Hz - 5 kHz), differenced again in time.
  Differences of log energies ignore gain entirely and lossy coding barely moves them; a
  different voice or speed reading the same sentence flips about half of them. Two clips are
  compared by their bit error rate at the best small time offset, over the frames where both
  are voiced (silence carries no information, and noise would randomise its bits).
* ``sketch``: a 256-bit random-hyperplane signature of the clip's coarse spectro-temporal shape
  (band energies normalised per band, pooled into 8 time segments), split into 16 bands of 16
  bits for locality-sensitive hashing: near copies share at least one band with probability
  > 0.99, so candidates are found without comparing all pairs.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

RATE = 16000
N_FFT = 1024
HOP = 256  # 16 ms
N_BANDS = 33  # 32 differences -> one 32-bit word per frame
F_LOW, F_HIGH = 300.0, 5000.0  # below 300 Hz the voice pitch dominates: same words, other speaker looked alike
VOICED_DB = 30.0  # frames within this many dB of the loudest frame count as signal
MAX_SECONDS = 60.0  # fingerprint at most this much of a clip: memory per clip is bounded
SEGMENTS = 8
SKETCH_BITS = 256
BAND_BITS = 16
MAX_SHIFT = 12  # frames (~190 ms) of misalignment tolerated (codec delay, trimmed padding)


def _band_edges() -> np.ndarray:
    """First FFT bin of each band, and one past the last band's last bin: band ``b`` sums the
    power of bins ``edges[b]:edges[b + 1]`` (bins whose frequency lies in its log-spaced range)."""
    freqs = np.fft.rfftfreq(N_FFT, 1 / RATE)
    hz = np.geomspace(F_LOW, F_HIGH, N_BANDS + 1)
    edges = np.searchsorted(freqs, hz, side="left")  # bin k is in band b when hz[b] <= freqs[k] < hz[b + 1]
    assert np.all(np.diff(edges) > 0), "every band needs at least one FFT bin"
    return edges


_EDGES = _band_edges()
_LO, _HI = int(_EDGES[0]), int(_EDGES[-1])  # the bins any band reads (300 Hz - 5 kHz); the rest are never summed
_STARTS = (_EDGES[:-1] - _LO).astype(np.intp)
_WINDOW = np.hanning(N_FFT).astype(np.float32)
_WINDOW_PCM16 = _WINDOW / np.float32(32768.0)  # int16 samples scaled in the same multiply (a power of two: exact)
_PROJ = np.random.default_rng(20261123).standard_normal((SEGMENTS * 16, SKETCH_BITS)).astype(np.float32)
#: Frames transformed per FFT call. The buffers are allocated once per thread and reused, so a clip costs
#: no fresh memory from the kernel (see ``band_energies``); 256 frames of 1024 float32 is 1 MiB.
BLOCK = 256


@dataclass(frozen=True)
class Fingerprint:
    bits: np.ndarray  # uint32 per frame
    voiced: np.ndarray  # bool per frame
    sketch: np.ndarray  # uint16 per LSH band
    seconds: float
    #: (bits, voiced) of the same clip framed PHASES samples later: a copy shifted by part of a
    #: frame (codec delay, trimmed padding) lines up with one of them. Queries carry them; the
    #: index stores clips without them (``slim``), so memory per stored clip stays one fingerprint.
    phases: tuple[tuple[np.ndarray, np.ndarray], ...] = ()

    @property
    def nbytes(self) -> int:
        return self.bits.nbytes + self.voiced.nbytes + self.sketch.nbytes + sum(p.nbytes + v.nbytes for p, v in self.phases)

    def slim(self) -> Fingerprint:
        return Fingerprint(self.bits, self.voiced, self.sketch, self.seconds) if self.phases else self


#: Sub-frame offsets (samples) at which a query is also framed: the worst misalignment left is HOP/8 (2 ms).
PHASES = (HOP // 4, HOP // 2, 3 * HOP // 4)


class _Workspace(threading.local):
    """Per-thread scratch for :func:`band_energies`, reused for every clip."""

    def __init__(self) -> None:
        self.frames = np.empty((BLOCK, N_FFT), np.float32)
        self.spectrum = np.empty((BLOCK, N_FFT // 2 + 1), np.complex64)
        self.power = np.empty((BLOCK, _HI - _LO), np.float32)


_WS = _Workspace()
_rfft: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None


def _fft() -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """``rfft(frames, out)`` along rows, one thread: scipy's pocketfft, imported on first use (a few hundred
    ms). Not numpy's: numpy 2 transforms a batch row by row, 4-5x slower on 1024-point float32 frames.
    scipy's public ``rfft`` takes no output array, and a fresh 1 MiB spectrum per block is what glibc
    trims and faults back in; its pocketfft binding does, so that is used when it is there."""
    global _rfft
    if _rfft is None:
        try:
            from scipy.fft._pocketfft.pypocketfft import r2c

            def rfft(frames: np.ndarray, out: np.ndarray) -> np.ndarray:
                return r2c(frames, (1,), True, 0, out, 1)

            rfft(_WS.frames[:1], _WS.spectrum[:1])  # the private signature still holds
        except (ImportError, TypeError, ValueError):
            from scipy.fft import rfft as public

            def rfft(frames: np.ndarray, out: np.ndarray) -> np.ndarray:
                return public(frames, axis=1, workers=1)

        _rfft = rfft
    return _rfft


def band_energies(pcm: np.ndarray) -> np.ndarray:
    """Log band energies, frames x bands, of 16 kHz mono samples (int16 or float)."""
    e, _ = _energies(pcm, 0, 1)
    return e


def _energies(pcm: np.ndarray, first: int, phases: int) -> tuple[np.ndarray, np.ndarray]:
    """(log band energies, log total energy) of the frames of ``pcm[k:][:MAX_SECONDS]`` every HOP samples,
    for ``k`` in ``first + j * HOP // phases``, ``j < phases``, interleaved: row ``m`` is phase ``m % phases``.

    Why it is written this way (dedup_bench at 10k clips spent 80 of 182 CPU s in the kernel): the plain
    numpy form allocated a few MiB of temporaries per clip (windowed frames, complex spectrum, its
    magnitude, its square), which glibc hands back to the kernel on free and takes again, zero-filled, on
    the next clip: ~2,700 page faults per 3 s clip, more system time than arithmetic. Here the frames are
    windowed into a per-thread buffer, transformed a block at a time, and only the 300 bins the bands read
    are squared and summed; no BLAS call either (a matrix product with the 0/1 band matrix ran OpenBLAS
    threads inside each pool worker: oversubscribed cores spinning)."""
    if pcm.dtype == np.int16:
        x, window = pcm, _WINDOW_PCM16
    else:
        x, window = pcm.astype(np.float32, copy=False), _WINDOW
    step = HOP // phases
    limit = int(MAX_SECONDS * RATE)
    sizes = [min(x.shape[0] - first - j * step, limit) for j in range(phases)]
    if phases == 1 and sizes[0] < N_FFT:
        x = np.concatenate([x[first:], np.zeros(N_FFT - sizes[0], x.dtype)])
        first, sizes = 0, [N_FFT]
    counts = [1 + (size - N_FFT) // HOP for size in sizes]
    n = max(phases * (c - 1) + j + 1 for j, c in enumerate(counts))  # rows of the interleaved framing
    x = np.ascontiguousarray(x[first:])
    frames = np.lib.stride_tricks.as_strided(x, (n, N_FFT), (x.strides[0] * step, x.strides[0]), writeable=False)
    energies = np.empty((n, N_BANDS), np.float32)
    total = np.empty(n, np.float32)
    rfft, ws = _fft(), _WS
    for a in range(0, n, BLOCK):
        b = min(n, a + BLOCK)
        buf, power = ws.frames[: b - a], ws.power[: b - a]
        np.multiply(frames[a:b], window, out=buf)
        spectrum = rfft(buf, ws.spectrum[: b - a])
        np.abs(spectrum[:, _LO:_HI], out=power)
        np.square(power, out=power)
        bands = np.add.reduceat(power, _STARTS, axis=1)
        bands += np.float32(1e-10)
        np.log10(bands.sum(axis=1) + np.float32(1e-10), out=total[a:b])
        np.log10(bands, out=energies[a:b])
    return energies, total


def fingerprint(pcm: np.ndarray, rate: int = RATE, phases: bool = True) -> Fingerprint:
    if rate != RATE:  # e.g. convert --sample-rate 24000: fingerprints always compare at 16 kHz
        import soxr

        pcm = np.clip(np.rint(soxr.resample(pcm.astype(np.float32), rate, RATE, quality="HQ")), -32768, 32767).astype(np.int16)
    count = 1 + len(PHASES) if phases and pcm.shape[0] > N_FFT + HOP else 1
    energies, total = _energies(pcm, 0, count)
    limit = int(MAX_SECONDS * RATE)
    per_phase = []
    for j in range(count):
        n = 1 + (min(pcm.shape[0] - j * HOP // count, limit) - N_FFT) // HOP if count > 1 else energies.shape[0]
        per_phase.append(_bits(energies[j::count][:n], total[j::count][:n]))
    bits, voiced = per_phase[0]
    e = energies[::count][: bits.size]
    return Fingerprint(bits, voiced, _sketch(e, voiced), pcm.shape[0] / RATE, tuple(per_phase[1:]))


def _bits(e: np.ndarray, total: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    diff = e[:, :-1] - e[:, 1:]  # across bands
    d = np.diff(diff, axis=0, prepend=diff[:1])  # across time
    bits = np.packbits(d > 0, axis=1, bitorder="little").view("<u4").reshape(-1).astype(np.uint32, copy=False)
    voiced = total >= (total.max() - VOICED_DB / 10.0) if total.size else np.zeros(0, bool)
    return bits, voiced


def _sketch(e: np.ndarray, voiced: np.ndarray) -> np.ndarray:
    frames = e[voiced] if voiced.any() else e
    frames = frames - frames.mean(axis=0, keepdims=True)  # per-band normalisation: gain and channel colour out
    pooled_bands = frames[:, : (N_BANDS // 2) * 2].reshape(frames.shape[0], 16, 2).mean(axis=2)
    segs = np.array_split(pooled_bands, SEGMENTS, axis=0)
    vec = np.concatenate([s.mean(axis=0) if len(s) else np.zeros(16, np.float32) for s in segs])
    bits = np.einsum("i,ij->j", vec, _PROJ) > 0  # einsum, not @: no BLAS threads for a 128 x 256 product
    return np.packbits(bits, bitorder="little").view("<u2").astype(np.uint16)  # band k: bits 16k..16k+15, bit 16k first


def sketch_distance(a: Fingerprint, b: Fingerprint) -> int:
    """Differing sketch bits (of 256): a cheap filter before the full comparison."""
    return int(np.bitwise_count(np.bitwise_xor(a.sketch, b.sketch)).sum())


def similarity(a: Fingerprint, b: Fingerprint, max_shift: int = MAX_SHIFT) -> float:
    """1 - the lowest bit error rate over small time offsets (whole frames, and the sub-frame
    phases either side carries), counted on frames voiced in both. 0.0 when the clips cannot be
    aligned (too little voiced overlap, or lengths too different)."""
    na, nb = a.bits.size, b.bits.size
    if not na or not nb or min(na, nb) / max(na, nb) < 0.85:
        return 0.0
    best = _best_ber([(a.bits, a.voiced), *a.phases], b.bits, b.voiced, max_shift)
    if b.phases:  # the error rate at shift s of (x, y) is that at -s of (y, x): b's phases against a
        best = min(best, _best_ber(list(b.phases), a.bits, a.voiced, max_shift))
    return 1.0 - best


def _best_ber(xs: list[tuple[np.ndarray, np.ndarray]], ybits: np.ndarray, yvoiced: np.ndarray, max_shift: int) -> float:
    """The lowest bit error rate of any ``x`` in ``xs`` against ``y``, over shifts ``-max_shift..max_shift``
    (``x[s + t]`` against ``y[t]``), on frames voiced in both; a shift counts when at least half of the
    less voiced clip's voiced frames (and 8) overlap. All shifts of all ``xs`` in one array pass: each x is
    padded with unvoiced frames, so a shift's out-of-range frames drop out of the mask by themselves."""
    ny, shifts = ybits.size, 2 * max_shift + 1
    width = 2 * max_shift + ny + max(x.size for x, _ in xs)
    xb = np.zeros((len(xs), width), np.uint32)
    xv = np.zeros((len(xs), width), bool)
    for k, (bits, voiced) in enumerate(xs):
        xb[k, max_shift : max_shift + bits.size] = bits
        xv[k, max_shift : max_shift + voiced.size] = voiced
    windows = np.lib.stride_tricks.sliding_window_view(xb, ny, axis=1)[:, :shifts]  # [k, r, t] = x_k[r - max_shift + t]
    mask = np.lib.stride_tricks.sliding_window_view(xv, ny, axis=1)[:, :shifts] & yvoiced
    errors = (np.bitwise_count(windows ^ ybits) * mask).sum(axis=2, dtype=np.int64)
    overlap = mask.sum(axis=2, dtype=np.int64)
    need = 0.5 * np.minimum(xv.sum(axis=1), int(yvoiced.sum()))[:, None]
    ok = (overlap >= need) & (overlap >= 8)
    if not ok.any():
        return 1.0
    return float((errors[ok] / (32 * overlap[ok])).min())


def fingerprint_to_json(fp: Fingerprint) -> dict[str, Any]:
    """A fingerprint as JSON (arrays as base64 of their bytes, voiced flags packed 8 to a byte), exact:
    :func:`fingerprint_from_json` gives back equal arrays. How a rank hands its clips' identities to ``merge``
    (audiodata.pipeline.merge)."""

    def enc(a: np.ndarray) -> str:
        return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode("ascii")

    def flags(v: np.ndarray) -> str:
        return enc(np.packbits(v.astype(bool)))

    return {
        "bits": enc(fp.bits.astype(np.uint32, copy=False)),
        "voiced": flags(fp.voiced),
        "frames": int(fp.voiced.size),
        "sketch": enc(fp.sketch.astype(np.uint16, copy=False)),
        "seconds": fp.seconds,
        "phases": [[enc(b.astype(np.uint32, copy=False)), flags(v), int(v.size)] for b, v in fp.phases],
    }


def fingerprint_from_json(data: dict[str, Any]) -> Fingerprint:
    def dec(text: str, dtype: Any) -> np.ndarray:
        return np.frombuffer(base64.b64decode(text), dtype=dtype).copy()

    def flags(text: str, n: int) -> np.ndarray:
        return np.unpackbits(dec(text, np.uint8), count=n).astype(bool)

    return Fingerprint(
        dec(data["bits"], np.uint32),
        flags(data["voiced"], data["frames"]),
        dec(data["sketch"], np.uint16),
        float(data["seconds"]),
        tuple((dec(b, np.uint32), flags(v, n)) for b, v, n in data["phases"]),
    )
