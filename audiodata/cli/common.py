"""What the command modules share: exit codes, the parser class, the reading options convert, lint and
dedup have in common, JSON output, and the error line.

Only the standard library is imported here at module level (see :mod:`audiodata.cli.commands`).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from audiodata.pipeline.options import ConvertOptions

EXIT_OK, EXIT_REJECTS, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it
EXIT_PIPE = 141  # stdout closed early (| head): 128 + SIGPIPE


class Parser(argparse.ArgumentParser):
    """argparse exits 2 on a usage error already; keep the message short (usage line + one error line).

    ``late_positionals``: optional positionals (``nargs="?"``) that may also come after options, as the old
    positional form of an output did (``export DATASET --to X DIR``): argparse alone fills such a positional with
    its default when an option comes first and then calls the word after the options unrecognized.
    """

    late_positionals: tuple[str, ...] = ()

    def error(self, message: str) -> Any:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        ns, extras = super().parse_known_args(args, namespace)
        for dest in self.late_positionals:
            if getattr(ns, dest, None) is None and extras and not extras[0].startswith("-"):
                setattr(ns, dest, extras.pop(0))
        return ns, extras


def error(console: Console, message: object) -> None:
    """One line on stderr, greppable, never rich markup from the message itself."""
    from rich.markup import escape

    console.print(f"[bold red]error:[/] {escape(str(message))}", soft_wrap=True, highlight=False)


def stderr_console() -> Console:
    from rich.console import Console

    return Console(stderr=True)


def stdout_console() -> Console:
    from rich.console import Console

    return Console()


def add_reading_options(c: argparse.ArgumentParser) -> None:
    """Options convert, lint and dedup share: they must read and judge records the same way."""
    from audiodata.budget import DEFAULT_CUTOFF
    from audiodata.families import FAMILIES as MODEL_FAMILIES
    from audiodata.readers.spec import DIALECTS
    from audiodata.rules.transcript import TASKS

    c.add_argument("--format", choices=[*DIALECTS, "openai"], help="force a dialect instead of detecting it per record")
    c.add_argument("--media-root", help="folder relative audio paths resolve against (default: each input file's folder)")
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
        help="which records the transcript-rate rules (R) measure: auto (transcription-like ones), asr (every "
        "single-exchange record), none (default auto)",
    )
    c.add_argument("--num-workers", type=int, default=0, help="worker processes (default: all cores)")
    c.add_argument(
        "--dedup-memory",
        default="64MiB",
        help="memory for the duplicate index (D rules, dedup); past it the index spills to $TMPDIR (convert: to the "
        "output folder) and memory stays flat however large the corpus (default 64MiB)",
    )
    c.add_argument("--no-progress", action="store_true", help="no progress bar")


def reading_options(args: argparse.Namespace, **extra: Any) -> ConvertOptions:
    """The :class:`ConvertOptions` the reading options give (``extra``: the command's own)."""
    from audiodata.pipeline.options import ConvertOptions, parse_size

    return ConvertOptions(
        format=args.format,
        media_root=args.media_root,
        datasets=args.datasets,
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
        num_workers=args.num_workers,
        dedup_memory=parse_size(args.dedup_memory),
        **extra,
    )


def codes(text: str) -> list[str]:
    return [c.strip().upper() for c in text.split(",") if c.strip()]


def write_json_report(data: dict[str, Any], target: str | None) -> None:
    """``--report-json FILE``, or ``-`` for stdout (the tables then go to stderr)."""
    if not target:
        return
    from audiodata.faults import write_atomic

    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if target == "-":
        sys.stdout.write(text)
    else:
        write_atomic(target, text)


# -- one name per concept: old spellings keep working for one release, with a note -------------------------------


def deprecation_note(old: str, new: str) -> None:
    """One line on stderr: the old spelling still works in this release and goes in the next."""
    sys.stderr.write(f"audiodata: warning: {old} is deprecated, use {new} (the old spelling goes in the next release)\n")


class _Renamed(argparse.Action):
    """An old spelling of ``target``: parses exactly like it, says it is deprecated, hidden from ``--help``."""

    def __init__(self, option_strings: list[str], dest: str, target: argparse.Action, **_: Any) -> None:
        super().__init__(
            option_strings,
            target.dest,
            nargs=target.nargs,
            const=target.const,
            default=argparse.SUPPRESS,  # the target's default stands
            type=target.type,  # type: ignore[arg-type]  # typeshed: Action.type may be a registered name (str), __init__ omits it
            choices=target.choices,
            help=argparse.SUPPRESS,
            metavar=target.metavar,
        )
        self.target = target

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option: Any = None) -> None:
        new = self.target.option_strings[-1]
        deprecation_note(str(option), new)
        self.target(parser, namespace, values, new)


def renamed(parser: argparse.ArgumentParser, new: str, *old: str) -> None:
    """Accept ``old`` spellings of the option ``new`` (already added), each with a deprecation note."""
    target = next(a for a in parser._actions if new in a.option_strings)
    parser.add_argument(*old, action=_Renamed, target=target)


def output_or_positional(args: argparse.Namespace, positional: str, flag: str = "-o/--output") -> str:
    """The output path from ``-o/--output`` (``args.output_path``), or from the old positional form, which still
    works with a deprecation note. Neither, or both, is a usage error (exit 2)."""
    from audiodata.pipeline.options import OptionsError

    old = getattr(args, positional)
    if old is not None and args.output_path is not None:
        raise OptionsError(f"the output is given twice ({old} and {flag} {args.output_path}); give only {flag}")
    if old is not None:
        deprecation_note(f"the output as a positional argument ({old})", f"{flag} {old}")
        return str(old)
    if args.output_path is None:
        raise OptionsError(f"give the output folder: {flag} DIR")
    return str(args.output_path)


# -- progress -------------------------------------------------------------------------------------------------


class Bar:
    """A rich progress bar that appears on its first update: whatever a command checks before its work starts
    (inputs, options, the output folder) fails with its one error line and no bar on screen.

    Columns: ``label``, the bar, percent, ``{count} {unit}``, ``{rate} {unit}/s``, elapsed, time left (ETA), then
    ``extra`` (rich format strings over the task's fields, e.g. ``"{task.fields[rejected]} rejected"``). Drawn on a
    terminal only: a log (stderr redirected) gets the summary and the errors, not frames of a bar.
    """

    def __init__(
        self, label: str, unit: str, console: Console, *, disable: bool = False, extra: tuple[str, ...] = (), **fields: Any
    ) -> None:
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn(f"[bold]{label}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[count]} " + unit),
            TextColumn("{task.fields[rate]} " + unit + "/s"),
            *(TextColumn(x) for x in extra),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=disable or not console.is_terminal,
        )
        self._fields = {"count": 0, "rate": "-", **fields}
        self._task: Any = None

    def update(self, *, count: int | None = None, **kw: Any) -> None:
        """``completed``/``total`` drive the bar and the ETA; ``count`` the count and rate columns."""
        if self._task is None:
            self.progress.start()
            self._task = self.progress.add_task("", total=None, **self._fields)
        if count is not None:
            elapsed = self.progress.tasks[0].elapsed or 0
            kw.update(count=f"{count:,}", rate=f"{count / elapsed:,.0f}" if elapsed > 0 else "-")
        self.progress.update(self._task, **kw)

    def finish(self) -> None:
        """Fill the bar at the end of the work (a total that was an estimate)."""
        if self._task is not None:
            task = self.progress.tasks[0]
            self.progress.update(self._task, completed=task.total if task.total is not None else task.completed)

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self.progress.stop()
