"""A seeded mutation fuzzer for the audio decoders, through the real audio stage.

Seeds are real audio: every clip in ``sample_data/audio`` (WAV, FLAC, OGG Vorbis/Opus, MP3, M4A) and clips
generated here (float WAV, WAVEX with 6 channels, W64, AIFF, CAF, 8-channel 192 kHz FLAC, Vorbis, Opus,
MP3, M4A and ADTS AAC through PyAV). Each case mutates one seed: byte flips in the header or the body,
truncation, absurd sample rates, channel counts and frame counts written into the header fields (RIFF
``fmt ``/``data``, FLAC STREAMINFO, the Vorbis and Opus identification headers with their Ogg page
checksums redone, the MP4 ``mp4a`` entry and ``mdhd``), zero-length data chunks, spliced and zeroed
regions, a wrong file extension, or the bytes inline as base64.

Every case goes through :func:`process_record` in a child process that the test watches: no exception
escapes (no traceback), each case ends within ``CASE_SECONDS`` (no hang), the child's resident memory stays
under ``MEMORY_BOUND`` (no unbounded memory), and every record is written or rejected with registered
codes and one-line messages. A batch of the same cases then goes through ``audiodata convert`` with two
workers: exit 0 or 1, no traceback, records read = written + rejected.

By default a few seconds' worth of cases run (``AUDIODATA_FUZZ_CASES``, default 80, and 24 of them through
convert). On demand, longer and elsewhere in the space::

    AUDIODATA_FUZZ_CASES=20000 AUDIODATA_FUZZ_SEED=7 python -m pytest tests/audio/test_fuzz_audio.py

A failure names the seed and the case index; ``python -m tests.audio.test_fuzz_audio SEED INDEX OUT`` writes that
case's file to OUT to reproduce it.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[2]
SAMPLE_AUDIO = REPO / "sample_data" / "audio"
CASES = int(os.environ.get("AUDIODATA_FUZZ_CASES", "80"))
CONVERT_CASES = min(CASES, int(os.environ.get("AUDIODATA_FUZZ_CONVERT_CASES", "24")))
SEED = int(os.environ.get("AUDIODATA_FUZZ_SEED", "20261127"))
CASE_SECONDS = 20.0  # generous: two shared cores; a case takes well under a second
MEMORY_BOUND = 1536 * 2**20  # resident bytes of the child: Python and its libraries (~200 MiB) plus one clip

RATES = [0, 1, 7, 100, 8000, 65535, 1048575, 2**24, 2**31 - 1, 2**32 - 1]
CHANNELS = [0, 1, 2, 8, 255, 1024, 65535]
SIZES = [0, 1, 2, 0x7FFFFFFF, 0xFFFFFFFF]


# ---------------------------------------------------------------- seeds


def _tone(seconds: float, rate: int, channels: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * 440 * t)[:, None] + 0.01 * np.random.default_rng(0).standard_normal((t.size, channels))
    return x.astype(np.float32)


def _sf(x: np.ndarray, rate: int, **kw: Any) -> bytes:
    buf = io.BytesIO()
    with sf.SoundFile(buf, "w", rate, x.shape[1], **kw) as out:
        for i in range(0, x.shape[0], 8192):
            out.write(x[i : i + 8192])
    return buf.getvalue()


def _pyav(x: np.ndarray, rate: int, fmt: str, codec: str, layout: str) -> bytes:
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = layout
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x.T), format="fltp", layout=layout)
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode()]:
            out.mux(packet)
    return buf.getvalue()


def seeds() -> dict[str, bytes]:
    """name (with the extension the case keeps) -> bytes."""
    out = {p.name: p.read_bytes() for p in sorted(SAMPLE_AUDIO.iterdir()) if p.is_file()}
    out["gen_float.wav"] = _sf(_tone(0.5, 44100, 2), 44100, format="WAV", subtype="FLOAT")
    out["gen_wavex6.wav"] = _sf(_tone(0.3, 48000, 6), 48000, format="WAVEX", subtype="PCM_24")
    out["gen.w64"] = _sf(_tone(0.4, 22050, 1), 22050, format="W64", subtype="DOUBLE")
    out["gen.aiff"] = _sf(_tone(0.4, 32000, 2), 32000, format="AIFF", subtype="PCM_16")
    out["gen.caf"] = _sf(_tone(0.4, 48000, 1), 48000, format="CAF", subtype="ALAC_16")
    out["gen_wide.flac"] = _sf(_tone(0.2, 192000, 8), 192000, format="FLAC", subtype="PCM_24")
    out["gen.ogg"] = _sf(_tone(0.6, 44100, 2), 44100, format="OGG", subtype="VORBIS")
    out["gen.opus"] = _sf(_tone(0.6, 48000, 1), 48000, format="OGG", subtype="OPUS")
    out["gen.mp3"] = _sf(_tone(0.6, 44100, 2), 44100, format="MP3", subtype="MPEG_LAYER_III")
    out["gen.m4a"] = _pyav(_tone(0.6, 44100, 2), 44100, "mp4", "aac", "stereo")
    out["gen.aac"] = _pyav(_tone(0.6, 16000, 1), 16000, "adts", "aac", "mono")
    return out


# ---------------------------------------------------------------- mutations


def _put(data: bytearray, at: int, value: int, size: int, order: str = "little") -> None:
    if at >= 0 and at + size <= len(data):
        data[at : at + size] = (value % (1 << (8 * size))).to_bytes(size, order)  # type: ignore[arg-type]


def _riff_chunks(data: bytes) -> dict[bytes, int]:
    """Offsets of the RIFF/RIFX chunk headers (WAV, WAVEX)."""
    found: dict[bytes, int] = {}
    if data[:4] not in (b"RIFF", b"RIFX") or data[8:12] != b"WAVE":
        return found
    pos = 12
    while pos + 8 <= len(data) and len(found) < 32:
        cid, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        found.setdefault(cid, pos)
        pos += 8 + size + (size & 1)
    return found


_CRC_TABLE = []
for _i in range(256):
    _r = _i << 24
    for _ in range(8):
        _r = ((_r << 1) ^ 0x04C11DB7) if _r & 0x80000000 else (_r << 1)
    _CRC_TABLE.append(_r & 0xFFFFFFFF)


def _ogg_crc(page: bytes) -> int:
    crc = 0
    for b in page:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CRC_TABLE[((crc >> 24) & 0xFF) ^ b]
    return crc


def _fix_ogg_page(data: bytearray, at: int) -> None:
    """Redo the checksum of the Ogg page holding offset ``at``, so a changed header field reaches the decoder."""
    start = data.rfind(b"OggS", 0, at + 1)
    if start < 0 or start + 27 > len(data):
        return
    nseg = data[start + 26]
    end = start + 27 + nseg + sum(data[start + 27 : start + 27 + nseg])
    if end > len(data):
        return
    data[start + 22 : start + 26] = b"\0\0\0\0"
    data[start + 22 : start + 26] = _ogg_crc(bytes(data[start:end])).to_bytes(4, "little")


def _absurd_field(data: bytearray, rng: np.random.Generator) -> str:
    """Write an absurd rate, channel count or length into a header field the container really has."""
    rate, channels, size = (int(rng.choice(v)) for v in (RATES, CHANNELS, SIZES))
    chunks = _riff_chunks(bytes(data))
    if b"fmt " in chunks and b"data" in chunks:
        fmt, dat = chunks[b"fmt "], chunks[b"data"]
        what = rng.choice(["rate", "channels", "align", "bits", "data size", "riff size"])
        if what == "rate":
            _put(data, fmt + 12, rate, 4)
        elif what == "channels":
            _put(data, fmt + 10, channels, 2)
        elif what == "align":
            _put(data, fmt + 20, int(rng.choice([0, 1, 3, 65535])), 2)
        elif what == "bits":
            _put(data, fmt + 22, int(rng.choice([0, 1, 7, 64, 65535])), 2)
        elif what == "data size":
            _put(data, dat + 4, size, 4)
        else:
            _put(data, 4, size, 4)
        return f"wav {what} -> {dict(rate=rate, channels=channels).get(what, size)}"
    if data[:4] == b"fLaC" and len(data) >= 26:
        what = rng.choice(["rate", "channels", "total samples", "block sizes"])
        bits = int.from_bytes(data[18:26], "big")  # rate:20 channels-1:3 bps-1:5 total:36
        if what == "rate":
            bits = (bits & ~(0xFFFFF << 44)) | ((rate & 0xFFFFF) << 44)
        elif what == "channels":
            bits = (bits & ~(0x7 << 41)) | (int(rng.integers(0, 8)) << 41)
        elif what == "total samples":
            bits = (bits & ~0xFFFFFFFFF) | int(rng.choice([0, 1, 2**36 - 1, int(rng.integers(0, 2**36))]))
        else:
            _put(data, 8, int(rng.choice([0, 1, 16, 65535])), 2, "big")
            _put(data, 10, int(rng.choice([0, 1, 16, 65535])), 2, "big")
        data[18:26] = bits.to_bytes(8, "big")
        return f"flac {what} -> {rate if what == 'rate' else '...'}"
    for codec, magic, ch_at, rate_at in (("vorbis", b"\x01vorbis", 11, 12), ("opus", b"OpusHead", 9, 12)):
        at = data.find(magic)
        if at >= 0 and at + rate_at + 4 <= len(data):
            what = rng.choice(["rate", "channels"])
            if what == "rate":
                _put(data, at + rate_at, rate, 4)
            else:
                data[at + ch_at] = channels & 0xFF
            _fix_ogg_page(data, at)
            return f"{codec} {what} -> {rate if what == 'rate' else channels & 0xFF} (page checksum redone)"
    # MP4: the sample entry's channel count and rate, the media header's timescale and duration
    fields = [(b"mp4a", 20, 2, channels), (b"mp4a", 28, 2, rate), (b"mdhd", 16, 4, rate), (b"mdhd", 20, 4, size)]
    fields = [f for f in fields if data.find(f[0]) >= 0]
    if fields:
        box, off, width, value = fields[int(rng.integers(0, len(fields)))]
        _put(data, data.find(box) + off, value, width, "big")
        return f"{box.decode()} +{off} -> {value}"
    return _flip(data, rng, 0, min(len(data), 256), "header")


def _flip(data: bytearray, rng: np.random.Generator, lo: int, hi: int, where: str) -> str:
    if hi <= lo:
        return "nothing to flip"
    for _ in range(int(rng.integers(1, 9))):
        data[int(rng.integers(lo, hi))] ^= 1 << int(rng.integers(0, 8))
    return f"bit flips in the {where}"


def mutate(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    buf = bytearray(data)
    kind = int(rng.integers(0, 9))
    if kind == 0:
        how = _flip(buf, rng, 0, min(len(buf), 128), "header")
    elif kind == 1:
        how = _flip(buf, rng, 0, len(buf), "body")
    elif kind == 2:
        cut = int(rng.integers(0, len(buf) + 1)) if rng.random() < 0.5 else int(rng.integers(0, min(len(buf), 200) + 1))
        del buf[cut:]
        how = f"truncated to {cut} bytes"
    elif kind in (3, 4):
        how = _absurd_field(buf, rng)
    elif kind == 5:  # an empty data chunk: the header says 0 and nothing follows, or 0 with the samples still there
        at = _riff_chunks(bytes(buf)).get(b"data")
        if at is None:
            how = _flip(buf, rng, 0, min(len(buf), 64), "header")
        else:
            _put(buf, at + 4, 0, 4)
            if rng.random() < 0.5:
                del buf[at + 8 :]
            how = "zero-length data chunk"
    elif kind == 6:
        a = int(rng.integers(0, max(1, len(buf))))
        n = int(rng.integers(1, 4096))
        buf[a : a + n] = bytes(min(n, len(buf) - a))
        how = f"zeroed {n} bytes at {a}"
    elif kind == 7:
        a, b = sorted(int(v) for v in rng.integers(0, max(1, len(buf)), 2))
        at = int(rng.integers(0, len(buf) + 1))
        buf[at:at] = buf[a:b]
        how = f"spliced {b - a} bytes in at {at}"
    else:
        buf += rng.bytes(int(rng.integers(1, 2048)))
        how = "garbage appended"
    if rng.random() < 0.3:  # a second mutation on top
        more, how2 = mutate(bytes(buf), rng)
        return more, f"{how}; {how2}"
    return bytes(buf), how


EXTENSIONS = [".wav", ".flac", ".ogg", ".mp3", ".m4a", ".opus", ".aac", ".webm", ".bin", ""]


def make_case(all_seeds: dict[str, bytes], seed: int, index: int) -> tuple[str, bytes, str, bool]:
    """(file name, bytes, what was done, inline?) of case ``index``: a pure function of (seed, index)."""
    rng = np.random.default_rng([seed, index])
    names = sorted(all_seeds)
    name = names[int(rng.integers(0, len(names)))]
    data, how = mutate(all_seeds[name], rng)
    ext = Path(name).suffix
    if rng.random() < 0.1:
        ext = str(rng.choice(EXTENSIONS))
        how += f"; named {ext or 'without extension'}"
    inline = bool(rng.random() < 0.15)
    return f"case{index:06d}{ext}", data, f"{name}: {how}", inline


# ---------------------------------------------------------------- the child: cases through process_record


def _record(index: int, name: str, data: bytes, inline: bool, root: Path) -> Any:
    from audiodata.records import MediaRef, Message, Record, SourceLoc

    if inline:
        ref = MediaRef("base64", base64.b64encode(data).decode(), "audios[0]", name=name)
    else:
        (root / name).write_bytes(data)
        ref = MediaRef("path", name, "audios[0]")
    return Record(
        id=f"fuzz{index}",
        kind="sft",
        messages=[Message("user", "<audio>What is said?", "conversations[0].value"), Message("assistant", "x", "")],
        source=SourceLoc("fuzz.jsonl", index, index + 1),
        audios=[ref],
        media_root=str(root),
    )


def child(seed: int, start: int, count: int, root: Path) -> None:
    """Run cases [start, start + count) and print one JSON line per case (flushed: the parent sees
    how far a hung or killed child got)."""
    from audiodata.pipeline.process import AudioSettings, process_record
    from audiodata.rules.registry import REGISTRY

    settings = AudioSettings(fingerprint=True, preview=True)
    all_seeds = seeds()
    root.mkdir(parents=True, exist_ok=True)
    for index in range(start, start + count):
        name, data, how, inline = make_case(all_seeds, seed, index)
        line: dict[str, Any] = {"index": index, "how": how, "inline": inline}
        print(json.dumps({"starting": index}), flush=True)
        began = time.perf_counter()
        try:
            out = process_record(index, _record(index, name, data, inline, root), settings)
            line["codes"] = [f.code for f in out.findings]
            problems = [f"unregistered {f.code}" for f in out.findings if f.code not in REGISTRY]
            problems += [f"bad message {f.message!r}" for f in out.findings if not f.message or "\n" in f.message]
            if out.row is None and not any(f.is_error for f in out.findings):
                problems.append("neither written nor rejected")
            if problems:
                line["error"] = "; ".join(problems)
        except BaseException:
            line["error"] = traceback.format_exc()
        line["seconds"] = round(time.perf_counter() - began, 3)
        print(json.dumps(line), flush=True)


def _rss(pid: int) -> int:
    """Resident bytes of a process and its children (read from /proc)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/statm") as fh:
                total += int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            with open(f"/proc/{p}/task/{p}/children") as fh:
                todo += [int(c) for c in fh.read().split()]
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return total


