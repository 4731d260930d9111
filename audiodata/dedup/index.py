"""Online duplicate detection: clips first (exact PCM hash, then fingerprint LSH), then records.

Records arrive in input order; the first of a kind is kept and later copies point at it, so
the result is deterministic and the same for ``audiodata dedup`` and ``convert --dedup``.
Candidate clips come from the LSH buckets of the fingerprint sketch (never all pairs), and
every candidate is verified by bit error rate before it counts. Memory per clip is one
fingerprint (a few hundred bytes per second of audio, capped), never the audio.

A record duplicates an earlier one when each of its clips matches the earlier record's clip
in the same position and the conversation (system, turns, chosen/rejected) is identical.
Same audio and same prompt with a different response is a *conflict*: both are kept and
reported. DPO records are whole units: a pair is never split.

Memory per record is fixed and bounded (:class:`RecordDeduper`): two 16-byte digests and where the
record is, spilled to disk past ``--dedup-memory``; only near mode keeps something per clip in memory.

A silent clip (RMS under :data:`SILENCE_DBFS`) has no identity: every all-zero clip of a length is
bit-identical and low-level noise fingerprints alike, whatever was meant to be said, so such a clip
never matches another and its record is never a duplicate, conflict or leak (A012 reports it).
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from audiodata.dedup.fingerprint import Fingerprint, similarity
from audiodata.dedup.prints import Buckets, PrintStore
from audiodata.dedup.store import DEFAULT_MEMORY, FirstSeen
from audiodata.rules.audio_rules import SILENCE_DBFS

#: Fingerprint similarity (1 - bit error rate) from which two clips are the same recording.
#: Calibrated on espeak-ng speech with benchmarks/dedup_quality.py: lossy, re-gained and noisy
#: copies score >= 0.855, the same sentence by another speaker <= 0.763 (with the sub-frame phases).
NEAR_THRESHOLD = 0.82
MAX_BUCKET = 2000  # a bucket this full is degenerate (e.g. silence): candidates from it are not tried
#: Candidates whose 256-bit sketches differ in more bits than this are not compared in full: near
#: copies differ in ~5-40, unrelated speech in ~80-130 (benchmarks/dedup_quality.py, dedup_bench.py).
MAX_SKETCH_DISTANCE = 64
#: ... and a candidate whose sketch equals the clip's in one of its sixteen 16-bit words (bands) only, in more
#: bits than this. Unrelated clips that come within 64 bits nearly all share a single band, and there are more
#: of them per clip the more clips there are (dedup_bench at 100k clips, when the buckets were those bands: 7,400
#: of 7,984 failed comparisons were one-band candidates at 56-64 bits, 5,684 of them at 60-64, where 2 of 9,733
#: near copies were). With this, comparisons per clip stay ~0.1 from 10k to 1M clips.
MAX_SKETCH_DISTANCE_ONE_BAND = 59


@dataclass
class ClipMatch:
    clip: int  # id of the earlier clip
    kind: str  # "exact" | "near"
    similarity: float


class ClipIndex:
    """Clip ids in arrival order; a clip matching an earlier one (same PCM hash, or a near copy found
    through the LSH buckets and verified by bit error rate) resolves to that one's id. Fingerprints and
    buckets live in flat arrays (:mod:`audiodata.dedup.prints`): ~1 KB a clip of 1-5 s over 96 MiB of bucket
    heads, and candidates are gathered and filtered by sketch distance as arrays. The buckets' 19-bit keys
    draw few unrelated clips however many are held (:data:`KEY_BITS`), so the time per clip stays flat."""

    def __init__(self, near: bool = True, threshold: float = NEAR_THRESHOLD) -> None:
        self.near, self.threshold = near, threshold
        self.by_hash: dict[str, int] = {}
        self.prints = PrintStore()
        self.buckets = Buckets(KEY_TABLES if near else 0, KEY_BITS)  # exact mode never looks a clip up by sketch
        self._keyed: tuple[Fingerprint | None, np.ndarray] = (None, np.zeros(0, np.intp))
        self.candidates = 0  # distinct clips drawn from the buckets, before the sketch filter
        self.comparisons = 0  # of those, the ones close enough in sketch to be compared in full

    def __len__(self) -> int:
        return len(self.prints)

    def find(self, pcm_hash: str, fp: Fingerprint | None) -> ClipMatch | None:
        hit = self.by_hash.get(pcm_hash)
        if hit is not None:
            return ClipMatch(hit, "exact", 1.0)
        if not self.near or fp is None:
            return None
        keys = _keys(fp)
        self._keyed = (fp, keys)  # add() of the same clip, next, reuses them
        ids = self.buckets.candidates(keys, MAX_BUCKET)
        self.candidates += ids.size
        if not ids.size:
            return None
        sketches = self.prints.sketches.data[ids]
        distance = np.bitwise_count(sketches ^ fp.sketch).sum(axis=1, dtype=np.int64)
        agree = (sketches == fp.sketch).sum(axis=1)
        close = (distance <= MAX_SKETCH_DISTANCE) & ((agree > 1) | (distance <= MAX_SKETCH_DISTANCE_ONE_BAND))
        best, best_sim = None, self.threshold
        for cid in ids[close].tolist():  # ascending: on equal similarity the earliest wins
            other = self.prints.get(cid)
            if other is None:
                continue
            self.comparisons += 1
            sim = similarity(fp, other)
            if sim > best_sim or (best is None and sim == best_sim):
                best, best_sim = cid, sim
        return None if best is None else ClipMatch(best, "near", round(best_sim, 4))

    def add(self, pcm_hash: str, fp: Fingerprint | None) -> int:
        kept = fp if self.near else None
        cid = self.prints.add(kept)  # the store keeps a clip's own frames, never the query phases
        self.by_hash.setdefault(pcm_hash, cid)
        if kept is not None:
            self.buckets.add(self._keyed[1] if self._keyed[0] is kept else _keys(kept), cid)
        return cid

    def resolve(self, pcm_hash: str | None, fp: Fingerprint | None) -> tuple[int, ClipMatch | None]:
        """The canonical clip id for this clip (an earlier one if it matches, else a new one).
        A clip without identity (``pcm_hash`` None: silent) always gets a new id, never indexed."""
        if pcm_hash is None:
            return self.prints.add(None), None
        match = self.find(pcm_hash, fp)
        if match is not None:
            self.by_hash.setdefault(pcm_hash, match.clip)  # a later lossless copy of this one matches exactly
            return match.clip, match
        return self.add(pcm_hash, fp), None


def clip_identity(pcm_hash: str, fp: Fingerprint | None, rms_dbfs: float) -> tuple[str | None, Fingerprint | None]:
    """What dedup compares of one clip: its hash and fingerprint, or nothing when it is silent.
    The threshold is A012's (-60 dBFS RMS): recorded speech sits around -35..-15 dBFS, and under -60
    nothing a speech model can use is left, so nothing that could make two clips the same recording."""
    return (None, None) if rms_dbfs < SILENCE_DBFS else (pcm_hash, fp)


#: LSH keys: KEY_TABLES tables, each keyed on KEY_BITS of the 256 sketch bits. The sixteen 16-bit bands used before
#: drew unrelated candidates in proportion to the clips held (N / 65,536 a band: 3.4 a clip at 10k, 34.5 at 100k,
#: ~345 at 1M), and the time per clip grew with them. 19-bit keys draw N / 524,288 a table, and 32 of them (each bit
#: in 2 or 3 keys) find a near copy more often than the 16 bands did (a copy 32 sketch bits away shares one of the 32
#: keys with probability ~0.91, one of the bands ~0.85): benchmarks/dedup_scale_bench.py, 100k clips, near recall
#: 96.3% -> 96.7%, candidates 34.5 -> 2.7 a clip. Changing these changes which near copies are found.
KEY_BITS = 19
KEY_TABLES = 32


def _key_positions(tables: int, bits: int) -> np.ndarray:
    """Which sketch bits make each table's key: runs of a fixed shuffle of the 256 bits (a new shuffle each pass,
    ordered by a hash, so the same on every machine and numpy version), each bit in 2 or 3 keys, none twice in
    one key, two keys sharing ~1 bit on average (at most 6)."""
    rows: list[list[int]] = []
    row: list[int] = []
    carry: list[int] = []  # a bit the current key already has goes to the next one
    passes = -(-tables * bits // 256) + 1
    for r in range(passes):
        for b in sorted(range(256), key=lambda b: hashlib.blake2b(f"audiodata-lsh:{r}:{b}".encode(), digest_size=8).digest()):
            pending, carry = [*carry, b], []
            for x in pending:
                if x in row:
                    carry.append(x)
                    continue
                row.append(x)
                if len(row) == bits:
                    rows.append(sorted(row))
                    row = []
                if len(rows) == tables:
                    return np.array(rows, np.intp)
    raise AssertionError("unreachable: the passes hold more bits than the keys take")


_POSITIONS = _key_positions(KEY_TABLES, KEY_BITS)
_WEIGHTS = np.left_shift(1, np.arange(KEY_BITS, dtype=np.intp))
_OFFSETS = np.arange(KEY_TABLES, dtype=np.intp) << KEY_BITS


def _keys(fp: Fingerprint) -> np.ndarray:
    """Bucket numbers of a fingerprint, one per table: table ``t``'s key bits read off the sketch (bit ``b`` is bit
    ``b % 16`` of band ``b // 16``), offset into that table's range."""
    bits = np.unpackbits(np.ascontiguousarray(fp.sketch, "<u2").view(np.uint8), bitorder="little")
    return bits[_POSITIONS] @ _WEIGHTS + _OFFSETS


