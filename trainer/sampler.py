"""Dynamic batching: batches of similar estimated length, with a cap on clips per batch.

Padding is wasted compute, and audio LMs pad a lot: a 2 s and a 30 s clip in one batch
pad the text to the longest row. Rows are shuffled, cut into mega-batches, sorted by
estimated length (text + audio tokens, from the shards, nothing decoded) inside each,
and sliced into batches; a batch is split further when its clips exceed the cap (the
audio encoder's cost and memory grow with the number of clips). Batch order is then
shuffled, except that the longest batch goes first so an out-of-memory shows at step 1.
Deterministic per (seed, epoch).
"""

from __future__ import annotations

import random
from collections.abc import Iterator


class LengthGroupedBatchSampler:
    def __init__(
        self,
        lengths: list[int],
        clips: list[int],
        batch_size: int,
        max_clips: int,
        seed: int = 0,
        mega: int = 50,
        grouped: bool = True,
    ) -> None:
        if len(lengths) != len(clips):
            raise ValueError("lengths and clips differ in size")
        self.lengths, self.clips = lengths, clips
        self.batch_size, self.max_clips = batch_size, max(1, max_clips)
        self.seed, self.mega, self.grouped = seed, mega, grouped
        self.epoch = 0
        self._cache: tuple[int, list[list[int]]] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        if self._cache is None or self._cache[0] != self.epoch:
            self._cache = (self.epoch, self._plan())
        return self._cache[1]

    def _plan(self) -> list[list[int]]:
        rng = random.Random(self.seed * 100_003 + self.epoch)
        order = list(range(len(self.lengths)))
        rng.shuffle(order)
        if not self.grouped:  # plain random batches (the benchmark's baseline)
            return self._split([order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)])
        size = self.batch_size * self.mega
        out: list[list[int]] = []
        for start in range(0, len(order), size):
            chunk = sorted(order[start : start + size], key=lambda i: -self.lengths[i])
            out += [chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        out = self._split(out)
        if len(out) > 1:
            longest = max(range(len(out)), key=lambda b: max(self.lengths[i] for i in out[b]))
            first = out.pop(longest)
            rng.shuffle(out)
            out.insert(0, first)
        return out

    def _split(self, batches: list[list[int]]) -> list[list[int]]:
        """Split batches whose clips exceed the cap (a single row is never split)."""
        out: list[list[int]] = []
        for b in batches:
            cur: list[int] = []
            n = 0
            for i in b:
                if cur and n + self.clips[i] > self.max_clips:
                    out.append(cur)
                    cur, n = [], 0
                cur.append(i)
                n += self.clips[i]
            if cur:
                out.append(cur)
        return out

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        return len(self.batches())

    def padding_efficiency(self) -> float:
        """Real tokens / padded tokens over one epoch of these batches, by the estimates."""
        real = padded = 0
        for b in self.batches():
            lens = [self.lengths[i] for i in b]
            real += sum(lens)
            padded += max(lens) * len(lens)
        return real / padded if padded else 1.0
