"""Dynamic batching: batches of similar estimated length, with a cap on clips per batch, for one or many processes.

Padding is wasted compute, and audio LMs pad a lot: a 2 s and a 30 s clip in one batch
pad the text to the longest row. Rows are shuffled, cut into mega-batches, sorted by
estimated length (text + audio tokens, from the shards, nothing decoded) inside each,
and sliced into batches; a batch is split further when its clips exceed the cap (the
audio encoder's cost and memory grow with the number of clips). Batch order is then
shuffled, except that the longest batch goes first so an out-of-memory shows at step 1.
Deterministic per (seed, epoch).

With N processes the plan is global and made of *steps*: N batches, one per rank, that run
at the same time. Neighbouring batches of the length-sorted list share a step, so ranks
wait little for each other. Every step is modality-homogeneous: either every rank's batch
holds a clip or none does (audio rows and text-only rows are batched apart), because a rank
that runs the audio encoder while another does not hangs DeepSpeed ZeRO-3 and FSDP (they
gather the encoder's weights collectively). When a modality's batches do not fill whole
steps, its last step is completed with one-row batches that repeat its shortest rows, as
``DistributedSampler`` repeats samples: every rank gets the same number of steps, and the
repeats sit at dataset positions past the real rows (``len(lengths) + j`` stands for row
``repeats[j]``) so they are counted apart from real examples. One process: no steps, no
repeats, no modality split; the plan is what it always was.

Why the sampler hides its row count (``batch_size = None``): with several processes
accelerate wraps any batch sampler in ``BatchSamplerShard``, which deals position ``k`` of our
sequence to rank ``k % N`` but, when the sampler has a ``batch_size``, keeps a round of N
batches only if the last one is full. Ours are short on purpose (chunk remainders, the clip
cap), so whole rounds vanished while ``len()`` promised them. Without a ``batch_size``, and
with a sequence that is a whole number of steps, accelerate deals exactly this plan:
nothing dropped, nothing added (``trainer.train`` checks that it did).
"""

from __future__ import annotations

import random
from collections.abc import Iterator


class LengthGroupedBatchSampler:
    batch_size = None  # deliberately absent: see the module docstring (rows per batch: ``rows_per_batch``)

    def __init__(
        self,
        lengths: list[int],
        clips: list[int],
        batch_size: int,
        max_clips: int,
        seed: int = 0,
        mega: int = 50,
        grouped: bool = True,
        num_replicas: int = 1,
    ) -> None:
        if len(lengths) != len(clips):
            raise ValueError("lengths and clips differ in size")
        self.lengths, self.clips = lengths, clips
        self.rows_per_batch, self.max_clips = batch_size, max(1, max_clips)
        self.seed, self.mega, self.grouped = seed, mega, grouped
        self.num_replicas = max(1, num_replicas)
        self.epoch = 0
        self._cache: tuple[int, list[list[int]]] | None = None
        self._slots: dict[bool, list[int]] = {}  # has audio -> dataset positions of that modality's repeat slots
        self.repeats: list[int] = []  # source row of each repeat slot
        if self.num_replicas > 1:
            for audio in (True, False):
                group = sorted((i for i in range(len(lengths)) if (clips[i] > 0) == audio), key=lambda i: (lengths[i], i))
                if group:
                    first = len(lengths) + len(self.repeats)
                    self.repeats += [group[k % len(group)] for k in range(self.num_replicas - 1)]
                    self._slots[audio] = list(range(first, len(lengths) + len(self.repeats)))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def source(self, position: int) -> int:
        """The row a dataset position stands for (a repeat slot stands for the row it repeats)."""
        n = len(self.lengths)
        return position if position < n else self.repeats[position - n]

    def is_repeat(self, position: int) -> bool:
        return position >= len(self.lengths)

    def batches(self) -> list[list[int]]:
        """The whole epoch in the order accelerate deals it: step by step, rank 0 to N-1 within a step."""
        if self._cache is None or self._cache[0] != self.epoch:
            self._cache = (self.epoch, self._plan())
        return self._cache[1]

    def rank_batches(self, rank: int) -> list[list[int]]:
        """The batches one rank trains on this epoch, in order."""
        return self.batches()[rank :: self.num_replicas]

    @property
    def steps_per_epoch(self) -> int:
        """Micro-batches per rank and epoch (the same on every rank)."""
        return len(self.batches()) // self.num_replicas

    def repeated_rows(self) -> int:
        """Rows trained twice this epoch to even out the ranks' step counts."""
        return sum(1 for b in self.batches() for i in b if self.is_repeat(i))

    def _plan(self) -> list[list[int]]:
        rng = random.Random(self.seed * 100_003 + self.epoch)
        order = list(range(len(self.lengths)))
        rng.shuffle(order)
        n = self.num_replicas
        if n == 1:
            steps = [[b] for b in self._batches(order)]
        else:
            steps = []
            for audio, slots in self._slots.items():
                batches = self._batches([i for i in order if (self.clips[i] > 0) == audio])
                batches += [[slots[k]] for k in range(-len(batches) % n)]
                steps += [batches[i : i + n] for i in range(0, len(batches), n)]
        if self.grouped and len(steps) > 1:
            longest = max(range(len(steps)), key=lambda s: max(self.lengths[self.source(i)] for b in steps[s] for i in b))
            first = steps.pop(longest)
            rng.shuffle(steps)
            steps.insert(0, first)
        return [b for step in steps for b in step]

    def _batches(self, order: list[int]) -> list[list[int]]:
        """Length-grouped (or plain) batches of ``order``, clip cap applied; longest first within each mega-batch."""
        size = self.rows_per_batch
        if not self.grouped:  # plain random batches (the benchmark's baseline)
            return self._split([order[i : i + size] for i in range(0, len(order), size)])
        out: list[list[int]] = []
        for start in range(0, len(order), size * self.mega):
            chunk = sorted(order[start : start + size * self.mega], key=lambda i: -self.lengths[i])
            out += [chunk[i : i + size] for i in range(0, len(chunk), size)]
        return self._split(out)

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
        """Real tokens / padded tokens over one epoch of these batches (all ranks), by the estimates."""
        real = padded = 0
        for b in self.batches():
            lens = [self.lengths[self.source(i)] for i in b]
            real += sum(lens)
            padded += max(lens) * len(lens)
        return real / padded if padded else 1.0
