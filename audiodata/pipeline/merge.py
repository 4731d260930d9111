"""``audiodata merge``: the ranks of one conversion (``convert --num-shards N --shard-index I``) into one dataset.

The ranks, in order, hold the local run's records in its input order (:mod:`audiodata.pipeline.ranks`), so
merge does only what no rank can do alone, and produces what one local run would:

- checks that the ranks are all there, complete, and of one conversion (same inputs, same options),
  and refuses with the list of what is missing or differs otherwise;
- the global steps: ``--dedup`` across ranks, keep-first in the global input order, by replaying every
  rank's dedup keys (clip hashes, fingerprints, conversation digests: no audio decoded) through the same
  :class:`~audiodata.dedup.index.RecordDeduper` a local run feeds; the split assignment needs nothing
  global (it is keyed on each record's audio, the same on any rank);
- the Hub layout: every rank's shards, in rank order, as ``data/{split}-NNNNN-of-NNNNN.parquet`` (hard
  links, or copies across filesystems; only a shard that loses rows to dedup is rewritten), one
  ``rejects.jsonl`` in input order (the duplicates found here in their places), the card, the manifest;
- the accounting: read = written + rejected + duplicates (+ excluded, equal pairs) across the merge.

Ranks are read through the one dataset model (:class:`~audiodata.dataset.ConvertedDataset`). Merge never
changes a rank, so it can be run again: a complete merge of the same ranks is not redone, an interrupted
one starts over.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import heapq
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audiodata import __version__, objstore
from audiodata.dataset import FORMAT_VERSION, MANIFEST, ConvertedDataset, DatasetError, InputEntry, Manifest
from audiodata.dedup.index import RecordDeduper
from audiodata.dedup.store import DEFAULT_MEMORY
from audiodata.faults import on_path
from audiodata.lock import WORK, hold
from audiodata.pipeline import aside, ranks
from audiodata.pipeline.convert import (
    ConvertResult,
    DedupKeys,
    RejectCounts,
    describe_summary,
    duplicate_fields,
    place_shards,
    write_dataset,
    write_rejects,
)
from audiodata.pipeline.options import OptionsError
from audiodata.pipeline.state import RunState
from audiodata.writer.schema import Visual
from audiodata.writer.shards import ShardInfo, ShardWriter, merge_stats

#: Where merge rewrites the shards that lose rows to dedup, inside the output's work folder.
REWRITE = "merge"


class MergeError(OptionsError):
    """The ranks cannot be merged (missing, unfinished, of different conversions): exit code 2, every problem listed."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"cannot merge: {len(problems)} problem{'s' if len(problems) != 1 else ''}\n{lines}")


@dataclass
class RankOutput:
    """One finished rank, opened through its manifest."""

    folder: Path
    dataset: ConvertedDataset

    @property
    def index(self) -> int:
        assert self.dataset.manifest.rank is not None
        return self.dataset.manifest.rank.index


@dataclass
class _Drops:
    """What dedup takes out of one rank: row positions per stream, their rejects entries, their counters."""

    rows: dict[str, set[int]] = field(default_factory=dict)
    entries: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)


def find_ranks(parts: list[Path]) -> list[Path]:
    """The rank folders ``parts`` name: a folder holding ``ranks/`` (an OUT given to the ranks' ``-o``) stands
    for every rank in it; any other folder is one rank's."""
    found: list[Path] = []
    for part in parts:
        holder = part / ranks.RANKS_DIR
        if holder.is_dir():
            found += sorted(p for p in holder.iterdir() if p.is_dir() and p.name.startswith("rank-"))
        else:
            found.append(part)
    return found