@dataclass
class RecordInfo:
    """What dedup needs of a record: where it is, its clips, and its conversation. Passed to
    :meth:`RecordDeduper.check` and dropped: the deduper keeps digests and :class:`Where`, never this."""

    source: str
    index: int
    line: int | None
    kind: str  # sft | dpo
    clips: list[tuple[str | None, Fingerprint | None]]  # (pcm_hash, fingerprint) in order; None: silent
    prompt: bytes  # digest of system + tools + prompt turns
    response: bytes  # digest of the responses (SFT: assistant turns; DPO: chosen + rejected)
    reference: bool = False  # from --against (an existing dataset), never kept or dropped
    #: For stored clips read without their audio (exact mode): is clip k silent? Asked only when the record
    #: would match an earlier one, since only then can it matter (equal PCM: both silent or neither).
    probe: Callable[[int], bool] | None = field(default=None, repr=False, compare=False)

    @property
    def where(self) -> dict[str, Any]:
        return Where(self.source, self.index, self.line, self.reference).where


@dataclass(frozen=True, slots=True)
class Where:
    """Where a record is: all a later finding needs to name it."""

    source: str
    index: int
    line: int | None
    reference: bool = False

    @property
    def where(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source, "index": self.index}
        if self.line is not None:
            out["line"] = self.line
        if self.reference:
            out["reference"] = True
        return out