def watch(cmd: list[str], timeout: float, bound: int, cwd: Path) -> tuple[int, str, str, int]:
    """Run ``cmd``, polling its resident memory; kill it past ``timeout`` seconds or ``bound`` bytes.
    Returns (exit code, stdout, stderr, peak resident bytes)."""
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with open(cwd / "stdout", "w+") as out, open(cwd / "stderr", "w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=REPO, env=env)
        peak, began = 0, time.monotonic()
        while proc.poll() is None:
            peak = max(peak, _rss(proc.pid))
            if peak > bound or time.monotonic() - began > timeout:
                proc.kill()
                proc.wait()
                break
            time.sleep(0.02)
        out.seek(0)
        err.seek(0)
        return proc.returncode, out.read(), err.read(), peak


# ---------------------------------------------------------------- the tests


def test_mutations_are_deterministic_and_reach_the_header_fields():
    all_seeds = seeds()
    assert [make_case(all_seeds, SEED, i)[1] for i in range(20)] == [make_case(all_seeds, SEED, i)[1] for i in range(20)]
    hows = " ".join(make_case(all_seeds, SEED, i)[2] for i in range(400))
    for kind in ("wav rate", "wav channels", "wav data size", "flac rate", "flac total samples", "vorbis rate", "opus channels"):
        assert kind in hows, kind
    for kind in ("mp4a", "mdhd", "zero-length data chunk", "truncated", "bit flips in the header", "spliced"):
        assert kind in hows, kind
    # a redone Ogg checksum is the one libogg computes: the mutated header is read, not skipped as a bad page
    page = bytearray(all_seeds["gen.ogg"])
    _fix_ogg_page(page, page.find(b"\x01vorbis"))
    assert bytes(page) == all_seeds["gen.ogg"]


def test_fuzzed_audio_through_the_audio_stage(tmp_path):
    cmd = [sys.executable, "-m", "tests.audio.test_fuzz_audio", "child", str(SEED), "0", str(CASES), str(tmp_path / "media")]
    rc, out, err, peak = watch(cmd, 60 + CASES * CASE_SECONDS / 4, MEMORY_BOUND, tmp_path)
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    done = [x for x in lines if "seconds" in x]
    started = [x["starting"] for x in lines if "starting" in x]
    context = f"seed {SEED}; reproduce a case with: python -m tests.audio.test_fuzz_audio {SEED} INDEX OUT"
    if len(done) < CASES:
        last = started[-1] if started else None
        pytest.fail(f"the child stopped at case {last} (rc {rc}, peak {peak / 2**20:.0f} MiB): {err[-2000:]}; {context}")
    assert rc == 0, err[-2000:]
    failures = [f"case {x['index']} ({x['how']}): {x['error']}" for x in done if "error" in x]
    assert not failures, f"{context}\n" + "\n".join(failures[:5])
    slow = [(x["index"], x["how"], x["seconds"]) for x in done if x["seconds"] > CASE_SECONDS]
    assert not slow, f"{context}: {slow[:5]}"
    assert peak < MEMORY_BOUND
    assert "Traceback" not in err
    codes = {c for x in done for c in x["codes"]}
    assert {"A005"} <= codes  # the mutations do reach the decoders
    written = sum(1 for x in done if not any(c in ("A001", "A005", "A006", "A007", "A011", "A015") for c in x["codes"]))
    assert written > 0  # and not every mutation is fatal: the fuzzer explores past the first check


def test_fuzzed_audio_through_convert_with_two_workers(tmp_path):
    from tests.conftest import write_jsonl

    all_seeds = seeds()
    media = tmp_path / "c"
    media.mkdir()
    records = []
    for index in range(CONVERT_CASES):
        name, data, _how, inline = make_case(all_seeds, SEED, index)
        if inline:
            audio: Any = "data:audio/x;base64," + base64.b64encode(data).decode()
        else:
            (media / name).write_bytes(data)
            audio = name
        turns = [{"from": "human", "value": "<audio>What is said?"}, {"from": "gpt", "value": f"case {index}"}]
        records.append({"conversations": turns, "audios": [audio]})
    write_jsonl(media / "fuzz.jsonl", records)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "audiodata", "convert", str(media / "fuzz.jsonl"), "-o", str(out), "--num-workers", "2"]
    rc, _stdout, err, peak = watch([*cmd, "--no-progress"], 60 + CONVERT_CASES * CASE_SECONDS / 4, 2 * MEMORY_BOUND, tmp_path)
    assert rc in (0, 1), f"rc {rc}, peak {peak / 2**20:.0f} MiB: {err[-3000:]}"
    assert "Traceback" not in err
    summary = json.loads((out / "manifest.json").read_text())["summary"]
    assert summary["records_read"] == CONVERT_CASES == summary["written"] + summary["rejected"]
    rejects = (out / "rejects.jsonl").read_text().splitlines() if (out / "rejects.jsonl").exists() else []
    assert len(rejects) == summary["rejected"]


def _write_case(seed: int, index: int, dest: Path) -> None:
    name, data, how, inline = make_case(seeds(), seed, index)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / name).write_bytes(data)
    print(f"{dest / name}: {how}{' (inline base64 in the fuzz run)' if inline else ''}")


if __name__ == "__main__":
    if sys.argv[1] == "child":
        child(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), Path(sys.argv[5]))
    else:
        _write_case(int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]))
