"""Each input as a stream of raw items (one per record), whatever kind of input it is: the one switch the
read stage calls.

JSON and JSONL files are cut into records by ``jsonstream``; Hugging Face datasets (Parquet/Arrow files, a
Hub id) and WebDataset tars into rows by :mod:`audiodata.readers.corpus`; raw ASR corpora need more: a lhotse
supervisions manifest is joined with its recordings manifest, a subtitle file becomes windows of the
recording next to it, and NeMo lines or lhotse cuts longer than the model's window are cut into windows
at pauses (:mod:`audiodata.readers.longform`). All of it happens here, in the reading process and in
input order, so every command (convert, lint, dedup) sees the same records, located the same way, for
any number of workers; the parsers then read every item as a plain record.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from audiodata.readers import corpus, lhotse, nemo, subtitles
from audiodata.readers.dialects import lhotse as lhotse_rows
from audiodata.readers.dialects import nemo as nemo_rows
from audiodata.readers.jsonstream import Cursor, RawItem, iter_file, iter_range, parse_text, splittable
from audiodata.readers.longform import LongForm
from audiodata.readers.rawfile import GzipBounds

JSON, SUBTITLES, SUPERVISIONS, RECORDINGS = "json", "subtitles", "lhotse-supervisions", "lhotse-recordings"
#: Markers of a record the long-form rewriting may concern: other records pass through unparsed.
_NEEDLES = ('"audio_filepath"', '"audio_filename"', '"supervisions"')  # three: _rewrite tests each (no generator per record)


def file_kind(path: Path) -> tuple[str, Path | None]:
    """How a file is read: (kind, companion). A recordings manifest beside its supervisions manifest is
    read through that one (kind ``lhotse-recordings``: not read on its own); Parquet, Arrow and tar files are
    the kinds of :data:`audiodata.readers.corpus.KINDS`."""
    table = corpus.file_kind(path)
    if table is not None:
        return table, None
    if subtitles.is_subtitles(path):
        return SUBTITLES, None
    if lhotse.is_supervisions(path):
        return SUPERVISIONS, lhotse.recordings_for(path)
    if lhotse.is_recordings(path):
        return RECORDINGS, None
    return JSON, None


def is_input(path: Path) -> bool:
    """A file a folder or glob expands to besides JSON: subtitles."""
    return subtitles.is_subtitles(path)


def iter_items(
    path: Path,
    kind: str,
    companion: Path | None,
    media_root: str,
    input_dir: str | None,
    formatting: str | None,
    max_record_bytes: int,
    bounds: GzipBounds | None = None,
    longform: LongForm | None = None,
    hub: Any = None,
    part: tuple[int, int] | None = None,
) -> Iterator[RawItem]:
    """The raw items of one input, in order. ``longform`` None: no audio is read (windows are cut only
    where the timestamps leave gaps) and NeMo lines and cuts pass unchanged (a pre-pass that only looks).
    ``hub``: the Hub dataset (``hfhub.HubRef``) of an input of kind ``hub``. ``part``: bytes ``[start, end)``
    of a JSONL file, or the row groups starting there of a Parquet file (a rank's slice,
    :mod:`audiodata.pipeline.ranks`), numbered as in the whole file."""
    if kind in corpus.KINDS:  # rows of a dataset or tar, located by member
        yield from corpus.iter_items(kind, path, hub, max_record_bytes, bounds, part)
        return
    lf = longform or LongForm(detect_pauses=False)
    finder = _finder(media_root, input_dir, lf) if longform is not None and lf.detect_pauses else None
    if kind == SUBTITLES:
        stream = subtitles.items(path, media_root, lf, finder)
    elif kind == SUPERVISIONS and companion is not None:
        stream = lhotse.joined_items(path, companion, max_record_bytes, bounds, lf, finder)
    else:
        if part is not None:
            stream = iter_range(path, part[0], part[1], None, max_record_bytes, lazy=True, bounds=bounds)
        else:
            stream = iter_file(path, max_record_bytes, lazy=True, bounds=bounds)
        if longform is None or formatting not in (None, "nemo", "lhotse"):
            yield from stream
            return
        stream = _rewrite(stream, max_record_bytes, lf, finder)
    yield from _numbered(stream, part is not None)


def range_splittable(path: Path, kind: str, formatting: str | None, longform: LongForm | None) -> bool:
    """Whether :func:`iter_range_items` over byte ranges of this input gives what :func:`iter_items` gives:
    a splittable JSON-lines file (:func:`audiodata.readers.jsonstream.splittable`), unless NeMo lines may be
    packed into windows (a run of lines of one recording can cross a range's end)."""
    if kind != JSON:
        return False
    if longform is not None and longform.mode == "windows" and formatting in (None, "nemo", "lhotse"):
        return False
    return splittable(path)


def iter_range_items(
    path: Path,
    start: int,
    end: int,
    line: int,
    media_root: str,
    input_dir: str | None,
    formatting: str | None,
    max_record_bytes: int,
    longform: LongForm | None = None,
    pos: Cursor | None = None,
) -> Iterator[RawItem]:
    """:func:`iter_items` for the lines in bytes ``[start, end)`` of a :func:`range_splittable` input, ``start``
    being the start of line ``line``: the same items with the same lines, indexed from 0 within the range
    (the caller adds the records of the ranges before; a failure of the file, and ``pos``: see
    :func:`audiodata.readers.jsonstream.iter_range`)."""
    stream = iter_range(path, start, end, line, max_record_bytes, lazy=True, pos=pos)
    if longform is None or formatting not in (None, "nemo", "lhotse"):
        yield from stream
        return
    lf = longform
    finder = _finder(media_root, input_dir, lf) if lf.detect_pauses else None
    yield from _numbered(_rewrite(stream, max_record_bytes, lf, finder))


def _numbered(stream: Iterator[RawItem], from_first: bool = False) -> Iterator[RawItem]:
    """Items numbered in the order they come (a record's ``index``): the same as the file's own order while
    each item is one record, distinct where windows pack several lines or split one cut. A failure of the
    file before any record (index -1) keeps its index. ``from_first``: numbered on from the first item's own
    index (a byte range of a file starts where the records before it left off)."""
    k: int | None = None if from_first else 0
    for item in stream:
        if item.index >= 0:
            if k is None:
                k = item.index
            item.index = k
            k += 1
        yield item


def _finder(media_root: str, input_dir: str | None, lf: LongForm) -> Any:
    from audiodata.audio.probe import PauseProbe  # the audio stack, only when audio is read

    return PauseProbe(media_root, input_dir, lf.max_audio_bytes, lf.allow_absolute_paths).finder


def _rewrite(items: Iterator[RawItem], max_record_bytes: int, lf: LongForm, finder: Any) -> Iterator[RawItem]:
    """NeMo lines (runs of one audio file) and lhotse cuts as the records they make; the rest unchanged."""
    run: list[RawItem] = []
    for item in items:
        text = item.text
        if text is not None and _NEEDLES[0] not in text and _NEEDLES[1] not in text and _NEEDLES[2] not in text:
            if run:
                yield from _flush(run, lf, finder)
                run = []
            yield item
            continue
        item = parse_text(item, max_record_bytes)
        obj = item.obj
        if item.code is None and isinstance(obj, dict) and nemo_rows.is_nemo_row(obj):
            if lf.mode != "windows":  # one line, one record: nothing to hold
                yield from _flush(run, lf, finder)
                run = []
                yield from nemo.rewrite([item], lf, finder)
                continue
            if run and _audio(run[-1].obj) != _audio(obj):  # windows: a run of lines of one file is packed at once
                yield from _flush(run, lf, finder)
                run = []
            run.append(item)
            continue
        yield from _flush(run, lf, finder)
        run = []
        if item.code is None and isinstance(obj, dict) and lhotse_rows.is_cut(obj):
            yield from lhotse.rewrite(item, lf, finder)
        else:
            yield item
    yield from _flush(run, lf, finder)


def _audio(obj: dict[str, Any]) -> Any:
    return next((obj[k] for k in nemo_rows.AUDIO_KEYS if k in obj), None)


def _flush(run: list[RawItem], lf: LongForm, finder: Any) -> Iterator[RawItem]:
    if run:
        yield from nemo.rewrite(run, lf, finder)
