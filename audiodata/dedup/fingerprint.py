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

from dataclasses import dataclass

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


def _band_matrix() -> np.ndarray:
    freqs = np.fft.rfftfreq(N_FFT, 1 / RATE)
    edges = np.geomspace(F_LOW, F_HIGH, N_BANDS + 1)
    m = np.zeros((freqs.size, N_BANDS), np.float32)
    for b in range(N_BANDS):
        m[(freqs >= edges[b]) & (freqs < edges[b + 1]), b] = 1.0
    return m


_BANDS = _band_matrix()
_WINDOW = np.hanning(N_FFT).astype(np.float32)
_PROJ = np.random.default_rng(20261123).standard_normal((SEGMENTS * 16, SKETCH_BITS)).astype(np.float32)
_WEIGHTS = (1 << np.arange(32, dtype=np.uint64)).astype(np.uint64)


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


def band_energies(pcm: np.ndarray) -> np.ndarray:
    """Log band energies, frames x bands, of 16 kHz mono samples (int16 or float)."""
    x = pcm.astype(np.float32)
    if pcm.dtype == np.int16:
        x /= 32768.0
    x = x[: int(MAX_SECONDS * RATE)]
    if x.size < N_FFT:
        x = np.pad(x, (0, N_FFT - x.size))
    n = 1 + (x.size - N_FFT) // HOP
    frames = np.lib.stride_tricks.as_strided(x, (n, N_FFT), (x.strides[0] * HOP, x.strides[0]))
    power = np.abs(np.fft.rfft(frames * _WINDOW, axis=1)) ** 2
    return np.log10(power @ _BANDS + 1e-10).astype(np.float32)


def fingerprint(pcm: np.ndarray, rate: int = RATE, phases: bool = True) -> Fingerprint:
    if rate != RATE:  # e.g. convert --sample-rate 24000: fingerprints always compare at 16 kHz
        import soxr

        pcm = np.clip(np.rint(soxr.resample(pcm.astype(np.float32), rate, RATE, quality="HQ")), -32768, 32767).astype(np.int16)
    e = band_energies(pcm)
    bits, voiced = _bits(e)
    shifted = tuple(_bits(band_energies(pcm[k:])) for k in PHASES) if phases and pcm.shape[0] > N_FFT + HOP else ()
    return Fingerprint(bits, voiced, _sketch(e, voiced), pcm.shape[0] / RATE, shifted)


def _bits(e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    diff = e[:, :-1] - e[:, 1:]  # across bands
    d = np.diff(diff, axis=0, prepend=diff[:1])  # across time
    bits = ((d > 0).astype(np.uint64) @ _WEIGHTS).astype(np.uint32)
    total = np.log10(np.power(10.0, e).sum(axis=1) + 1e-10)
    voiced = total >= (total.max() - VOICED_DB / 10.0) if total.size else np.zeros(0, bool)
    return bits, voiced


def _sketch(e: np.ndarray, voiced: np.ndarray) -> np.ndarray:
    frames = e[voiced] if voiced.any() else e
    frames = frames - frames.mean(axis=0, keepdims=True)  # per-band normalisation: gain and channel colour out
    pooled_bands = frames[:, : (N_BANDS // 2) * 2].reshape(frames.shape[0], 16, 2).mean(axis=2)
    segs = np.array_split(pooled_bands, SEGMENTS, axis=0)
    vec = np.concatenate([s.mean(axis=0) if len(s) else np.zeros(16, np.float32) for s in segs])
    bits = (vec @ _PROJ) > 0
    words = bits.reshape(-1, BAND_BITS).astype(np.uint32) @ (1 << np.arange(BAND_BITS, dtype=np.uint32))
    return words.astype(np.uint16)


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
    best = _ber(a.bits, a.voiced, b.bits, b.voiced, max_shift)
    for bits, voiced in a.phases:
        best = min(best, _ber(bits, voiced, b.bits, b.voiced, max_shift))
    for bits, voiced in b.phases:
        best = min(best, _ber(a.bits, a.voiced, bits, voiced, max_shift))
    return 1.0 - best


def _ber(abits: np.ndarray, avoiced: np.ndarray, bbits: np.ndarray, bvoiced: np.ndarray, max_shift: int) -> float:
    best = 1.0
    need = 0.5 * min(int(avoiced.sum()), int(bvoiced.sum()))
    for shift in range(-max_shift, max_shift + 1):
        if shift >= 0:
            xa, xb, va, vb = abits[shift:], bbits, avoiced[shift:], bvoiced
        else:
            xa, xb, va, vb = abits, bbits[-shift:], avoiced, bvoiced[-shift:]
        n = min(xa.size, xb.size)
        mask = va[:n] & vb[:n]
        m = int(mask.sum())
        if m < need or m < 8:
            continue
        errors = int(np.bitwise_count(np.bitwise_xor(xa[:n][mask], xb[:n][mask])).sum())
        best = min(best, errors / (32 * m))
    return best
