"""The options convert, lint and dedup share: they must read and judge records the same way."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from audiodata.cli.flags import renamed

if TYPE_CHECKING:
    from audiodata.pipeline.options import ConvertOptions


def add_reading_options(c: argparse.ArgumentParser) -> None:
    """Options convert, lint and dedup share: they must read and judge records the same way."""
    from audiodata.budget import DEFAULT_CUTOFF
    from audiodata.families import FAMILIES as MODEL_FAMILIES
    from audiodata.readers.spec import DIALECTS
    from audiodata.readers.templates import TASKS

    c.add_argument("--format", choices=[*DIALECTS, "openai"], help="force a dialect instead of detecting it per record")
    c.add_argument(
        "--media-root",
        help="folder relative audio paths resolve against (default: each input file's folder); may be s3://, gs://, hf://",
    )
    c.add_argument(
        "--allow-remote",
        action="append",
        default=[],
        metavar="PREFIX",
        help="fetch media URLs under this object-store prefix (s3://bucket/, gs://bucket/data/, hf://datasets/owner/name/; "
        "repeatable); other URLs, and http(s) always, are refused (A003)",
    )
    c.add_argument(
        "--dataset",
        action="append",
        dest="datasets",
        default=[],
        metavar="NAME",
        help="with a dataset_info.json: take only this entry (repeatable)",
    )
    c.add_argument(
        "--all-files",
        action="store_true",
        help="a folder holding a dataset_info.json: also read the JSON files it does not name (default: only those it names)",
    )
    c.add_argument(
        "--column",
        action="append",
        dest="columns",
        default=[],
        metavar="KEY=NAME",
        help="raw corpora (datasets folders, hub ids, WebDataset): which column is audio, text or prompt (repeatable); "
        "rejected=NAME (any transcript corpus, NeMo's pred_text too): DPO pairs, the transcript chosen, this column rejected",
    )
    c.add_argument(
        "--hypotheses",
        metavar="FILE",
        help="make DPO pairs: the transcript chosen, the hypothesis this file gives for the record's id rejected "
        '(JSONL {"id", "hypothesis"|"pred_text"|"text"} or Kaldi-style "ID TEXT" lines); equal pairs are skipped and counted',
    )
    c.add_argument("--prompt", help="user prompt added to transcript-only (MiniCPM-style) records")
    c.add_argument("--system-prompt", dest="system", help="system prompt for records that carry none")
    renamed(c, "--system-prompt", "--system")
    c.add_argument("--max-audio-bytes", default="256MiB", help="bound on one audio's encoded size (default 256MiB)")
    c.add_argument("--max-duration", type=float, default=1200.0, help="bound on one clip's seconds (default 1200)")
    c.add_argument("--max-record-bytes", default="512MiB", help="bound on one JSON record's size (default 512MiB)")
    c.add_argument(
        "--max-decompressed-bytes", default="64GiB", help="bound on what one gzip input expands to (default 64GiB)"
    )
    c.add_argument(
        "--max-expansion-ratio",
        type=float,
        default=100.0,
        help="bound on a gzip input's decompressed/compressed bytes, judged past its first 16MiB (default 100)",
    )
    c.add_argument("--strict-paths", action="store_true", help="refuse absolute audio paths outside the media root")
    c.add_argument(
        "--absolute-paths",
        action="store_true",
        help="write absolute local paths into outputs (rejects.jsonl, manifest, reports) as typed and resolved; "
        "default: relative to the input's folder or the media root, so outputs can be shared",
    )
    c.add_argument("--select", default="", help="only these rule codes/prefixes (comma separated, e.g. M,A00)")
    c.add_argument("--ignore", default="", help="skip these rule codes/prefixes (comma separated)")
    c.add_argument(
        "--model-family", choices=sorted(MODEL_FAMILIES), help="check token budget and audio window for this model family"
    )
    c.add_argument(
        "--cutoff-len",
        "--max-length",
        type=int,
        default=DEFAULT_CUTOFF,
        help=f"the trainer's token limit per example: LLaMA-Factory's cutoff_len, TRL's max_length (default {DEFAULT_CUTOFF})",
    )
    c.add_argument("--tokenizer", help="tokenizer (local path or Hub id) for exact text token counts in budget rules")
    c.add_argument(
        "--task",
        choices=TASKS,
        default="auto",
        help="what the records are: auto (the transcript-rate rules R measure transcription-like ones; default), none "
        "(R off); or a preset that also prompts transcript-only corpora (NeMo, lhotse, datasets, tars, MiniCPM rows) "
        "from a seeded pool: asr (R measures every single-exchange record), translate ({target_lang}), caption, qa "
        "(question/answer columns)",
    )
    c.add_argument(
        "--template",
        metavar="FILE.yaml",
        help="how transcript-only corpora become turns: a user prompt pool with <audio> and {placeholders}, the "
        "assistant column, a system prompt (README: Templates)",
    )
    c.add_argument("--target-lang", metavar="LANG", help="fills a template's {target_lang} for records without that column")
    c.add_argument(
        "--prompt-seed", type=int, metavar="N", help="which prompt of the pool each record gets (default: the template's seed, 0)"
    )
    c.add_argument(
        "--normalize-transcripts",
        choices=("none", "basic", "whisper-en"),  # = audiodata.normalize.NORMALIZERS (a test holds them equal)
        default="none",
        help="write the transcripts of transcription records in one style, the original kept in the row's metadata "
        "(transcript_original): basic (any language: lower case, no punctuation or tags) or whisper-en (Whisper's English "
        "normaliser: also digits for numbers, no fillers, American spelling; needs transformers and whisper-normalizer); "
        "lint and dedup judge the normalised text too (default none)",
    )
    c.add_argument(
        "--long-form",
        choices=("segments", "windows"),
        default="segments",
        help="NeMo/lhotse: one record per timed segment, or consecutive segments packed into windows cut at pauses "
        "(subtitles always are)",
    )
    c.add_argument("--window-seconds", type=float, help="longest window (default: the --model-family's, else 30)")
    c.add_argument("--num-workers", type=int, default=0, help="worker processes (default: all cores)")
    c.add_argument(
        "--dedup-memory",
        default="64MiB",
        help="memory for the duplicate index (D rules, dedup); past it the index spills to $TMPDIR (convert: to the "
        "output folder) and memory stays flat however large the corpus (default 64MiB)",
    )
    c.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_exclude_option(c: argparse.ArgumentParser) -> None:
    """``--exclude FILE`` (convert, lint): records a training run quarantined or skipped, or a convert rejected."""
    c.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="FILE",
        help="leave out the records this list names by id: a training run's quarantine.jsonl or skipped.jsonl, or a "
        "convert rejects.jsonl (repeatable; counted in the summary)",
    )


def reading_options(args: argparse.Namespace, **extra: Any) -> ConvertOptions:
    """The :class:`ConvertOptions` the reading options give (``extra``: the command's own)."""
    from audiodata.pipeline.options import ConvertOptions, parse_size

    return ConvertOptions(
        format=args.format,
        media_root=args.media_root,
        allow_remote=args.allow_remote,
        datasets=args.datasets,
        columns=args.columns,
        all_files=args.all_files,
        prompt=args.prompt,
        system=args.system,
        max_audio_bytes=parse_size(args.max_audio_bytes),
        max_duration=args.max_duration,
        max_record_bytes=parse_size(args.max_record_bytes),
        max_decompressed_bytes=parse_size(args.max_decompressed_bytes),
        max_expansion_ratio=args.max_expansion_ratio,
        allow_absolute_paths=not args.strict_paths,
        absolute_paths=args.absolute_paths,
        select=codes(args.select),
        ignore=codes(args.ignore),
        model_family=args.model_family,
        cutoff_len=args.cutoff_len,
        tokenizer=args.tokenizer,
        task=args.task,
        template=args.template,
        target_lang=args.target_lang,
        prompt_seed=args.prompt_seed,
        normalize_transcripts=args.normalize_transcripts,
        long_form=args.long_form,
        window_seconds=args.window_seconds,
        num_workers=args.num_workers,
        dedup_memory=parse_size(args.dedup_memory),
        exclude=getattr(args, "exclude", []),
        hypotheses=args.hypotheses,
        **extra,
    )


def codes(text: str) -> list[str]:
    return [c.strip().upper() for c in text.split(",") if c.strip()]
