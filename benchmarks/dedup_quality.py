#!/usr/bin/env python
"""Near-duplicate detection quality: precision and recall of the clip fingerprint per variant type.

A labelled set of real (synthetic) speech is built with espeak-ng and cached in
``benchmarks/.cache/``: about 40 sentences (many 1-3 s, some 8-15 s), one voice per sentence,
written at 22.05 kHz. Every original gets variants made with the real tools:

* lossless -- exact copy (same bytes), FLAC (sox), WAV float32 (sox): must match exactly;
* near     -- 22.05 -> 44.1 kHz (sox), MP3 128k (ffmpeg libmp3lame), AAC/m4a 96k (ffmpeg aac),
              gain x0.5 (sox vol), white noise at 35 dB SNR over the voiced part (numpy),
              MP3 128k of the x0.5 gain (ffmpeg): should match by fingerprint;
* hard negatives -- the same sentence by another voice of the same accent (identical timing),
  by a voice of another accent, and by the same voice at espeak speed 130 and 220; plus every
  other sentence of the same voice (random negatives): must never match.

Each file is decoded exactly as the pipeline does (``decode`` -> ``to_pcm16`` at 16 kHz) and
fingerprinted. Two evaluations:

* pairwise -- ``similarity`` of each variant / negative against its original: min / median / max
  per type, recall / false-positive rate at the threshold, the separating threshold range and a
  threshold sweep;
* end to end -- all files in a seeded shuffled order through ``ClipIndex.resolve`` (exact PCM
  hash, then LSH candidates verified by similarity): per type, how many ended in their
  original's cluster and how many were merged with a different recording; overall pairwise
  precision / recall of the clustering; recall for short (< 3 s) and long clips separately.

Usage::

    python benchmarks/dedup_quality.py --workers 2 --json dedup_quality.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import soundfile as sf
from _shared import CACHE_DIR, command_line, headline, machine, save_results, use_checkout

use_checkout()

from audiodata.audio.decode import decode  # noqa: E402
from audiodata.audio.load import AudioSource  # noqa: E402
from audiodata.audio.transform import pcm_hash, to_pcm16  # noqa: E402
from audiodata.dedup.fingerprint import MAX_SHIFT, RATE, Fingerprint, fingerprint, similarity  # noqa: E402
from audiodata.dedup.index import NEAR_THRESHOLD, ClipIndex  # noqa: E402

SET_VERSION = 3
SEED = 20261123
ESPEAK_SR = 22_050
MAX_DURATION = 600.0
SHORT_SECONDS = 3.0  # clips under this are "short" (speech corpora are full of 1-3 s clips)
LONG_SECONDS = 8.0
NOISE_SNR_DB = 35.0
NOISE_VOICED_DB = 40.0  # 20 ms frames within this many dB of the loudest one are the signal the SNR refers to

TARGET_LOSSLESS_RECALL = 1.0
TARGET_NEAR_RECALL = 0.9
TARGET_NEGATIVE_FP = 0

# --------------------------------------------------------------------------------------------
# The labelled set: sentences, voices, variant types
# --------------------------------------------------------------------------------------------

# fmt: off
SENTENCES = [
    # short: 1-3 s
    "Thank you.", "Hello there.", "Yes, of course.", "Turn left here.", "Where is the station?",
    "I am not sure.", "Please sit down.", "Good morning, everyone.", "Call me tomorrow.",
    "It is raining again.", "The door is open.", "What time is it?", "Bring two apples.",
    "She likes green tea.", "We lost the keys.", "Stop the car now.", "Open the window, please.",
    "He missed the last bus.", "That sounds great to me.", "Nobody answered the phone.",
    # medium: 3-8 s
    "The train to Edinburgh leaves from platform nine at a quarter past six.",
    "My grandmother kept every letter she ever received in a wooden box under her bed.",
    "Could you send me the report before the meeting on Thursday afternoon?",
    "The museum is closed on Mondays, but the garden stays open until sunset.",
    "Please remember to water the tomatoes while I am away next week.",
    "Forty two people signed the petition before lunch on the first day.",
    "The old lighthouse was painted white and red by the volunteers last summer.",
    "If the weather holds, we will climb the northern ridge early tomorrow morning.",
    "He ordered a bowl of soup, a slice of bread, and a glass of cold water.",
    "The children built a small bridge of sticks across the stream behind the school.",
    # long: 8-15 s
    "When the storm finally passed, the fishermen walked down to the harbour to inspect their boats, "
    "and they were surprised to find that only two of them had been damaged by the waves.",
    "The committee spent most of the afternoon arguing about the budget for the new library, "
    "although everyone agreed from the start that the old building could not be repaired.",
    "Before you leave the laboratory, make sure that every sample is labelled with the date, "
    "the name of the experiment, and the temperature at which it was stored overnight.",
    "She had never seen the ocean before, so when the bus came over the last hill and the water "
    "appeared on the horizon, she pressed her face against the window and laughed.",
    "The recipe calls for three cups of flour, two eggs, a pinch of salt, half a cup of sugar, "
    "and enough warm milk to make a smooth batter that coats the back of a spoon.",
    "According to the schedule, the orchestra will rehearse on Tuesday and Wednesday evenings, "
    "and the first concert of the season will take place on the fourteenth of October.",
    "Our neighbour repaired the broken fence in the garden, painted the front door dark green, "
    "and then spent the rest of the weekend planting roses along the narrow path.",
    "The pilot announced that we would be landing about twenty minutes early because of a strong "
    "tail wind, and asked all passengers to return to their seats and fasten their belts.",
    "Although the map showed a road across the valley, the farmers told us that it had been "
    "washed away years ago, and that the only way across was a narrow footbridge further north.",
    "Every student in the class was asked to write a short essay about a person who had changed "
    "their life, and to read it aloud in front of the others at the end of the term.",
]
# fmt: on

#: (accent, variant) pairs of the originals; variants only change the speaker, never the timing.
#: British English is spelled "en": espeak-ng 1.51 silently ignores any "+variant" of "en-gb".
ORIGINAL_VOICES = [
    ("en-us", ""), ("en", ""), ("en-us", "+f3"), ("en-gb-x-rp", ""), ("en-us", "+m5"),
    ("en-gb-scotland", "+f2"), ("en-029", ""), ("en-us-nyc", "+m3"),
]  # fmt: skip
ACCENTS = sorted({a for a, _ in ORIGINAL_VOICES} | {"en-gb-x-gbclan"})
SPEAKER_VARIANTS = ["", "+f2", "+f3", "+f4", "+m2", "+m3", "+m5", "+klatt"]
ORIGINAL_SPEEDS = [150, 165, 175, 190]
NEGATIVE_SPEEDS = [130, 220]


class VariantType(NamedTuple):
    """One kind of derived file and what the deduper should do with it."""

    name: str
    group: str  # original | lossless | near | negative
    description: str


VARIANT_TYPES = [
    VariantType("original", "original", "espeak-ng, 22.05 kHz PCM16 WAV"),
    VariantType("exact_copy", "lossless", "same bytes"),
    VariantType("flac", "lossless", "sox -> FLAC"),
    VariantType("wav_float32", "lossless", "sox -> WAV float32"),
    VariantType("resample_44k", "near", "sox rate 22.05 -> 44.1 kHz"),
    VariantType("mp3_128k", "near", "ffmpeg libmp3lame 128k"),
    VariantType("aac_96k", "near", "ffmpeg aac 96k in m4a"),
    VariantType("gain_0.5", "near", "sox vol 0.5"),
    VariantType("noise_35db", "near", "white noise, 35 dB SNR over voiced frames"),
    VariantType("mp3_gain", "near", "gain x0.5 then MP3 128k"),
    VariantType("neg_voice_same_accent", "negative", "same sentence, other speaker, same accent (same timing)"),
    VariantType("neg_voice_other_accent", "negative", "same sentence, other accent and speaker"),
    VariantType("neg_speed_130", "negative", "same sentence and voice, espeak -s 130"),
    VariantType("neg_speed_220", "negative", "same sentence and voice, espeak -s 220"),
    VariantType("neg_other_sentence", "negative", "another sentence by the same voice (pairwise only)"),
]
TYPES = {t.name: t for t in VARIANT_TYPES}
EXTENSIONS = {"flac": ".flac", "mp3_128k": ".mp3", "aac_96k": ".m4a", "mp3_gain": ".mp3"}


class SynthSpec(NamedTuple):
    """One espeak-ng rendering."""

    text: str
    voice: str
    speed: int
    path: str


class DeriveSpec(NamedTuple):
    """One variant made from an original."""

    kind: str
    src: str
    path: str
    seed: int


@dataclass
class Item:
    """One file of the labelled set."""

    path: str
    sentence: int
    kind: str
    voice: str
    speed: int

    @property
    def label(self) -> str:
        """Files with equal labels are the same recording."""
        if TYPES[self.kind].group in ("original", "lossless", "near"):
            return f"s{self.sentence}"
        return f"s{self.sentence}:{self.kind}"


# --------------------------------------------------------------------------------------------
# Building the set (cached)
# --------------------------------------------------------------------------------------------


def _run(cmd: list[str]) -> None:
    """Run a tool; its output is only shown when it fails."""
    subprocess.run(cmd, capture_output=True, check=True)


def _synthesize(spec: SynthSpec) -> None:
    """espeak-ng straight to a 22.05 kHz PCM16 WAV."""
    _run(["espeak-ng", "-v", spec.voice, "-s", str(spec.speed), "-w", spec.path, spec.text])


def _add_noise(src: str, dst: str, snr_db: float, seed: int) -> None:
    """White Gaussian noise at ``snr_db`` below the mean power of the voiced 20 ms frames."""
    x, sr = sf.read(src, dtype="float64")
    hop = sr // 50
    n = len(x) // hop
    power = (x[: n * hop].reshape(n, hop) ** 2).mean(axis=1)
    voiced = power >= power.max() * 10 ** (-NOISE_VOICED_DB / 10)
    signal = float(power[voiced].mean())
    noise = np.random.default_rng(seed).normal(0.0, np.sqrt(signal / 10 ** (snr_db / 10)), len(x))
    sf.write(dst, np.clip(x + noise, -1.0, 1.0), sr, subtype="PCM_16")


def _derive(spec: DeriveSpec) -> None:
    """Make one variant of an original with the tool a user would have used."""
    src, dst = spec.src, spec.path
    ffmpeg = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", src]
    if spec.kind == "exact_copy":
        shutil.copyfile(src, dst)
    elif spec.kind == "flac":
        _run(["sox", "-R", src, dst])
    elif spec.kind == "wav_float32":
        _run(["sox", "-R", src, "-e", "floating-point", "-b", "32", dst])
    elif spec.kind == "resample_44k":
        _run(["sox", "-R", src, dst, "rate", "44100"])
    elif spec.kind == "mp3_128k":
        _run([*ffmpeg, "-c:a", "libmp3lame", "-b:a", "128k", dst])
    elif spec.kind == "aac_96k":
        _run([*ffmpeg, "-c:a", "aac", "-b:a", "96k", dst])
    elif spec.kind == "gain_0.5":
        _run(["sox", "-R", src, dst, "vol", "0.5"])
    elif spec.kind == "noise_35db":
        _add_noise(src, dst, NOISE_SNR_DB, spec.seed)
    elif spec.kind == "mp3_gain":
        _run([*ffmpeg, "-af", "volume=0.5", "-c:a", "libmp3lame", "-b:a", "128k", dst])
    else:
        raise ValueError(spec.kind)


def _voice(accent: str, variant: str) -> str:
    """An espeak-ng voice spec: accent plus speaker variant."""
    return accent + variant


def plan(set_dir: Path) -> tuple[list[Item], list[SynthSpec], list[DeriveSpec]]:
    """The deterministic layout of the set: items, espeak-ng renderings, derivations."""
    rng = random.Random(SEED)
    items: list[Item] = []
    synth: list[SynthSpec] = []
    derive: list[DeriveSpec] = []
    for s, text in enumerate(SENTENCES):
        accent, variant = ORIGINAL_VOICES[s % len(ORIGINAL_VOICES)]
        voice, speed = _voice(accent, variant), rng.choice(ORIGINAL_SPEEDS)
        orig = str(set_dir / f"s{s:02d}-original.wav")
        items.append(Item(orig, s, "original", voice, speed))
        synth.append(SynthSpec(text, voice, speed, orig))
        for t in VARIANT_TYPES:
            if t.group not in ("lossless", "near"):
                continue
            path = str(set_dir / f"s{s:02d}-{t.name}{EXTENSIONS.get(t.name, '.wav')}")
            items.append(Item(path, s, t.name, voice, speed))
            derive.append(DeriveSpec(t.name, orig, path, SEED + 1000 * s + len(derive)))
        # a different voice is a different speaker too: the same espeak-ng speaker in a neighbouring accent
        # (en-us vs en-us-nyc) often renders a short sentence with the same phonemes, i.e. the same audio
        same_variant, other_variant = rng.sample([v for v in SPEAKER_VARIANTS if v != variant], 2)
        same_accent = _voice(accent, same_variant)
        other_accent = _voice(rng.choice([a for a in ACCENTS if a != accent]), other_variant)
        negatives = [
            ("neg_voice_same_accent", same_accent, speed),
            ("neg_voice_other_accent", other_accent, speed),
            *((f"neg_speed_{v}", voice, v) for v in NEGATIVE_SPEEDS),
        ]
        for kind, v, sp in negatives:
            path = str(set_dir / f"s{s:02d}-{kind}.wav")
            items.append(Item(path, s, kind, v, sp))
            synth.append(SynthSpec(text, v, sp, path))
    return items, synth, derive


def build_set(set_dir: Path, workers: int, rebuild: bool) -> tuple[list[Item], dict[str, Any]]:
    """Build ``set_dir`` unless a complete copy of this version is there; return its items."""
    items, synth, derive = plan(set_dir)
    digest = hashlib.blake2b(json.dumps([SET_VERSION, synth, derive]).encode(), digest_size=8).hexdigest()
    meta_file = set_dir / "meta.json"
    if not rebuild and meta_file.exists():
        meta = json.loads(meta_file.read_text())
        if meta.get("plan") == digest and all(Path(i.path).exists() for i in items):
            return items, meta
    print(f"building the labelled set ({len(items)} files) in {set_dir} ...", flush=True)
    t0 = time.perf_counter()
    shutil.rmtree(set_dir, ignore_errors=True)
    set_dir.mkdir(parents=True)
    with mp.Pool(workers) as pool:
        pool.map(_synthesize, synth, chunksize=4)
        _check_renderings(items)
        pool.map(_derive, derive, chunksize=4)
    meta = {
        "version": SET_VERSION,
        "plan": digest,
        "files": len(items),
        "build_seconds": round(time.perf_counter() - t0, 2),
        "build_workers": workers,
        "tools": _tool_versions(),
    }
    (set_dir / "items.json").write_text(json.dumps([i.__dict__ for i in items], indent=1))
    meta_file.write_text(json.dumps(meta, indent=1))  # written last: marks the set complete
    print(f"built in {meta['build_seconds']:.1f} s with {workers} workers", flush=True)
    return items, meta


def _check_renderings(items: list[Item]) -> None:
    """Every espeak-ng rendering of a sentence must differ from the others (a voice spec espeak-ng
    does not honour falls back silently, and would turn a hard negative into an exact copy)."""
    seen: dict[tuple[int, str], str] = {}
    for it in items:
        if it.kind == "original" or TYPES[it.kind].group == "negative":
            digest = hashlib.blake2b(sf.read(it.path, dtype="int16")[0].tobytes(), digest_size=16).hexdigest()
            other = seen.setdefault((it.sentence, digest), it.kind)
            if other != it.kind:
                raise RuntimeError(f"sentence {it.sentence}: {it.kind} ({it.voice}) renders the same samples as {other}")


def _tool_versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for tool, args in (("espeak-ng", ["--version"]), ("sox", ["--version"]), ("ffmpeg", ["-version"])):
        try:
            text = subprocess.run([tool, *args], capture_output=True, text=True, check=True).stdout
            out[tool] = text.strip().splitlines()[0]
        except (OSError, subprocess.CalledProcessError, IndexError):
            out[tool] = "unknown"
    return out


# --------------------------------------------------------------------------------------------
# Decoding and fingerprinting, exactly as the pipeline does
# --------------------------------------------------------------------------------------------


class Printed(NamedTuple):
    """What the audio stage hands dedup for one clip."""

    pcm_hash: str
    fp: Fingerprint
    seconds: float


def _fingerprint_file(path: str) -> Printed:
    """decode -> to_pcm16 at 16 kHz -> pcm_hash + fingerprint, as the audio stage does."""
    decoded = decode(AudioSource(path=Path(path), name=path), MAX_DURATION)
    pcm = to_pcm16(decoded, RATE)
    return Printed(pcm_hash(pcm), fingerprint(pcm), pcm.shape[0] / RATE)


def fingerprint_all(items: list[Item], workers: int) -> list[Printed]:
    """Fingerprints of every item, in item order."""
    with mp.Pool(workers) as pool:
        return pool.map(_fingerprint_file, [i.path for i in items], chunksize=8)


def raw_similarity(a: Fingerprint, b: Fingerprint, max_shift: int = MAX_SHIFT) -> float:
    """``similarity`` without its length-ratio gate: what the bits alone say (a diagnostic)."""
    best = 1.0
    for shift in range(-max_shift, max_shift + 1):
        if shift >= 0:
            xa, xb, va, vb = a.bits[shift:], b.bits, a.voiced[shift:], b.voiced
        else:
            xa, xb, va, vb = a.bits, b.bits[-shift:], a.voiced, b.voiced[-shift:]
        n = min(xa.size, xb.size)
        mask = va[:n] & vb[:n]
        m = int(mask.sum())
        if m < 8:
            continue
        errors = int(np.bitwise_count(np.bitwise_xor(xa[:n][mask], xb[:n][mask])).sum())
        best = min(best, errors / (32 * m))
    return 1.0 - best


def duration_bucket(seconds: float) -> str:
    """short (< 3 s), medium, long (>= 8 s)."""
    if seconds < SHORT_SECONDS:
        return "short"
    return "long" if seconds >= LONG_SECONDS else "medium"


# --------------------------------------------------------------------------------------------
# Evaluation (a): pairwise similarity against the original
# --------------------------------------------------------------------------------------------


class Pair(NamedTuple):
    """One similarity measurement against an original."""

    kind: str
    sentence: int
    other: int  # the other sentence for neg_other_sentence, else the same
    seconds: float  # the original's duration
    sim: float
    raw: float


def pairwise(items: list[Item], prints: list[Printed]) -> list[Pair]:
    """Every variant / negative against its original, and every original against the other
    sentences of the same voice."""
    originals = {it.sentence: k for k, it in enumerate(items) if it.kind == "original"}
    pairs: list[Pair] = []
    for k, it in enumerate(items):
        if it.kind == "original":
            continue
        o = prints[originals[it.sentence]]
        pairs.append(
            Pair(it.kind, it.sentence, it.sentence, o.seconds, similarity(prints[k].fp, o.fp), raw_similarity(prints[k].fp, o.fp))
        )
    for s, ks in originals.items():
        for t, kt in originals.items():
            if t > s and items[ks].voice == items[kt].voice:
                a, b = prints[ks], prints[kt]
                pairs.append(
                    Pair(
                        "neg_other_sentence", s, t, min(a.seconds, b.seconds), similarity(a.fp, b.fp), raw_similarity(a.fp, b.fp)
                    )
                )
    return pairs


def _stats(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"min": None, "median": None, "max": None}
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def threshold_analysis(pairs: list[Pair], threshold: float) -> dict[str, Any]:
    """Where near copies and hard negatives sit, and which thresholds separate them."""
    pos = [p.sim for p in pairs if TYPES[p.kind].group == "near"]
    neg = [p.sim for p in pairs if TYPES[p.kind].group == "negative"]
    hard = [p.sim for p in pairs if TYPES[p.kind].group == "negative" and p.kind != "neg_other_sentence"]
    neg_raw = [p.raw for p in pairs if TYPES[p.kind].group == "negative"]
    min_pos, max_neg = min(pos), max(neg)
    out: dict[str, Any] = {
        "threshold": threshold,
        "min_near_positive": min_pos,
        "max_negative": max_neg,
        "max_hard_negative": max(hard),
        "max_negative_without_length_gate": max(neg_raw),
        "gap": min_pos - max_neg,
        "separating_range": [max_neg, min_pos] if min_pos > max_neg else None,
        "suggested_threshold": round((min_pos + max_neg) / 2, 3) if min_pos > max_neg else None,
        "near_recall_at_threshold": sum(v >= threshold for v in pos) / len(pos),
        "negative_fp_at_threshold": sum(v >= threshold for v in neg),
    }
    # the best thresholds when the classes overlap: zero false positives, or full recall
    zero_fp = max_neg + 1e-6
    out["recall_at_zero_fp_threshold"] = {"threshold": zero_fp, "recall": sum(v >= zero_fp for v in pos) / len(pos)}
    out["fp_at_full_recall_threshold"] = {"threshold": min_pos, "false_positives": sum(v >= min_pos for v in neg)}
    sweep = []
    for t in (round(0.60 + 0.025 * i, 3) for i in range(15)):
        short = [p.sim for p in pairs if TYPES[p.kind].group == "near" and p.seconds < SHORT_SECONDS]
        sweep.append(
            {
                "threshold": t,
                "near_recall": sum(v >= t for v in pos) / len(pos),
                "near_recall_short": sum(v >= t for v in short) / len(short) if short else None,
                "hard_negative_fp": sum(v >= t for v in hard),
                "negative_fp": sum(v >= t for v in neg),
            }
        )
    out["sweep"] = sweep
    return out


# --------------------------------------------------------------------------------------------
# Evaluation (b): end to end through ClipIndex
# --------------------------------------------------------------------------------------------


def end_to_end(items: list[Item], prints: list[Printed], threshold: float, seed: int) -> dict[str, Any]:
    """Feed every file through ``ClipIndex.resolve`` in a shuffled order; score the clusters."""
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    index = ClipIndex(near=True, threshold=threshold)
    cluster: dict[int, int] = {}  # item -> clip id of its cluster (the first clip of it)
    root: dict[int, int] = {}  # clip id -> the item that created it
    match_kind: dict[int, str] = {}
    match_sim: dict[int, float] = {}
    t0 = time.perf_counter()
    for k in order:
        cid, match = index.resolve(prints[k].pcm_hash, prints[k].fp)
        cluster[k] = cid
        root.setdefault(cid, k)
        match_kind[k] = match.kind if match else "new"
        match_sim[k] = match.similarity if match else 0.0
    seconds = time.perf_counter() - t0
    members: dict[int, list[int]] = defaultdict(list)
    for k, cid in cluster.items():
        members[cid].append(k)
    original_of = {it.sentence: k for k, it in enumerate(items) if it.kind == "original"}
    found: dict[int, bool] = {}
    wrong_match: dict[int, int] = {}  # item -> the item of a different recording it was matched to
    flagged: dict[int, bool] = {}  # the item shares a cluster with a different recording
    for k, it in enumerate(items):
        first = root[cluster[k]]
        if first != k and items[first].label != it.label:
            wrong_match[k] = first
        flagged[k] = any(items[j].label != it.label for j in members[cluster[k]])
        if TYPES[it.kind].group in ("lossless", "near"):
            found[k] = cluster[k] == cluster[original_of[it.sentence]]
    merged_originals = {  # random negatives end to end: an original in a cluster with another sentence
        k: any(items[j].sentence != items[k].sentence for j in members[cluster[k]]) for k in original_of.values()
    }
    # pairwise precision / recall of the clustering over all pairs of files
    true_pairs = pred_pairs = hit_pairs = 0
    by_label: dict[str, list[int]] = defaultdict(list)
    for k, it in enumerate(items):
        by_label[it.label].append(k)
    for ks in by_label.values():
        true_pairs += len(ks) * (len(ks) - 1) // 2
    for ks in members.values():
        pred_pairs += len(ks) * (len(ks) - 1) // 2
        labels: dict[str, int] = defaultdict(int)
        for j in ks:
            labels[items[j].label] += 1
        hit_pairs += sum(c * (c - 1) // 2 for c in labels.values())
    return {
        "seed": seed,
        "threshold": threshold,
        "seconds": seconds,
        "comparisons": index.comparisons,
        "clusters": len(members),
        "true_clusters": len(by_label),
        "pair_precision": hit_pairs / pred_pairs if pred_pairs else 1.0,
        "pair_recall": hit_pairs / true_pairs if true_pairs else 1.0,
        "found": found,
        "wrong_match": wrong_match,
        "flagged": flagged,
        "merged_originals": merged_originals,
        "match_kind": match_kind,
        "match_sim": match_sim,
    }


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def _fmt(v: float | None, spec: str = ".3f") -> str:
    return "-" if v is None else format(v, spec)


def _pct(num: int, den: int) -> str:
    return "-" if not den else f"{num / den:.1%}"


def report(
    items: list[Item], prints: list[Printed], pairs: list[Pair], e2e: dict[str, Any], thr: dict[str, Any]
) -> dict[str, Any]:
    """Print the tables; return the JSON-able figures."""
    threshold = e2e["threshold"]
    seconds = {it.sentence: prints[k].seconds for k, it in enumerate(items) if it.kind == "original"}
    buckets = [duration_bucket(s) for s in seconds.values()]
    print(
        f"\nset: {len(SENTENCES)} sentences ({buckets.count('short')} short < {SHORT_SECONDS:g} s, "
        f"{buckets.count('medium')} medium, {buckets.count('long')} long >= {LONG_SECONDS:g} s; "
        f"{min(seconds.values()):.2f}-{max(seconds.values()):.2f} s), {len(items)} files, "
        f"{len({it.voice for it in items if it.kind == 'original'})} original voices"
    )
    found, wrong_match, flagged = e2e["found"], e2e["wrong_match"], e2e["flagged"]
    rows: list[dict[str, Any]] = []
    header = (
        f"{'type':<23} {'n':>4} {'recall':>7} {'short':>7} {'FP':>3} {'precision':>9} {'exact':>5} {'near':>5} "
        f"{'sim min':>7} {'median':>7} {'max':>7} {'>=thr':>5} {'raw max':>7}"
    )
    print(
        f"\nper variant type (threshold {threshold:.2f}; recall, FP, precision: end to end; similarity: pairwise vs the original)"
    )
    print(header)
    print("-" * len(header))
    for t in VARIANT_TYPES:
        ks = [k for k, it in enumerate(items) if it.kind == t.name]
        sims = [p.sim for p in pairs if p.kind == t.name]
        n = len(sims) if t.name == "neg_other_sentence" else len(ks)
        row: dict[str, Any] = {"type": t.name, "group": t.group, "description": t.description, "n": n}
        if t.group in ("lossless", "near"):
            short = [k for k in ks if seconds[items[k].sentence] < SHORT_SECONDS]
            matched = [k for k in ks if e2e["match_kind"][k] != "new"]
            row |= {
                "found": sum(found[k] for k in ks),
                "recall": _ratio(found[k] for k in ks),
                "recall_short": _ratio(found[k] for k in short),
                "recall_by_duration": {
                    b: _ratio(found[k] for k in ks if duration_bucket(seconds[items[k].sentence]) == b)
                    for b in ("short", "medium", "long")
                },
                "false_positives": sum(k in wrong_match for k in ks),
                "precision": _ratio(k not in wrong_match for k in matched),
                "matched_exact": sum(e2e["match_kind"][k] == "exact" for k in ks),
                "matched_near": sum(e2e["match_kind"][k] == "near" for k in ks),
                "sim_min_short": min((p.sim for p in pairs if p.kind == t.name and p.seconds < SHORT_SECONDS), default=None),
            }
        elif t.name == "original":
            row |= {"false_positives": sum(e2e["merged_originals"].values()), "fp_basis": "in a cluster with another sentence"}
        elif t.name == "neg_other_sentence":
            row |= {"false_positives": sum(v >= threshold for v in sims), "fp_basis": "pairs at or above the threshold"}
        else:
            row |= {"false_positives": sum(flagged[k] for k in ks), "fp_basis": "in a cluster with another recording"}
        if sims:
            row |= {f"sim_{k}": v for k, v in _stats(sims).items()}
            row["at_or_above_threshold"] = sum(v >= threshold for v in sims)
            row["raw_sim_max"] = max(p.raw for p in pairs if p.kind == t.name)
        rows.append(row)
        print(
            f"{t.name:<23} {n:>4} {_fmt(row.get('recall'), '.1%'):>7} {_fmt(row.get('recall_short'), '.1%'):>7} "
            f"{row['false_positives']:>3} {_fmt(row.get('precision'), '.1%'):>9} "
            f"{row.get('matched_exact', '-')!s:>5} {row.get('matched_near', '-')!s:>5} "
            f"{_fmt(row.get('sim_min')):>7} {_fmt(row.get('sim_median')):>7} {_fmt(row.get('sim_max')):>7} "
            f"{row.get('at_or_above_threshold', '-')!s:>5} {_fmt(row.get('raw_sim_max')):>7}"
        )
    print(
        "  recall: ends in its original's cluster (short: originals < 3 s); exact/near: how the index matched it\n"
        "  (the rest came first of their recording: a lossless copy arriving after a lossy root can only match near);\n"
        "  FP: copies matched to another recording, negatives/originals merged with another recording\n"
        "  (neg_other_sentence: pairs >= threshold); precision: share of the type's index matches that were right;\n"
        "  >=thr: pairs at or above the threshold; raw max: similarity without the length-ratio gate"
    )

    print("\nend-to-end recall by original duration")
    by_dur: dict[str, dict[str, Any]] = {}
    for group in ("lossless", "near"):
        ks = [k for k, it in enumerate(items) if TYPES[it.kind].group == group]
        parts = []
        for b in ("short", "medium", "long"):
            sel = [found[k] for k in ks if duration_bucket(seconds[items[k].sentence]) == b]
            by_dur.setdefault(group, {})[b] = {"n": len(sel), "recall": _ratio(sel)}
            parts.append(f"{b} {_pct(sum(sel), len(sel))} of {len(sel)}")
        print(f"  {group:<9} " + ", ".join(parts))

    lossless = [k for k, it in enumerate(items) if TYPES[it.kind].group == "lossless"]
    near = [k for k, it in enumerate(items) if TYPES[it.kind].group == "near"]
    negatives = [k for k, it in enumerate(items) if TYPES[it.kind].group == "negative"]
    lossless_recall = sum(found[k] for k in lossless) / len(lossless)
    near_recall = sum(found[k] for k in near) / len(near)
    hard_fp = sum(flagged[k] for k in negatives)
    random_fp = sum(e2e["merged_originals"].values())
    print(
        f"\noverall end to end: pairwise precision {e2e['pair_precision']:.1%}, recall {e2e['pair_recall']:.1%}; "
        f"{e2e['clusters']} clusters for {e2e['true_clusters']} recordings; {e2e['comparisons']} fingerprint "
        f"comparisons in {e2e['seconds'] * 1000:.0f} ms (shuffle seed {e2e['seed']})"
    )
    verdicts = [
        ("lossless copies found", f"{lossless_recall:.1%}", lossless_recall >= TARGET_LOSSLESS_RECALL, "100%"),
        ("lossy/gain/noise found", f"{near_recall:.1%}", near_recall >= TARGET_NEAR_RECALL, f">= {TARGET_NEAR_RECALL:.0%}"),
        ("hard negatives flagged", str(hard_fp), hard_fp <= TARGET_NEGATIVE_FP, str(TARGET_NEGATIVE_FP)),
        ("originals merged", str(random_fp), random_fp <= TARGET_NEGATIVE_FP, str(TARGET_NEGATIVE_FP)),
    ]
    for name, shown, ok, target in verdicts:
        print(f"  {name:<24} {shown:>6}  (target {target}) {'ok' if ok else 'MISSED'}")

    print(f"\nthreshold analysis (pairwise; near copies vs all negatives; threshold {threshold:.2f})")
    print(
        f"  min near copy {thr['min_near_positive']:.3f}, max negative {thr['max_negative']:.3f} "
        f"(hard {thr['max_hard_negative']:.3f}; {thr['max_negative_without_length_gate']:.3f} without the length gate)"
    )
    if thr["separating_range"]:
        lo, hi = thr["separating_range"]
        print(
            f"  separated: any threshold in ({lo:.3f}, {hi:.3f}] works; "
            f"gap {thr['gap']:.3f}, midpoint {thr['suggested_threshold']:.3f}"
        )
    else:
        z, f = thr["recall_at_zero_fp_threshold"], thr["fp_at_full_recall_threshold"]
        print(
            f"  OVERLAP of {-thr['gap']:.3f}: zero false positives from {z['threshold']:.3f} (near recall {z['recall']:.1%}); "
            f"full recall up to {f['threshold']:.3f} ({f['false_positives']} false positives)"
        )
    print(f"  {'threshold':>9} {'near recall':>11} {'short':>7} {'hard FP':>7} {'all FP':>6}")
    for s in thr["sweep"]:
        print(
            f"  {s['threshold']:>9.3f} {s['near_recall']:>11.1%} {_fmt(s['near_recall_short'], '.1%'):>7} "
            f"{s['hard_negative_fp']:>7} {s['negative_fp']:>6}"
        )

    misses = [
        {
            "file": Path(items[k].path).name,
            "kind": items[k].kind,
            "seconds": round(seconds[items[k].sentence], 2),
            "sim_to_original": _pair_sim(pairs, items[k]),
            "match": e2e["match_kind"][k],
        }
        for k in lossless + near
        if not found[k]
    ]
    wrong = [
        {
            "file": Path(items[k].path).name,
            "matched": Path(items[j].path).name,
            "kind": e2e["match_kind"][k],
            "similarity": e2e["match_sim"][k],
        }
        for k, j in sorted(wrong_match.items())
    ]
    if misses:
        lost = sum(m["sim_to_original"] is not None and m["sim_to_original"] >= threshold for m in misses)
        print(f"\nmissed copies: {len(misses)} ({lost} of them >= threshold vs their original: lost by LSH or clustering)")
        for m in sorted(misses, key=lambda m: m["sim_to_original"] or 0.0)[:10]:
            print(f"  {m['file']:<32} {m['seconds']:>6.2f} s  similarity to original {_fmt(m['sim_to_original'])}")
    if wrong:
        print(f"\nwrong matches: {len(wrong)}")
        for w in wrong[:10]:
            print(f"  {w['file']:<32} -> {w['matched']:<32} {w['kind']:<5} {w['similarity']:.3f}")
    return {
        "rows": rows,
        "recall_by_duration": by_dur,
        "overall": {
            "pair_precision": e2e["pair_precision"],
            "pair_recall": e2e["pair_recall"],
            "lossless_recall": lossless_recall,
            "near_recall": near_recall,
            "hard_negatives_flagged": hard_fp,
            "originals_merged": random_fp,
            "clusters": e2e["clusters"],
            "true_clusters": e2e["true_clusters"],
            "comparisons": e2e["comparisons"],
            "index_seconds": e2e["seconds"],
            "shuffle_seed": e2e["seed"],
            "threshold": threshold,
            "meets_bar": all(ok for _, _, ok, _ in verdicts),
        },
        "threshold_analysis": thr,
        "missed": misses,
        "wrong_matches": wrong,
        "pairs": [p._asdict() for p in pairs],
        "durations": {f"s{s}": round(v, 3) for s, v in seconds.items()},
        "targets": {
            "lossless_recall": TARGET_LOSSLESS_RECALL,
            "near_recall": TARGET_NEAR_RECALL,
            "negative_fp": TARGET_NEGATIVE_FP,
        },
    }


def _ratio(flags: Iterable[bool]) -> float | None:
    values = list(flags)
    return sum(values) / len(values) if values else None


def _pair_sim(pairs: list[Pair], it: Item) -> float | None:
    return next((p.sim for p in pairs if p.kind == it.kind and p.sentence == it.sentence), None)


def _timed(label: str, fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    print(f"{label}: {dt:.1f} s", flush=True)
    return out, dt


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes for building and fingerprinting")
    p.add_argument(
        "--threshold",
        type=float,
        default=NEAR_THRESHOLD,
        help=f"similarity threshold (default NEAR_THRESHOLD = {NEAR_THRESHOLD})",
    )
    p.add_argument("--seed", type=int, default=SEED, help="shuffle seed of the end-to-end order")
    p.add_argument(
        "--set-dir", type=Path, default=CACHE_DIR / f"dedup-quality-v{SET_VERSION}", help="where the labelled set is cached"
    )
    p.add_argument("--rebuild", action="store_true", help="rebuild the labelled set even if cached")
    p.add_argument("--json", type=Path, help="also write every figure as JSON here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Build/reuse the set, fingerprint it, evaluate pairwise and end to end, print the tables."""
    args = parse_args(argv)
    at_start = machine()
    t0 = time.perf_counter()
    items, meta = build_set(args.set_dir.resolve(), args.workers, args.rebuild)
    prints, t_fp = _timed(
        f"decode + fingerprint {len(items)} files ({args.workers} workers)", lambda: fingerprint_all(items, args.workers)
    )
    pairs, t_pairs = _timed("pairwise similarities", lambda: pairwise(items, prints))
    e2e = end_to_end(items, prints, args.threshold, args.seed)
    thr = threshold_analysis(pairs, args.threshold)
    figures = report(items, prints, pairs, e2e, thr)
    total = time.perf_counter() - t0
    print(f"\ntotal {total:.1f} s")
    if args.json:
        figures |= {
            "set": {**meta, "dir": str(args.set_dir), "sentences": len(SENTENCES)},
            "timing": {"fingerprint_seconds": t_fp, "pairwise_seconds": t_pairs, "total_seconds": total},
            "items": [
                {**it.__dict__, "label": it.label, "seconds": round(p.seconds, 3), "pcm_hash": p.pcm_hash}
                for it, p in zip(items, prints, strict=True)
            ],
            "fingerprint_digest": hashlib.blake2b(b"".join(p.fp.bits.tobytes() for p in prints), digest_size=8).hexdigest(),
        }
        o = figures["overall"]
        heads = [headline(
            "dedup quality: lossy/gain/noise copies found end to end", 100 * o["near_recall"], "% recall",
            "the labelled copies planted", o["near_recall"],
            f"ratio: recall; lossless {o['lossless_recall']:.0%}, pairwise precision {o['pair_precision']:.1%}, "
            f"hard negatives flagged {o['hard_negatives_flagged']}",
        )]  # fmt: skip
        save_results(args.json, "dedup_quality", command_line("dedup_quality.py", argv), at_start, heads, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
