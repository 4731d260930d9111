"""A first-seen map from fixed-size digests to fixed-size values whose memory does not grow with the corpus.

The record deduper asks one question per key: "was this digest seen before, and what did the first one
say?" (``first``). Keys are 16-byte digests, so they are uniformly spread; values are 24 bytes (where the
first record is). Up to ``memory`` bytes the map is a dict (:meth:`FirstSeen.first_many` asks it a batch of keys at
once: what lint's parent does per chunk of records); past it the dict is written out as a sorted
*run* (a file of fixed-size rows) and emptied, so memory stays flat however large the corpus:

* a Bloom filter over every spilled key answers "certainly new" for almost every new key without a read
  (its bits count against ``memory``: when they would take more than half of it they stop growing and
  more lookups go to the runs, slower but still exact);
* a spilled key is found with one ``pread`` per run: an in-memory fence (the first key of every
  :data:`BLOCK` rows) names the block;
* runs are merged four at a time (:data:`FANIN`, like a log-structured merge tree), so a lookup reads at
  most a few of them; a merge reads and writes in bounded slices.

Results are identical to a plain dict: a key is stored once (the first value wins), whatever was spilled.
Why not sqlite3: the same workload (benchmarks/lint_memory_bench.py ``--store``) inserts and looks up an
order of magnitude slower there, since every new key is a B-tree insert and a miss is a B-tree descent.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import os
import shutil
import struct
import tempfile
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import compress
from operator import is_not
from pathlib import Path

import numpy as np

KEY = 16
VALUE = 24
ROW = KEY + VALUE
#: Rows per fence: a lookup reads one block of ROW * BLOCK bytes (2.5 KiB).
BLOCK = 64
#: Runs of one level merged into one of the next.
FANIN = 4
#: Resident bytes one dict entry takes (16-byte key object, 24-byte value object, the dict's own slot),
#: measured on CPython 3.11 (tests/dedup/test_dedup_memory.py keeps it honest).
ENTRY_BYTES = 184
#: Share of the cap the dict may fill: a spill needs ROW bytes an entry beside it, and the allocator keeps
#: some of what a spill frees (measured: resident memory peaks ~30% over the dict after a few spills).
DICT_SHARE = 0.7
#: Default memory for a deduper's index: about 100k records (2 keys each) before the first spill.
DEFAULT_MEMORY = 64 * 2**20
BLOOM_BITS_PER_KEY = 12
#: Rows handled at once when writing, merging or re-reading runs (1.25 MiB of rows): what a spill or a
#: merge needs beyond the dict stays small.
SLICE_ROWS = 1 << 15
SPILL_PREFIX = "audiodata-dedup-"  # the temporary folder's name: a killed run's leftovers are recognisable
_ROWS = np.dtype([("key", "V16"), ("value", "V24")])


@dataclass
class _Run:
    path: Path
    rows: int
    level: int
    fd: int
    fences: list[int] = field(default_factory=list)  # big-endian first 8 key bytes of rows 0, BLOCK, 2 BLOCK, ...

    def find(self, key: bytes) -> bytes | None:
        hi = int.from_bytes(key[:8], "big")
        lo = max(bisect.bisect_left(self.fences, hi) - 1, 0)  # the last block starting below the key
        end = bisect.bisect_right(self.fences, hi)  # blocks starting at the key's prefix may hold it too
        first, last = lo * BLOCK, min(max(end, lo + 1) * BLOCK, self.rows)
        buf = _read_at(self.fd, (last - first) * ROW, first * ROW)
        pos = buf.find(key)
        while pos != -1 and pos % ROW:
            pos = buf.find(key, pos + 1)
        return None if pos == -1 else buf[pos + KEY : pos + ROW]

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)`` as a structured array (a fresh buffer: no memory map stays resident)."""
        return np.frombuffer(_read_at(self.fd, (stop - start) * ROW, start * ROW), dtype=_ROWS)

    def first_at_or_after(self, hi: int) -> int:
        """Index of the first row whose 8-byte prefix is >= ``hi``."""
        b = bisect.bisect_left(self.fences, hi)
        if b == 0:
            return 0
        start = (b - 1) * BLOCK
        block = self.read(start, min(b * BLOCK, self.rows))
        return start + int(np.searchsorted(_prefixes(block["key"]), np.uint64(hi), side="left"))


#: Constants of the Bloom filter's mix of a key's two 64-bit halves (splitmix64's): keys are digests, but a
#: caller's keys may share a half (tests count), so both halves go into every bit position.
_MIX1, _MIX2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9
_MASK64 = (1 << 64) - 1


