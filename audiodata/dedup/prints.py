"""The near-duplicate index's memory: every stored fingerprint and every LSH bucket in flat arrays.

A million clips held as Python objects (a dataclass of three numpy arrays each, and a list of int
objects per bucket) cost ~4.8 KB a clip; here a clip costs its frames (4 bytes of bits and one bit of
voicing per 16 ms frame), its 32-byte sketch, 16 bytes of where and length, and a 4-byte link in each of its 32
buckets (over the buckets' heads: 96 MiB of address space, backed as buckets are used).
Candidates are looked up and filtered as arrays (the chains walked a link at a time for all buckets at once,
one ``np.unique``, one popcount over their sketches), never a Python loop over bucket members.
"""

from __future__ import annotations

import numpy as np

from audiodata.dedup.fingerprint import Fingerprint

#: Frames per arena chunk: the arena grows a chunk at a time (at most 16 MiB of bits), never by copying what it
#: holds; chunks start small and double, so a small run does not set 16 MiB aside.
CHUNK_FRAMES = 1 << 22
FIRST_CHUNK = 1 << 16


class _Grow:
    """A per-clip column that doubles when full (a few bytes a clip: copying it is cheap)."""

    def __init__(self, dtype: type | np.dtype, shape: tuple[int, ...] = ()) -> None:
        self.data = np.zeros((1024, *shape), dtype)
        self.size = 0

    def append(self, value: object) -> None:
        if self.size == len(self.data):
            grown = np.zeros((2 * len(self.data), *self.data.shape[1:]), self.data.dtype)
            grown[: self.size] = self.data
            self.data = grown
        self.data[self.size] = value
        self.size += 1

    def view(self) -> np.ndarray:
        return self.data[: self.size]


class PrintStore:
    """Fingerprints by clip id (0, 1, 2, ... in the order added), slim (without query phases).
    A clip added without a fingerprint (silent, or exact mode) takes an id and no frames."""

    def __init__(self) -> None:
        self._bits: list[np.ndarray] = []  # chunks of CHUNK_FRAMES uint32
        self._voiced: list[np.ndarray] = []  # the same frames' voicing, packed 8 to a byte
        self._used = 0  # frames used in the last chunk
        self._frames = 0  # frames held, all chunks (each clip's rounded up to a byte of voicing)
        self.sketches = _Grow(np.uint16, (16,))
        self.where = _Grow(np.int64)  # chunk << 32 | first frame; -1: no fingerprint
        self.frames = _Grow(np.int32)
        self.seconds = _Grow(np.float32)

    def __len__(self) -> int:
        return self.frames.size

    def add(self, fp: Fingerprint | None) -> int:
        cid = len(self)
        if fp is None:
            self.where.append(-1)
            self.frames.append(0)
            self.sketches.append(0)
            self.seconds.append(0.0)
            return cid
        n = fp.bits.size
        if not self._bits or self._used + n + 8 > self._bits[-1].size:  # +8: packed voicing starts on a byte
            size = max(min(CHUNK_FRAMES, 2 * self._bits[-1].size if self._bits else FIRST_CHUNK), n + 8)
            self._bits.append(np.empty(size, np.uint32))
            self._voiced.append(np.empty(size // 8 + 1, np.uint8))
            self._used = 0
        chunk, start = len(self._bits) - 1, self._used
        self._bits[chunk][start : start + n] = fp.bits
        packed = np.packbits(fp.voiced)
        self._voiced[chunk][start // 8 : start // 8 + packed.size] = packed
        self._used = start + (n + 7) // 8 * 8
        self._frames += (n + 7) // 8 * 8
        self.where.append(chunk << 32 | start)
        self.frames.append(n)
        self.sketches.append(fp.sketch)
        self.seconds.append(fp.seconds)
        return cid

    def get(self, cid: int) -> Fingerprint | None:
        where = int(self.where.data[cid])
        if where < 0:
            return None
        chunk, start, n = where >> 32, where & 0xFFFFFFFF, int(self.frames.data[cid])
        bits = self._bits[chunk][start : start + n]
        voiced = np.unpackbits(self._voiced[chunk][start // 8 : start // 8 + (n + 7) // 8], count=n).view(bool)
        return Fingerprint(bits, voiced, self.sketches.data[cid], float(self.seconds.data[cid]))

    @property
    def nbytes(self) -> int:
        """Bytes the stored clips take (a chunk's untouched tail is address space, not memory)."""
        columns = sum(
            g.size * g.data.itemsize * int(np.prod(g.data.shape[1:]))
            for g in (self.sketches, self.where, self.frames, self.seconds)
        )
        return self._frames * 4 + self._frames // 8 + columns


class Buckets:
    """LSH buckets in flat arrays: ``tables`` tables of ``2**key_bits`` buckets, each a chain through the entries
    (newest first), so a bucket costs nothing until used and a clip costs one 4-byte link per table.

    A clip is added under one key per table (:func:`audiodata.dedup.index` computes them: bucket numbers, table
    ``t``'s in ``[t << key_bits, (t + 1) << key_bits)``); a query gathers the clips of its buckets with how many of
    them each shares (its agreement), skipping buckets fuller than ``max_bucket``. Arrays, not Python objects:
    the ``heads`` and ``counts`` of untouched buckets are zero pages the kernel never backs."""

    def __init__(self, tables: int, key_bits: int) -> None:
        self.tables, self.key_bits = tables, key_bits
        self.heads = np.zeros(tables << key_bits, np.int32)  # entry row + 1 of the newest clip; 0: empty
        self.counts = np.zeros(tables << key_bits, np.uint16)  # clips in the bucket, saturating
        self.links = _Grow(np.int32, (tables,))  # per entry row and table: the row + 1 of the next older clip
        self.ids = _Grow(np.int32)  # per entry row: the clip id

    def add(self, keys: np.ndarray, cid: int) -> None:
        row = self.ids.size
        self.ids.append(cid)
        self.links.append(self.heads[keys])
        self.heads[keys] = row + 1
        self.counts[keys] = np.minimum(self.counts[keys], np.iinfo(np.uint16).max - 1) + 1

    def candidates(self, keys: np.ndarray, max_bucket: int) -> np.ndarray:
        """The distinct clip ids sharing any key (``keys[t]`` is table ``t``'s), ascending; buckets fuller than
        ``max_bucket`` are skipped. The chains are walked a link at a time for every bucket at once."""
        rows = self.heads[keys]
        tables = np.flatnonzero((rows > 0) & (self.counts[keys] <= max_bucket))
        rows = rows[tables]
        if not rows.size:
            return np.zeros(0, np.int32)
        found = []
        links = self.links.data
        while rows.size:
            found.append(rows)
            rows = links[rows - 1, tables]
            live = rows > 0
            rows, tables = rows[live], tables[live]
        return np.unique(self.ids.data[np.concatenate(found) - 1])

    def sizes(self) -> list[int]:
        return self.counts[self.counts > 0].tolist()

    @property
    def nbytes(self) -> int:
        """Bytes of the buckets touched (heads and counts, as pages) and of the links."""
        touched = int(np.count_nonzero(self.heads.reshape(-1, 1024).any(axis=1))) * 1024 * (4 + 2)
        return touched + self.links.size * self.tables * 4 + self.ids.size * 4