@dataclass
class Verdict:
    duplicate_of: Where | None = None
    kind: str = ""  # exact | near
    similarity: float = 1.0
    conflict_with: Where | None = None

    @property
    def cluster(self) -> str | None:
        return cluster_id(self.duplicate_of) if self.duplicate_of else None


def cluster_id(first: Where | RecordInfo) -> str:
    """Named after the kept record, so it is stable across resumed runs."""
    return f"{first.source}#{first.index}"


@dataclass
class Cluster:
    kind: str
    members: list[Where]
    similarity: float = 1.0
    matches: list[tuple[str, float]] = field(default_factory=list)  # per later member: (kind, similarity)


_LOC = struct.Struct("<Qqq")  # (source number << 2 | reference << 1 | no line, index, line)
_LOC_ROW = np.dtype([("flags", "<u8"), ("index", "<i8"), ("line", "<i8")])  # the same, as numpy packs many


@dataclass
class RecordDeduper:
    """Records in input order: the first of a kind is kept, a later copy is its duplicate, the same audio
    and prompt with another response a conflict. The one record deduper of lint, ``dedup`` and
    ``convert --dedup``.

    Memory does not grow with the corpus: a record is remembered as two 16-byte digests (its whole
    conversation with its audio, and its audio with its prompt) mapping to where it is (24 bytes), in a
    :class:`~audiodata.dedup.store.FirstSeen` bounded by ``memory`` bytes that spills sorted runs to
    ``spill_dir`` past it. Clusters and conflicts are kept for the report (``keep_report``; lint, which
    reports each one as a finding, turns it off). Exact mode compares clip hashes inside the digests;
    near mode first maps each clip to its canonical clip id (:class:`ClipIndex`, whose fingerprints stay
    in flat arrays: about 1 KB per 1-5 s clip, 1.1 GiB for a million). :meth:`close` removes the spilled runs."""

    near: bool = True
    threshold: float = NEAR_THRESHOLD
    memory: int = DEFAULT_MEMORY
    spill_dir: str | os.PathLike[str] | None = None
    keep_report: bool = True
    clips: ClipIndex = field(init=False)
    index: FirstSeen = field(init=False)
    clusters: dict[str, Cluster] = field(default_factory=dict)
    conflicts: list[tuple[Where, Where]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.clips = ClipIndex(self.near, self.threshold)
        self.index = FirstSeen(self.memory, self.spill_dir)
        self._sources: list[str] = []
        self._source_ids: dict[str, int] = {}

    def check(self, rec: RecordInfo) -> Verdict:
        """Classify ``rec`` against everything seen before it, then remember it if it is kept."""
        if not self.near:
            digests = exact_digests(rec.kind, rec.clips, rec.prompt, rec.response)
            return Verdict() if digests is None else self._verdict(rec, *digests, None, None)
        found, kinds, sims = self._resolve_near(rec)
        if None in found:  # a clip without identity: this record matches nothing, and nothing will match it
            return Verdict()
        tokens = cast("list[bytes]", found)
        whole, by_prompt = _digests(tokens, rec.prompt, rec.response)
        return self._verdict(rec, whole, _conflicting(rec.kind, tokens, by_prompt), kinds, sims)

    def check_rows(
        self, source: str, indices: Sequence[int], lines: Sequence[int | None], marks: bytes | bytearray, digests: bytes
    ) -> dict[int, Verdict]:
        """:meth:`check` (exact mode) of many records of ``source`` in input order whose digests :func:`exact_digests`
        gave elsewhere (a lint worker): row ``k`` is record ``indices[k]`` at ``lines[k]``, with ``marks[k]`` 0 (no
        digests: it matches nothing), 1 (its whole digest) or 2 (whole and by prompt), its 32 bytes next in
        ``digests`` when it has any. The verdicts that found something, by row.

        Batched (:meth:`FirstSeen.first_many`): every whole digest first, then the by-prompt digests of the records
        whose whole digest was new, which is what record by record gives, since a whole digest never equals a
        by-prompt one (they hash different inputs: the body then ``W`` and the response, or the body then ``P``).
        What a record is remembered by (:data:`_LOC`) is packed for all rows at once."""
        assert not self.near
        mark = np.frombuffer(marks, dtype=np.uint8)
        rows = np.flatnonzero(mark)
        if not rows.size:
            return {}
        at = rows.tolist()
        locs = np.empty(len(at), dtype=_LOC_ROW)
        locs["flags"] = self._source_id(source) << 2
        if None in lines:
            lines_at = [lines[k] for k in at]
            locs["flags"] |= np.fromiter((line is None for line in lines_at), dtype=np.uint64, count=len(at))
            locs["line"] = [line or 0 for line in lines_at]
        else:
            locs["line"] = np.asarray(lines, dtype=np.int64)[rows]
        locs["index"] = indices.start + rows * indices.step if isinstance(indices, range) else np.asarray(indices)[rows]
        packed = locs.tobytes()
        pairs = np.frombuffer(digests, dtype="V16").reshape(-1, 2)
        earlier = self.index.first_many(pairs[:, 0].tobytes(), packed)
        found: dict[int, Verdict] = {}
        new = mark[rows] == 2  # rows whose by-prompt digest is asked: those with one whose whole digest was new
        for j, e in earlier.items():
            k = at[j]
            found[k] = self._duplicate(e, Where(source, indices[k], lines[k]), "exact", 1.0)
            new[j] = False
        second = np.flatnonzero(new)
        if second.size:
            locs_at = np.frombuffer(packed, dtype=_LOC_ROW)[second].tobytes()
            for j, other in self.index.first_many(pairs[second, 1].tobytes(), locs_at).items():
                k = at[int(second[j])]
                found[k] = self._conflict(other, Where(source, indices[k], lines[k]))
        return dict(sorted(found.items()))

    def _verdict(
        self, rec: RecordInfo, whole: bytes, by_prompt: bytes | None, kinds: list[str] | None, sims: list[float] | None
    ) -> Verdict:
        here = self._pack(rec)
        earlier = self.index.first(whole, here)
        at = Where(rec.source, rec.index, rec.line, rec.reference)
        if earlier is not None:
            if rec.probe is not None and self._silent(rec):
                return Verdict()
            kind = "near" if kinds and "near" in kinds else "exact"
            return self._duplicate(earlier, at, kind, min(sims) if sims else 1.0)
        if by_prompt is not None:
            other = self.index.first(by_prompt, here)
            # the first record with this audio and prompt had another response: with the same one, this
            # record's whole digest would have been found above
            if other is not None and not (rec.probe is not None and self._silent(rec)):
                return self._conflict(other, at)
        return Verdict()

    def _duplicate(self, earlier: bytes, at: Where, kind: str, sim: float) -> Verdict:
        """The verdict on the record ``at`` whose whole digest the record packed in ``earlier`` had first."""
        first = self._unpack(earlier)
        if self.keep_report:
            cluster = self.clusters.setdefault(cluster_id(first), Cluster(kind, [first], sim))
            cluster.members.append(at)
            cluster.matches.append((kind, sim))
            if kind == "near":
                cluster.kind = "near"
            cluster.similarity = min(cluster.similarity, sim)
        return Verdict(first, kind, sim)

    def _conflict(self, other: bytes, at: Where) -> Verdict:
        """The verdict on the record ``at`` whose audio and prompt the record packed in ``other`` had first."""
        verdict = Verdict(conflict_with=self._unpack(other))
        if self.keep_report:
            self.conflicts.append((verdict.conflict_with, at))  # type: ignore[arg-type]
        return verdict

    def _resolve_near(self, rec: RecordInfo) -> tuple[list[bytes | None], list[str], list[float]]:
        """Each clip's canonical clip id (an earlier near or exact copy's, or a new one), as digest input."""
        tokens: list[bytes | None] = []
        kinds: list[str] = []
        sims: list[float] = []
        for k, (pcm_hash, fp) in enumerate(rec.clips):
            if rec.probe is not None and pcm_hash in self.clips.by_hash and rec.probe(k):
                pcm_hash, fp = None, None
            cid, match = self.clips.resolve(pcm_hash, fp)
            tokens.append(None if pcm_hash is None else cid.to_bytes(8, "little"))
            kinds.append(match.kind if match else "new")
            sims.append(match.similarity if match else 1.0)
        return tokens, kinds, sims

    def _silent(self, rec: RecordInfo) -> bool:
        """A stored record read without audio whose clips turn out silent has no identity after all."""
        assert rec.probe is not None
        return any(rec.probe(k) for k in range(len(rec.clips)))

    def _source_id(self, source: str) -> int:
        sid = self._source_ids.get(source)
        if sid is None:
            sid = self._source_ids[source] = len(self._sources)
            self._sources.append(source)
        return sid

    def _pack(self, rec: RecordInfo) -> bytes:
        flags = self._source_id(rec.source) << 2 | rec.reference << 1 | (rec.line is None)
        return _LOC.pack(flags, rec.index, rec.line or 0)

    def _unpack(self, value: bytes) -> Where:
        flags, index, line = _LOC.unpack(value)
        return Where(self._sources[flags >> 2], index, None if flags & 1 else line, bool(flags & 2))

    def close(self) -> None:
        """Remove the spilled index (the clusters and conflicts found stay)."""
        self.index.close()

    def report(self) -> dict[str, Any]:
        clusters = [
            {
                "id": cid,
                "kind": c.kind,
                "similarity": round(c.similarity, 4),
                "members": [c.members[0].where] + [_member(m, k, x) for m, (k, x) in zip(c.members[1:], c.matches, strict=True)],
            }
            for cid, c in self.clusters.items()
        ]
        conflicts = [{"members": [a.where, b.where]} for a, b in self.conflicts]
        return {"clusters": clusters, "conflicts": conflicts}


def exact_digests(
    kind: str, clips: list[tuple[str | None, Any]], prompt: bytes, response: bytes
) -> tuple[bytes, bytes | None] | None:
    """What :meth:`RecordDeduper.check` compares in exact mode, computed where the record is (a worker):
    (whole, by prompt) digests, by prompt None where no conflict is looked for (DPO, no audio); None when a
    clip has no identity (the record matches nothing). :meth:`RecordDeduper.check_rows` takes them."""
    tokens = [h.encode() if h is not None else None for h, _ in clips]
    if None in tokens:  # a clip without identity: this record matches nothing, and nothing will match it
        return None
    found = cast("list[bytes]", tokens)
    whole, by_prompt = _digests(found, prompt, response)
    return whole, _conflicting(kind, found, by_prompt)


def _conflicting(kind: str, tokens: list[bytes], by_prompt: bytes) -> bytes | None:
    """The by-prompt digest where a conflict is looked for: SFT, KTO (the same completion labelled both
    ways) and RL (two answers to one question), with audio; None otherwise."""
    return by_prompt if kind in ("sft", "kto", "rl") and tokens else None


def _digests(tokens: list[bytes], prompt: bytes, response: bytes) -> tuple[bytes, bytes]:
    """(whole, by prompt) digests: the clips' identities (length-prefixed, so no two lists read alike),
    then the prompt digest; the whole one adds the response digest."""
    parts = [len(tokens).to_bytes(4, "little")]
    for t in tokens:
        parts += (len(t).to_bytes(4, "little"), t)
    parts.append(prompt)
    body = b"".join(parts)
    whole = hashlib.blake2b(body + b"W" + response, digest_size=16).digest()
    return whole, hashlib.blake2b(body + b"P", digest_size=16).digest()


def _member(m: Where, kind: str, sim: float) -> dict[str, Any]:
    return {**m.where, "match": kind, "similarity": round(sim, 4)}


def conversation_keys(rec: Any) -> tuple[bytes, bytes]:
    """(prompt, response) digests of a canonical Record: what "the same conversation" compares.
    Fields are joined with separators that cannot occur in JSON-decoded text boundaries unambiguously
    (unit/record separators), which is much cheaper than canonical JSON on millions of records."""
    if rec.kind == "dpo":
        prompt_turns = rec.messages
        response = ["c", *_flat(rec.chosen or ()), "r", *_flat(rec.rejected or ())]
    elif rec.kind == "kto":  # the same completion judged twice is one example; its label is the "response"
        prompt_turns = [*rec.messages, *(rec.completion or ())]
        response = ["k", str(bool(rec.label))]
    elif rec.kind == "rl":  # the question (with its options) is the prompt, the reference answer the "response"
        prompt_turns = rec.messages
        response = ["q", rec.task or "", rec.answer or ""]
        if rec.choices:
            prompt_turns = [*prompt_turns, _Choices("\x1d".join(rec.choices))]
    else:  # SFT: the prompt is everything before the last reply, the response the rest
        msgs = rec.messages
        last = len(msgs) - 1
        while last >= 0 and msgs[last].role not in _REPLY_ROLES:
            last -= 1
        prompt_turns = msgs[:last] if last >= 0 else msgs
        response = _flat(msgs[last:]) if last >= 0 else []
    prompt = _flat(prompt_turns, [rec.system or "", rec.tools or ""])
    return _h("\x1f".join(prompt)), _h("\x1f".join(response))


_REPLY_ROLES = frozenset(("assistant", "function_call"))


class _Choices:
    """Multiple-choice options as one pseudo-turn of the prompt key: the same question with other options is another."""

    __slots__ = ("content",)
    role = "choices"

    def __init__(self, content: str) -> None:
        self.content = content


def _flat(turns: Any, out: list[str] | None = None) -> list[str]:
    """``out`` (a new list by default) extended by each turn's role, content and a record separator."""
    out = [] if out is None else out
    for m in turns:
        out += (m.role, m.content, "\x1e")
    return out


def _h(text: str) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=16).digest()