def open_ranks(folders: list[Path]) -> list[RankOutput]:
    """The ranks, in rank order, checked: all present, complete, of one conversion. Raises :class:`MergeError`
    listing every rank that is missing, unfinished, foreign or different."""
    problems: list[str] = []
    done: list[RankOutput] = []
    unfinished: dict[int, str] = {}
    for folder in folders:
        state = RunState.load(folder)
        try:
            ds = ConvertedDataset.open(folder)
        except DatasetError:
            if state is None:
                problems.append(f"{folder}: not a rank output (no manifest.json, no conversion started)")
            else:
                what = "being finished" if state.status == "finalizing" else f"at input record {state.position}"
                problems.append(
                    f"{folder}: unfinished ({what}, {len(state.shards)} shards done); run its convert command again to resume it"
                )
                name = folder.name
                with contextlib.suppress(ValueError, IndexError):
                    unfinished[int(name.split("-")[1])] = name
            continue
        if ds.manifest.rank is None:
            problems.append(f"{folder}: a whole conversion, not a rank (converted without --num-shards)")
            continue
        if state is not None and state.status != "complete":
            problems.append(f"{folder}: unfinished (its state says {state.status}); run its convert command again")
            continue
        done.append(RankOutput(folder, ds))
    if not done:
        raise MergeError(problems or ["no rank outputs found"])
    first = min(done, key=lambda r: r.index)
    head = first.dataset.manifest
    assert head.rank is not None
    count = head.rank.count
    seen: dict[int, Path] = {}
    for r in sorted(done, key=lambda r: r.index):
        m = r.dataset.manifest
        assert m.rank is not None
        if m.rank.count != count:
            problems.append(f"{r.folder}: rank {m.rank.index} of {m.rank.count}, the others are of {count}")
            continue
        if r.index in seen:
            problems.append(f"{r.folder}: rank {r.index} again (also {seen[r.index]})")
            continue
        seen[r.index] = r.folder
        if m.rank.run != head.rank.run:
            problems.append(f"{r.folder}: rank {r.index} is of another conversion than {first.folder}: {_difference(head, m)}")
        elif m.audiodata_version != head.audiodata_version:
            problems.append(
                f"{r.folder}: rank {r.index} was converted by audiodata {m.audiodata_version}, {first.folder} by "
                f"{head.audiodata_version}: convert every rank with one version"
            )
    for k in range(count):
        if k not in seen and k not in unfinished:
            where = first.folder.parent / ranks.rank_name(k, count)
            problems.append(f"rank {k} of {count} is missing (expected like {where}); run convert with --shard-index {k}")
    if not problems:
        problems += _gaps(sorted(done, key=lambda r: r.index))
    if problems:
        raise MergeError(problems)
    return sorted(done, key=lambda r: r.index)


def _gaps(rank_outputs: list[RankOutput]) -> list[str]:
    """Where the ranks' slices, in rank order, do not read every input once: each file whole in one rank, or
    in byte ranges that continue one another from byte 0."""
    seen: dict[int, tuple[int, int | None]] = {}  # file -> (rank, end of its last range; None: read whole)
    problems: list[str] = []
    for r in rank_outputs:
        assert r.dataset.manifest.rank is not None
        for part in r.dataset.manifest.rank.parts:
            n, start, end = part.get("file"), part.get("start"), part.get("end")
            if not isinstance(n, int):
                problems.append(f"{r.folder}: a slice without a file number ({part})")
                continue
            before = seen.get(n)
            whole = start is None
            if before is not None and (whole or before[1] is None or before[1] != start):
                problems.append(f"{r.folder}: input {n} is read again or with a gap (rank {before[0]} read it before)")
            elif before is None and not whole and start != 0:
                problems.append(f"{r.folder}: input {n} starts at byte {start}, but no earlier rank read bytes before it")
            seen[n] = (r.index, None if whole else end)
    inputs = len(rank_outputs[0].dataset.manifest.inputs)
    missing = sorted(set(range(inputs)) - set(seen))
    if missing and any(r.dataset.manifest.inputs for r in rank_outputs):
        problems.append(f"inputs {missing} are in no rank's slice")
    return problems


def _difference(a: Manifest, b: Manifest) -> str:
    """What makes two ranks' conversions differ, as far as their manifests say."""
    keys = sorted(k for k in {*a.options, *b.options} if a.options.get(k) != b.options.get(k))
    said = [f"option {k}: {a.options.get(k)!r} vs {b.options.get(k)!r}" for k in keys]
    ins_a, ins_b = [i.file for i in a.inputs], [i.file for i in b.inputs]
    if ins_a != ins_b:
        only_a, only_b = sorted(set(ins_a) - set(ins_b)), sorted(set(ins_b) - set(ins_a))
        said.append(
            f"inputs differ (only in one: {only_a[:3]}; only in the other: {only_b[:3]})"
            if only_a or only_b
            else "inputs in another order"
        )
    return "; ".join(said) or "the same inputs by name, changed on disk (size or modification time) between the ranks"


