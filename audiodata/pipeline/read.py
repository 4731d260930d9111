"""The read stage shared by every command: input files -> located, parsed, checked records.

convert, lint and dedup iterate the same :class:`Pending` items, so a record is parsed
and checked by exactly one code path whatever command reads it. ``read_raw`` only
cuts files into records (cheap, sequential); ``parse_item`` does the rest and can run
in a worker process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from audiodata.errtext import library_error
from audiodata.normalize import normalize_record, normalizer
from audiodata.readers import corpus
from audiodata.readers.dialects import dialect_of, parse_record
from audiodata.readers.dialects.common import ParseContext, ParseError
from audiodata.readers.items import JSON, iter_items
from audiodata.readers.jsonstream import RawItem, parse_text
from audiodata.readers.longform import LongForm
from audiodata.readers.pairs import PairSource, make_pair, same_text
from audiodata.readers.rawfile import GzipBounds
from audiodata.readers.sources import InputFile
from audiodata.readers.templates import Template
from audiodata.records import Record, SourceLoc
from audiodata.rules.engine import check_record, keep_enabled
from audiodata.rules.findings import Finding
from audiodata.rules.schema import SchemaCheck


@dataclass
class Pending:
    """One input record: its position in the run (``seq``), the raw item, and either a
    parsed record with its rule findings or the findings that say why there is none."""

    seq: int
    item: RawItem
    source: SourceLoc
    record: Record | None
    findings: list[Finding]


@dataclass(frozen=True)
class ReadSettings:
    """What parsing a record depends on, besides the record: picklable for workers."""

    max_record_bytes: int
    prompt: str | None = None
    system: str | None = None
    enabled: frozenset[str] | None = None
    pairs: PairSource | None = None  # transcripts become DPO pairs with these hypotheses rejected (readers.pairs)
    template: Template | None = None  # --task preset or --template file (readers/templates.py)
    normalize: str = "none"  # --normalize-transcripts: rewrite transcription replies before the rules (audiodata.normalize)
    task: str = "auto"  # which records are transcriptions (the replies --normalize-transcripts rewrites)


def read_raw(
    files: list[InputFile],
    max_record_bytes: int,
    start: int = 0,
    on_file_done: Callable[[int], None] | None = None,
    bounds: GzipBounds | None = None,
    longform: LongForm | None = None,
) -> Iterator[tuple[int, int, RawItem]]:
    """``(seq, file number, item)`` for every record of every file, its text not yet parsed.
    Items before ``start`` are counted, not yielded. A file that cannot be read (or stops
    reading part way) is one more item with its finding (``iter_file``): never an exception.
    ``longform``: how raw ASR corpora cut long recordings (``audiodata.readers.items``)."""
    seq = 0
    done_bytes = 0
    for n, f in enumerate(files):
        where = (f.path, f.kind, f.companion, f.media_root, f.input_dir, f.spec.formatting)
        for item in iter_items(*where, max_record_bytes, bounds, longform, f.hub, f.part):
            if seq >= start:
                yield seq, n, item
            seq += 1
        done_bytes += f.size
        if on_file_done:
            on_file_done(done_bytes)


class Parser:
    """Parses raw items of a run's files; holds the per-file schema memo."""

    def __init__(self, files: list[InputFile], settings: ReadSettings) -> None:
        self.files, self.settings = files, settings
        self.schema_on = settings.enabled is None or "S005" in settings.enabled
        # the schemas describe JSON text: not the rows of a dataset or tar
        self.schemas = [SchemaCheck(f.spec) if f.kind not in corpus.KINDS else None for f in files]
        self.normalize = normalizer(settings.normalize)
        self.input_dirs = [f.input_dir for f in files]  # a property that builds a string: once per file, not per record

    def __call__(self, seq: int, n: int, item: RawItem) -> Pending:
        f, s = self.files[n], self.settings
        item = parse_text(item, s.max_record_bytes)
        src = SourceLoc(f.display, item.index, item.line if item.member is None else None, item.member)
        if item.code is not None:
            return Pending(seq, item, src, None, [Finding(item.code, item.error or "", item.field, src)])
        try:
            return self._checked(seq, n, item, src)
        except Exception as exc:  # a value no dialect code foresaw: this record's finding, never the run's end
            why = f"the record cannot be read: {type(exc).__name__}: {library_error(exc)} (please report this as a bug)"
            return Pending(seq, item, src, None, [Finding("F001", why, "", src)])

    def _paired(
        self, record: Record, item: RawItem, src: SourceLoc, findings: list[Finding]
    ) -> tuple[Record | None, list[Finding]]:
        """The record as a preference pair with its hypothesis rejected (``readers.pairs``): P005 when it has
        none, P004 (convert skips it, counted) when the two sides are equal."""
        assert self.settings.pairs is not None
        try:
            pair, equal = make_pair(record, item.obj, self.settings.pairs)
        except ParseError as exc:
            return None, [*findings, Finding(exc.code, exc.message, exc.field, src)]
        if self.normalize is not None and normalize_record(pair, self.normalize, self.settings.task):
            equal = same_text(pair.chosen[0].content, pair.rejected[0].content) if pair.chosen and pair.rejected else equal
        if equal and (self.settings.enabled is None or "P004" in self.settings.enabled):  # --ignore P004: written
            why = "the hypothesis equals the reference transcript: the pair teaches nothing (convert skips it, counted)"
            findings = [*findings, Finding("P004", why, pair.rejected[0].field if pair.rejected else "", src)]
        return pair, findings

    def _checked(self, seq: int, n: int, item: RawItem, src: SourceLoc) -> Pending:
        f, s = self.files[n], self.settings
        dialect = dialect_of(item.obj, f.spec.formatting) if isinstance(item.obj, dict) else None
        ctx = ParseContext(f.spec, src, f.media_root, s.prompt, s.system, template=s.template, dialect=dialect)
        record, findings = parse_record(item.obj, ctx)
        if record is not None:
            record.input_dir = self.input_dirs[n]
            if s.pairs is not None:  # normalised inside, so the two sides are judged equal in the written style
                record, findings = self._paired(record, item, src, findings)
            elif self.normalize is not None:  # the rules judge, and convert writes, the normalised text
                normalize_record(record, self.normalize, s.task)
        check = self.schemas[n]
        if self.schema_on and check is not None and isinstance(item.obj, dict):
            schema = check(item.obj, dialect, src) if dialect else []
            if schema:  # the schema locates the problem better than the parser's S001; a specific code wins over it
                specific = {x.field for x in findings if x.code != "S001"}
                findings = [x for x in findings if x.code != "S001"] + [x for x in schema if x.field not in specific]
        if record is not None:
            checked = keep_enabled(check_record(record, s.enabled), s.enabled)
            if any(x.code == "P004" for x in findings):
                checked = [x for x in checked if x.code != "P001"]  # the pair is skipped: P004 says why, once
            findings = findings + checked
        return Pending(seq, item, src, record, findings)