def _mixed(keys: bytes) -> np.ndarray:
    """:func:`_mix` of each 16-byte key of ``keys`` (concatenated), in numpy."""
    halves = np.frombuffer(keys, dtype="<u8").reshape(-1, 2)
    with np.errstate(over="ignore"):
        h = (halves[:, 0] ^ (halves[:, 1] * np.uint64(_MIX1))) * np.uint64(_MIX2)
    return h ^ (h >> np.uint64(31))


def _mix(key: bytes) -> int:
    """One key's 64-bit hash: :func:`_mixed` of one key, in Python integers."""
    a, b = int.from_bytes(key[:8], "little"), int.from_bytes(key[8:16], "little")
    h = (a ^ (b * _MIX1 & _MASK64)) * _MIX2 & _MASK64
    return h ^ (h >> 31)


class _Bloom:
    """k bit positions per key by double hashing a mix of the key's bytes (:func:`_mix`): the same positions for one
    key in Python (:meth:`__contains__`, what :meth:`FirstSeen.first` asks) and for many at once in numpy
    (:meth:`contains_many`, what :meth:`FirstSeen.first_many` asks for a whole batch before it touches the dict)."""

    def __init__(self, bits_log2: int, k: int) -> None:
        self.mask = (1 << bits_log2) - 1
        self.k = k
        self.bits = bytearray(1 << max(bits_log2 - 3, 0))

    @property
    def nbytes(self) -> int:
        return len(self.bits)

    def _positions(self, keys: bytes) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        h = _mixed(keys)
        h1, h2 = h & np.uint64(0xFFFFFFFF), (h >> np.uint64(32)) | np.uint64(1)
        for i in range(self.k):
            pos = (h1 + np.uint64(i) * h2) & np.uint64(self.mask)
            yield (pos >> np.uint64(3)).astype(np.intp), (pos & np.uint64(7)).astype(np.uint8)

    def add_many(self, keys: bytes) -> None:
        """Add the 16-byte keys of ``keys`` (concatenated)."""
        view = np.frombuffer(self.bits, dtype=np.uint8)
        for byte, bit in self._positions(keys):
            np.bitwise_or.at(view, byte, np.left_shift(1, bit).astype(np.uint8))

    def contains_many(self, keys: bytes) -> np.ndarray:
        """Per 16-byte key of ``keys`` (concatenated): whether it may have been added (False: certainly not)."""
        view = np.frombuffer(self.bits, dtype=np.uint8)
        maybe = np.ones(len(keys) // KEY, dtype=bool)
        for byte, bit in self._positions(keys):
            maybe &= (view[byte] >> bit) & 1 == 1
        return maybe

    def __contains__(self, key: bytes) -> bool:
        h = _mix(key)
        h1, h2, bits, mask = h & 0xFFFFFFFF, (h >> 32) | 1, self.bits, self.mask
        p = h1 & mask
        if not bits[p >> 3] >> (p & 7) & 1:  # most new keys stop here
            return False
        for i in range(1, self.k):
            p = (h1 + i * h2) & mask
            if not bits[p >> 3] >> (p & 7) & 1:
                return False
        return True


class FirstSeen:
    """``first(key, value)``: the value stored for ``key`` by its first caller, or ``None`` (and ``value`` is
    stored) when the key is new. Memory is bounded by ``memory`` bytes; past it, sorted runs go to a
    temporary folder under ``folder`` (default: the system temp folder, ``$TMPDIR``), removed by
    :meth:`close` (or when the object is collected)."""

    def __init__(self, memory: int = DEFAULT_MEMORY, folder: str | os.PathLike[str] | None = None) -> None:
        self.memory = max(int(memory), 0)
        self.folder = folder
        self.mem: dict[bytes, bytes] = {}
        self.runs: list[_Run] = []
        self.spilled = 0  # keys in runs
        self.spills = 0
        self.merges = 0
        self.bloom: _Bloom | None = None
        self._bloom_capacity = 0
        self._dir: Path | None = None
        self._serial = 0
        self._limit = self._entries_allowed()
        self._finalizer: weakref.finalize | None = None

    def __len__(self) -> int:
        return len(self.mem) + self.spilled

    @property
    def limit(self) -> int:
        """Keys the dict holds before it spills (:meth:`first` spills once it reaches this many)."""
        return self._limit

    # -- the one operation -------------------------------------------------------------------------
    def first(self, key: bytes, value: bytes) -> bytes | None:
        """The earlier value for ``key``, or ``None`` after storing ``value`` as its first."""
        found = self.mem.get(key)
        if found is not None:
            return found
        if self.runs and (self.bloom is None or key in self.bloom):
            for run in self.runs:
                found = run.find(key)
                if found is not None:
                    return found
        self.mem[key] = value
        if len(self.mem) >= self._limit:
            self.spill()
        return None

    def first_many(self, keys: bytes, values: bytes) -> dict[int, bytes]:
        """:meth:`first` of each (key, value) in order, ``keys`` 16 bytes each and ``values`` 24 each, concatenated:
        the earlier value of each key seen before, by position (in order). The same answers with less Python per key: the
        keys that may be in the spilled runs come from one Bloom query for the batch, and the rest is the dict's
        ``setdefault`` in a comprehension. The memory bound holds (a batch is cut where the dict fills)."""
        n = len(keys) // KEY
        out: dict[int, bytes] = {}
        start = 0
        while start < n:
            stop = min(n, start + max(self._limit - len(self.mem), 1))
            found = self._first_batch(keys[KEY * start : KEY * stop], values[VALUE * start : VALUE * stop])
            out.update(found if not start else {start + k: v for k, v in found.items()})
            start = stop
            if len(self.mem) >= self._limit:
                self.spill()
        return out

    def _first_batch(self, keys: bytes, values: bytes) -> dict[int, bytes]:
        n = len(keys) // KEY
        ks = _cut(KEY, n).unpack(keys)  # n bytes objects in one call
        vs = _cut(VALUE, n).unpack(values)
        # a key of the runs is never in the dict (first() asks the runs before storing one): what the runs hold for
        # the keys that may be there, looked up before any of the batch is stored, is what first() would find
        spilled: dict[int, bytes] = {}
        if self.runs:
            maybe = self.bloom.contains_many(keys) if self.bloom is not None else np.ones(len(ks), dtype=bool)
            for k in np.flatnonzero(maybe).tolist():
                for run in self.runs:
                    found = run.find(ks[k])
                    if found is not None:
                        spilled[k] = found
                        break
        # the dict's setdefault and the identity test mapped in C: no Python frame per key
        got = list(map(self.mem.setdefault, ks, vs))
        hits = list(compress(range(n), map(is_not, got, vs)))
        out = {k: got[k] for k in hits}
        for k, found in spilled.items():  # stored above by the batch's first copy of it: the run's value is the answer
            self.mem.pop(ks[k], None)
            out[k] = found
        return dict(sorted(out.items())) if spilled else out

    # -- memory ------------------------------------------------------------------------------------
    @property
    def nbytes(self) -> int:
        """Estimated bytes held: dict entries, Bloom bits and run fences."""
        fences = sum(len(r.fences) for r in self.runs) * 40  # list slot + int object
        return len(self.mem) * ENTRY_BYTES + (self.bloom.nbytes if self.bloom else 0) + fences

    def _entries_allowed(self) -> int:
        fixed = (self.bloom.nbytes if self.bloom else 0) + sum(len(r.fences) for r in self.runs) * 40
        # any cap holds a few keys (0: spill every 16, for tests)
        return max(int((self.memory - fixed) * DICT_SHARE) // (ENTRY_BYTES + ROW), 16)

    # -- spilling ----------------------------------------------------------------------------------
    def spill(self) -> None:
        """Write the dict out as one sorted run, empty it, and merge runs when a level is full."""
        if not self.mem:
            return
        keys = b"".join(self.mem)  # 40 bytes an entry beside the dict: what _entries_allowed keeps room for
        values = b"".join(self.mem.values())  # the same (insertion) order
        self.mem = {}
        halves = np.frombuffer(keys, dtype=">u8").reshape(-1, 2)
        order = np.lexsort((halves[:, 1], halves[:, 0]))  # key order, as the runs keep it
        self._write_run(np.frombuffer(keys, dtype="V16"), np.frombuffer(values, dtype="V24"), order, level=0)
        del values, order, halves
        self.spilled += len(keys) // KEY
        self.spills += 1
        self._grow_bloom(keys)
        del keys
        while True:
            level = self.runs[-1].level
            same = [r for r in self.runs if r.level == level]
            if len(same) < FANIN:
                break
            self._merge(same, level + 1)
        self._limit = self._entries_allowed()

    def _spill_dir(self) -> Path:
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix=SPILL_PREFIX, dir=self.folder))
            self._finalizer = weakref.finalize(self, _remove, self._dir, self.runs)
        return self._dir

    def _new_run_path(self) -> Path:
        self._serial += 1
        return self._spill_dir() / f"run-{self._serial:06d}.bin"

    def _open_run(self, path: Path, rows: int, level: int, fences: list[int]) -> _Run:
        run = _Run(path, rows, level, os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0)), fences)
        self.runs.append(run)
        return run

    def _write_run(self, keys: np.ndarray, values: np.ndarray, order: np.ndarray, level: int) -> None:
        """Write rows ``(keys[i], values[i]) for i in order`` a slice at a time (no second copy of the run)."""
        path = self._new_run_path()
        with open(path, "wb") as f:
            for start in range(0, len(order), SLICE_ROWS):
                picked = order[start : start + SLICE_ROWS]
                rows = np.empty(len(picked), dtype=_ROWS)
                rows["key"], rows["value"] = keys[picked], values[picked]
                rows.tofile(f)
        self._open_run(path, len(order), level, _prefixes(keys[order[::BLOCK]]).tolist())

    def _merge(self, runs: list[_Run], level: int) -> None:
        """Merge ``runs`` (disjoint keys, each sorted) into one, a key range at a time: the ranges are
        cut at fence keys so each slice holds about SLICE_ROWS rows."""
        path = self._new_run_path()
        cuts = sorted(h for r in runs for h in r.fences[1:])  # about BLOCK rows (of all runs) between two
        step = max(SLICE_ROWS // BLOCK, 1)
        bounds = cuts[step::step]
        starts = [0] * len(runs)
        fences: list[int] = []
        total = 0
        with open(path, "wb") as out:
            for bound in [*bounds, None]:
                stops = [r.rows if bound is None else r.first_at_or_after(bound) for r in runs]
                parts = [r.read(s, e) for r, s, e in zip(runs, starts, stops, strict=True) if e > s]
                starts = stops
                if not parts:
                    continue
                chunk = _sorted(np.concatenate(parts))
                chunk.tofile(out)
                skip = (-total) % BLOCK  # fences continue at every BLOCK-th row of the whole run
                fences += _fences(chunk["key"][skip:])
                total += len(chunk)
        for r in runs:
            os.close(r.fd)
            r.path.unlink()
            self.runs.remove(r)
        self._open_run(path, total, level, fences)
        self.merges += 1

    # -- Bloom filter ------------------------------------------------------------------------------
    def _grow_bloom(self, new_keys: bytes) -> None:
        """Add the spilled keys; past its capacity, rebuild it twice as large from every run (never more
        than half of ``memory``; then fewer hashes keep it useful, and more lookups read the runs)."""
        if self.bloom is not None and self.spilled <= self._bloom_capacity:
            for start in range(0, len(new_keys), SLICE_ROWS * KEY):
                self.bloom.add_many(new_keys[start : start + SLICE_ROWS * KEY])
            return
        self._bloom_capacity = max(2 * self.spilled, 1024)
        self.bloom = None  # never two filters at once
        budget_log2 = max((self.memory // 2 * 8).bit_length() - 1, 10)
        want_log2 = (self._bloom_capacity * BLOOM_BITS_PER_KEY).bit_length()
        bits_log2 = min(want_log2, budget_log2, 32)
        k = max(1, min(4, round((1 << bits_log2) / self._bloom_capacity * 0.69)))
        self.bloom = _Bloom(bits_log2, k)
        for run in self.runs:
            for start in range(0, run.rows, SLICE_ROWS):
                keys = np.ascontiguousarray(run.read(start, min(start + SLICE_ROWS, run.rows))["key"])
                self.bloom.add_many(keys.tobytes())

    # -- lifetime ----------------------------------------------------------------------------------
    def close(self) -> None:
        """Remove the spilled runs (the map is empty afterwards)."""
        self.mem = {}
        if self._finalizer is not None:
            self._finalizer()
        self.runs.clear()
        self.spilled = 0
        self.bloom = None
        self._dir = None
        self._finalizer = None

    def __enter__(self) -> FirstSeen:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@functools.lru_cache(maxsize=8)
def _cut(size: int, n: int) -> struct.Struct:
    """A struct that cuts ``n * size`` bytes into ``n`` bytes objects of ``size``."""
    return struct.Struct(f"{size}s" * n)


def _read_at(fd: int, size: int, offset: int) -> bytes:
    """``size`` bytes at ``offset`` (one ``pread`` where the OS has it)."""
    if hasattr(os, "pread"):
        return os.pread(fd, size, offset)
    os.lseek(fd, offset, os.SEEK_SET)  # pragma: no cover - Windows
    return os.read(fd, size)  # pragma: no cover


def _halves(keys: np.ndarray) -> np.ndarray:
    """16-byte keys as (n, 2) big-endian uint64: their byte order is the keys' order."""
    return np.ascontiguousarray(keys).view(">u8").reshape(-1, 2)


def _prefixes(keys: np.ndarray) -> np.ndarray:
    return _halves(keys)[:, 0]


def _fences(keys: np.ndarray) -> list[int]:
    return _prefixes(keys[::BLOCK]).tolist()


def _sorted(rows: np.ndarray) -> np.ndarray:
    """Rows in key order (byte order of the 16-byte keys)."""
    halves = _halves(rows["key"])
    return rows[np.lexsort((halves[:, 1], halves[:, 0]))]


def _remove(folder: Path, runs: list[_Run]) -> None:
    for r in runs:
        with contextlib.suppress(OSError):
            os.close(r.fd)
    shutil.rmtree(folder, ignore_errors=True)