def merge(
    parts: list[str | os.PathLike[str]] | str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    *,
    dedup_memory: int = DEFAULT_MEMORY,
    overwrite: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> ConvertResult:
    """Assemble the ranks under ``parts`` (OUT folders holding ``ranks/``, or rank folders) into ``output``
    (default: the one part given). Returns the merged dataset's :class:`ConvertResult`; raises
    :class:`MergeError` when the ranks are incomplete or differ, :class:`OptionsError` when ``output`` holds
    another dataset (``overwrite`` replaces it). ``on_progress(ranks done, ranks)``."""
    named = [str(p) for p in ([parts] if isinstance(parts, (str, os.PathLike)) else parts)]
    if output is None:
        if len(named) != 1:
            raise OptionsError("merge of several folders needs -o OUT")
        output = named[0]
    if objstore.is_remote(str(output)) or any(objstore.is_remote(p) for p in named):
        return _merge_remote(named, str(output), dedup_memory, overwrite, on_progress)
    return _merge([Path(p) for p in named], Path(output), dedup_memory, overwrite, on_progress)


def _merge_remote(
    named: list[str], output: str, dedup_memory: int, overwrite: bool, on_progress: Callable[[int, int], None] | None
) -> ConvertResult:
    """Ranks and/or the output in an object store: each remote part is brought into its local copy
    (:class:`objstore.Mirror`, read only), the merge runs locally, and a remote output is replicated at each
    durable point and at the end, as a remote convert's is."""
    out_url = output.rstrip("/") if objstore.is_remote(output) else None
    out_mirror = objstore.Mirror(out_url) if out_url is not None else None
    with contextlib.ExitStack() as held:
        if out_mirror is not None:
            held.enter_context(out_mirror.claimed())
            out_mirror.pull()
        local: list[Path] = []
        for part in named:
            if not objstore.is_remote(part):
                local.append(Path(part))
            elif out_mirror is not None and part.rstrip("/") == out_url:
                local.append(out_mirror.base)
            else:
                mirror = held.enter_context(objstore.Mirror(part).claimed())
                mirror.pull()
                local.append(mirror.base)
        if out_mirror is None:
            return _merge(local, Path(output), dedup_memory, overwrite, on_progress)
        with out_mirror.attached():
            result = _merge(local, out_mirror.base, dedup_memory, overwrite, on_progress)
    result.output = output.rstrip("/")
    return result


def _merge(
    given: list[Path], out: Path, dedup_memory: int, overwrite: bool, on_progress: Callable[[int, int], None] | None
) -> ConvertResult:
    rank_outputs = open_ranks(find_ranks(given))
    key = _merge_key(rank_outputs)
    with hold(out, "merge"):
        state = RunState.load(out)
        if state is not None and state.fingerprint == key and state.status == "complete" and (out / MANIFEST).is_file():
            return ConvertResult.from_manifest(out, Manifest.load(out), already_complete=True)
        if (out / MANIFEST).is_file() and (state is None or not state.fingerprint.startswith("merge:")) and not overwrite:
            raise OptionsError(f"{out} holds another dataset; pass --overwrite to replace it with the merge")
        aside.clear_dataset(out)  # an interrupted or older merge: started over (the ranks are never touched)
        state = RunState(key)
        state.save(out)
        _Merge(out, rank_outputs, dedup_memory, on_progress).run()
        state.status = "complete"
        state.save(out)
        shutil.rmtree(out / WORK / REWRITE, ignore_errors=True)
        return ConvertResult.from_manifest(out, Manifest.load(out))


def _merge_key(rank_outputs: list[RankOutput]) -> str:
    """What one merge is of: these ranks' manifests, byte for byte (a rank redone is another merge)."""
    h = hashlib.sha256()
    for r in rank_outputs:
        h.update((r.folder / MANIFEST).read_bytes())
    return "merge:" + h.hexdigest()[:16]


class _Merge:
    def __init__(
        self, out: Path, rank_outputs: list[RankOutput], memory: int, on_progress: Callable[[int, int], None] | None
    ) -> None:
        self.out, self.ranks, self.memory, self.on_progress = out, rank_outputs, memory, on_progress
        head = rank_outputs[0].dataset
        self.options = dict(head.options)
        self.summary = head.summary
        self.visual = Visual(
            images=self.summary.images is not None,
            videos=self.summary.videos is not None,
            refs=self.options.get("visual") == "refs",
            metadata=self.summary.metadata_keys is not None,
        )

    def run(self) -> None:
        drops = self._dedup()
        streams: dict[str, list[tuple[Path, ShardInfo]]] = {}
        rewritten: set[Path] = set()
        for n, r in enumerate(self.ranks):
            self._shards_of(r, drops[n], streams, rewritten)
            if self.on_progress:
                self.on_progress(n + 1, len(self.ranks))

        def put(src: Path, dst: Path) -> None:
            if src in rewritten:
                os.replace(src, dst)
            else:
                link_or_copy(src, dst)

        with on_path(self.out, "merge into"):
            shard_rows, configs = place_shards(self.out, streams, str(self.options.get("split", "train")), put)
            write_rejects(self.out, self._rejects(drops))
        counts = RejectCounts.of(self.out / "rejects.jsonl")
        totals = self._totals(drops)
        s = self.summary
        pairs = s.equal_pairs is not None
        summary = describe_summary(
            shard_rows, configs, counts, totals, list(s.skipped_inputs), s.sample_rate, s.codec,
            exclude_given=any(r.dataset.summary.excluded is not None for r in self.ranks), pairs=pairs,
            visual=self.visual, prompts=s.prompts,
        )  # fmt: skip
        head = self.ranks[0].dataset.manifest
        manifest = Manifest(
            audiodata_version=__version__,
            format_version=FORMAT_VERSION,
            options=self.options,
            inputs=[InputEntry(i.file, i.dialect, i.entry) for i in head.inputs],
            summary=summary,
            shards=shard_rows,
            rejects=counts.entry(pairs),
        )
        write_dataset(self.out, manifest, str(self.options.get("license", "unknown")), self.visual)

    # -- dedup across ranks --------------------------------------------------------------------------
    def _dedup(self) -> list[_Drops]:
        """Every rank's rows through one deduper, in rank order and input order within a rank: the verdicts a
        local run reaches, since it checks the same rows in the same order."""
        drops = [_Drops() for _ in self.ranks]
        mode = self.options.get("dedup", "off")
        if mode == "off":
            return drops
        threshold = float(self.options.get("dedup_threshold", 0.82))
        deduper = RecordDeduper(mode == "near", threshold, self.memory, self.out / WORK, keep_report=False)
        try:
            for n, r in enumerate(self.ranks):
                rank = r.dataset.manifest.rank
                assert rank is not None
                if rank.dedup_keys is None:
                    raise MergeError([f"{r.folder}: no dedup keys (converted with --dedup {mode}? its manifest names none)"])
                positions: dict[str, int] = {}
                for keys in _read_keys(r.folder / rank.dedup_keys):
                    at = positions.get(keys.stream, 0)
                    positions[keys.stream] = at + 1
                    verdict = deduper.check(keys.info())
                    if verdict.duplicate_of is None:
                        continue
                    d = drops[n]
                    d.rows.setdefault(keys.stream, set()).add(at)
                    entry = {k: v for k, v in keys.entry.items() if k not in ("record", "raw")}
                    entry.update(duplicate_fields(verdict))
                    entry.update({k: v for k, v in keys.entry.items() if k in ("record", "raw")})
                    d.entries.append(entry)
                    merge_stats(d.stats, keys.stats)
                self._check_positions(r, positions)
        finally:
            deduper.close()
        return drops

    def _check_positions(self, r: RankOutput, positions: dict[str, int]) -> None:
        """A rank's keys name each of its rows once: else its keys and shards are not of one run."""
        rows: dict[str, int] = {}
        for shard in r.dataset.manifest.shards:
            stream = self._stream(r, shard.config, shard.split)
            rows[stream] = rows.get(stream, 0) + shard.rows
        if rows != positions:
            raise MergeError([f"{r.folder}: its dedup keys name {positions} rows, its shards hold {rows} (damaged?)"])

    @staticmethod
    def _stream(r: RankOutput, config: str, split: str) -> str:
        return f"{r.dataset.kind(config)}/{split}"

    # -- shards ---------------------------------------------------------------------------------------
    def _shards_of(
        self, r: RankOutput, drops: _Drops, streams: dict[str, list[tuple[Path, ShardInfo]]], rewritten: set[Path]
    ) -> None:
        """A rank's shards, stream by stream, in order: as they are, or rewritten without their dropped rows."""
        start: dict[str, int] = {}
        for shard in r.dataset.manifest.shards:
            stream = self._stream(r, shard.config, shard.split)
            first = start.get(stream, 0)
            start[stream] = first + shard.rows
            dropped = {p - first for p in drops.rows.get(stream, ()) if first <= p < first + shard.rows}
            listed = streams.setdefault(stream, [])
            if not dropped:
                info = ShardInfo(
                    stream, len(listed), shard.file, shard.rows, shard.bytes, shard.sha256, shard.audio_seconds, shard.clips, 0, 0
                )
                listed.append((r.dataset.path(shard), info))
                continue
            if len(dropped) == shard.rows:
                continue
            made: list[ShardInfo] = []
            writer = ShardWriter(
                self.out / WORK / REWRITE,
                f"{stream}-{r.index:05d}",
                r.dataset.kind(shard.config),
                self.summary.sample_rate,
                int(self.options.get("max_shard_size", 500 * 10**6)),
                int(self.options.get("row_group_rows", 100)),
                len(made) + sum(1 for _ in listed),
                made.append,
                self.visual,
            )
            k = 0
            try:
                for batch in r.dataset.shard_batches(shard):
                    for row in batch.to_pylist():
                        if k not in dropped:
                            writer.add(row, k, {})
                        k += 1
                writer.close()
            except BaseException:
                writer.abort()
                raise
            for info in made:
                path = self.out / WORK / REWRITE / info.file
                rewritten.add(path)
                listed.append((path, info))

    # -- rejects and counters ---------------------------------------------------------------------------
    def _rejects(self, drops: list[_Drops]) -> Iterator[str]:
        """Every rank's rejects.jsonl in rank order, the duplicates merge found in their input places."""
        for r, d in zip(self.ranks, drops, strict=True):
            path = r.folder / "rejects.jsonl"
            found = (json.dumps(e, ensure_ascii=False) for e in d.entries)
            with open(path, encoding="utf-8") as fh:
                yield from heapq.merge(fh, found, key=_seq)

    def _totals(self, drops: list[_Drops]) -> dict[str, Any]:
        """The rows' counters over every rank, less those of the rows dedup dropped."""
        totals: dict[str, Any] = {}
        for r in self.ranks:
            s = r.dataset.summary
            warnings = dict(s.warnings_by_code)
            for skipped in s.skipped_inputs:  # counted with the warnings in the summary, added back by describe_summary
                warnings[skipped["code"]] = warnings.get(skipped["code"], 0) - 1
            rank_totals: dict[str, Any] = {
                "warnings": warnings,
                "source_sampling_rates": dict(s.source_sampling_rates),
                "source_formats": dict(s.source_formats),
                "kto_labels": dict(s.kto_labels),
                "images": s.images or 0,
                "videos": s.videos or 0,
                "metadata_keys": dict(s.metadata_keys or {}),
            }
            merge_stats(totals, rank_totals)
        for d in drops:
            merge_stats(totals, _negated(d.stats))
        return _pruned(totals)


def _seq(line: str) -> int:
    return int(json.loads(line)["seq"])


def _read_keys(path: Path) -> Iterator[DedupKeys]:
    with on_path(path, "read"), open(path, encoding="utf-8") as fh:
        for line in fh:
            yield DedupKeys.from_json(line)


def _negated(stats: dict[str, Any]) -> dict[str, Any]:
    return {k: _negated(v) if isinstance(v, dict) else -v for k, v in stats.items()}


def _pruned(totals: dict[str, Any]) -> dict[str, Any]:
    """Counters with the keys that came to zero left out (a local run never lists what no written row had)."""
    out: dict[str, Any] = {}
    for k, v in totals.items():
        if isinstance(v, dict):
            out[k] = {a: b for a, b in v.items() if b}
        else:
            out[k] = v
    return out


def link_or_copy(src: Path, dst: Path) -> None:
    """``dst`` as a hard link to ``src`` (no bytes copied), or a copy where links cannot be (another filesystem)."""
    with on_path(dst, "create"):
        try:
            os.link(src, dst)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
            shutil.copyfile(src, dst)


__all__ = ["MergeError", "find_ranks", "link_or_copy", "merge", "open_ranks"]