def read_records(
    files: list[InputFile],
    max_record_bytes: int,
    prompt: str | None = None,
    system: str | None = None,
    enabled: frozenset[str] | None = None,
    start: int = 0,
    on_file_done: Callable[[int], None] | None = None,
    bounds: GzipBounds | None = None,
    longform: LongForm | None = None,
    pairs: PairSource | None = None,
    template: Template | None = None,
    normalize: str = "none",
    task: str = "auto",
) -> Iterator[Pending]:
    """Every record of every file in order, parsed and checked in this process."""
    settings = ReadSettings(
        max_record_bytes, prompt, system, enabled, pairs=pairs, template=template, normalize=normalize, task=task
    )
    parse = Parser(files, settings)
    for seq, n, item in read_raw(files, max_record_bytes, start, on_file_done, bounds, longform):
        yield parse(seq, n, item)


def visual_media(files: list[InputFile], max_record_bytes: int, bounds: GzipBounds | None = None) -> tuple[bool, bool, bool]:
    """Whether any record of the run names (images, videos), and whether any carries metadata (the raw ASR
    corpora: NeMo, lhotse, subtitles): the output's optional columns must be decided before the first row
    is written, since every shard of a config has one schema.

    A pass over the inputs that parses only records whose text names a medium (``image``,
    ``video`` or the dataset_info column) or a raw corpus's key, and stops once all are found: nearly
    free for audio-only corpora and for vision corpora alike. The answer depends on the inputs alone,
    so any worker count, and a resumed run, decides the same.
    """
    found = {"images": False, "videos": False, "metadata": False}
    for f in files:
        if f.kind in corpus.KINDS:  # rows of a dataset or tar: their columns say it, without reading every row twice
            images, videos = corpus.visual_columns(f.kind, f.path, f.hub)
            found["images"] |= images
            found["videos"] |= videos
            found["metadata"] |= corpus.has_metadata(f.kind, f.path, f.hub, f.spec)
            continue
        found["metadata"] |= f.kind != JSON  # subtitles, lhotse supervisions: every record has metadata
        needles = {
            "images": ("image", f.spec.column("images")),
            "videos": ("video", f.spec.column("videos")),
            "metadata": ("audio_filepath", "audio_filename", "supervisions"),
        }
        for _seq, _n, item in read_raw([f], max_record_bytes, bounds=bounds):
            if all(found.values()):
                return True, True, True
            wanted = [k for k, hit in found.items() if not hit]
            if item.text is not None and not any(w in item.text for k in wanted for w in needles[k]):
                continue
            item = parse_text(item, max_record_bytes)
            if item.code is not None or not isinstance(item.obj, dict):
                continue
            ctx = ParseContext(f.spec, SourceLoc(f.display, item.index, item.line), f.media_root)
            try:
                record, _ = parse_record(item.obj, ctx)
            except Exception:  # the read stage reports it (Parser)
                continue
            if record is not None:
                found["images"] |= bool(record.images)
                found["videos"] |= bool(record.videos)
                found["metadata"] |= record.metadata is not None
    return found["images"], found["videos"], found["metadata"]
