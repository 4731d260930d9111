"""The ``full`` lint report for people at a terminal (``lint --output-format full``, the default).

A table of the rules that fired, then per rule its first findings and how to fix it. Text is wrapped
by rich at word boundaries, with a hanging indent, so it reads at 60 columns; a very long message is
shortened at a word boundary (``textwrap.shorten``), never cut mid-word. Messages are :class:`Text`,
not markup, so brackets in a field or message print as they are; styles are dropped when the output
is not a terminal (rich), so logs hold no control codes.
"""

from __future__ import annotations

import textwrap
from typing import Any

from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from audiodata.rules import engine  # noqa: F401  (registers every rule)
from audiodata.rules.registry import REGISTRY

SEVERITY_ORDER = ("error", "warning", "info")
COLOUR = {"error": "red", "warning": "yellow", "info": "blue"}
MAX_MESSAGE = 400  # characters of one message in the terminal; the JSON and concise forms keep it whole


def at(f: dict[str, Any]) -> str:
    """``file:line`` (or ``file:member`` inside a tar or dataset, or ``file:index``) of a finding; the file alone for
    one about a whole input (index -1)."""
    if f["index"] == -1:
        return f["source"]
    if f.get("member"):
        return f"{f['source']}:{f['member']}"
    return f"{f['source']}:{f['line'] if f['line'] is not None else f['index']}"


def _indented(renderable: Any, left: int) -> Padding:
    return Padding(renderable, (0, 0, 0, left), expand=False)  # expand=False: no trailing spaces in logs


def _hanging(label: Text, text: Text) -> Table:
    """``label`` then ``text``, whose wrapped lines start under the text's first word, not under the label."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")  # words wrap; only a token longer than the line (a path) is folded
    grid.add_row(label, text)
    return grid


def print_lint(data: dict[str, Any], out: Console, max_examples: int = 3) -> None:
    """The summary table, each rule's first ``max_examples`` findings with its fix, the verdict and --fix."""
    s = data["summary"]
    order = sorted(s["by_code"], key=lambda c: (SEVERITY_ORDER.index(REGISTRY[c].severity.value), c))
    if order:
        t = Table(title=f"audiodata lint: {s['records']} records, {s['errors']} errors, {s['warnings']} warnings")
        for col in ("code", "name", "severity", "count"):
            t.add_column(col, justify="right" if col == "count" else "left", overflow="fold")
        for code in order:
            sev = REGISTRY[code].severity.value
            t.add_row(code, REGISTRY[code].name, Text(sev, style=COLOUR[sev]), str(s["by_code"][code]))
        out.print(t)
    firsts: dict[str, list[dict[str, Any]]] = {}
    for f in data["findings"]:
        seen = firsts.setdefault(f["code"], [])
        if len(seen) < max_examples:
            seen.append(f)
    for code in order:
        _print_rule(out, code, firsts.get(code, []), s["by_code"][code])
    verdict = (
        Text(f"{s['errors']} errors in {s['records_with_errors']} records would fail or degrade training", style="bold red")
        if s["errors"]
        else Text("no errors: ready to train", style="bold green")
    )
    extra = "" if s["audio_checked"] else " (audio not checked: --no-audio)"
    if s.get("transcript_style"):
        print_style(s["transcript_style"], out)
    if order or s.get("transcript_style"):
        out.print()
    out.print(Text(f"{s['records']} records, {s['clips']} clips, {s['audio_hours']:.3f} h audio{extra}: ") + verdict)
    for name, n in s.get("excluded_by", {}).items():
        out.print(Text(f"excluded by {name}: {n} records (not checked)"))
    tasks = s.get("rl_tasks") or {}
    if tasks:
        listed = ", ".join(f"{n} {task}" for task, n in sorted(tasks.items(), key=lambda kv: (-kv[1], kv[0])))
        out.print(f"RL records by task: {listed} ({sum(tasks.values())} in all)", markup=False)
    mix = s.get("modality") or {}
    if mix.get("audio") and mix.get("text_only"):
        out.print(
            f"modality: {mix['audio']} records with audio, {mix['text_only']} text-only; on several GPUs a batch without "
            "audio skips the encoder (ZeRO-3/FSDP hang): audiodata train plans for it, other trainers need fake audio inputs",
            markup=False,
        )
    if "fix" in data:
        _print_fixes(data, out)


#: Prompts shown in the terminal's style table (the JSON report lists more).
STYLE_PROMPTS = 5


_SHORT = {"punctuated": "punct", "digits": "digit", "words": "word"}


def _votes(counts: dict[str, int]) -> str:
    return " ".join(f"{_SHORT.get(k, k)} {n}" for k, n in counts.items()) or "-"


def print_style(style: dict[str, Any], out: Console) -> None:
    """The transcript style profile (``summary.transcript_style``): one row per input file, then per prompt."""
    title = f"transcript style: {style['records']} transcripts, per input file and per prompt (T002, T003)"
    t = Table(title=title, title_justify="left")
    for col in ("input / prompt", "n", "case", "punctuation (marks/word)", "numbers", "fillers/tags"):
        t.add_column(col, justify="right" if col in ("n", "fillers/tags") else "left", overflow="fold")

    def row(name: str, p: dict[str, Any], dim: bool = False) -> None:
        per_word = p["punctuation_per_word"]
        punct = _votes(p["punctuation"]) + ("" if per_word is None else f" ({per_word:.2f})")
        cells = (name, str(p["records"]), _votes(p["case"]), punct, _votes(p["numbers"]), f"{p['fillers']}/{p['tags']}")
        t.add_row(*(Text(c, style="dim" if dim else "") for c in cells))

    for name, p in style["by_source"].items():
        row(name, p)
    if style["prompts"] > 1 or len(style["by_source"]) > 1:
        for p in style["by_prompt"][:STYLE_PROMPTS]:
            row(f"prompt {textwrap.shorten(p['prompt'], 50, placeholder=' ...')}", p, dim=True)
    out.print()
    out.print(t)
    hidden = style["prompts"] - min(STYLE_PROMPTS, len(style["by_prompt"]))
    if hidden > 0 or style["prompts_untracked_records"]:
        more = f"... {hidden} more prompts in the JSON report" if hidden > 0 else ""
        if style["prompts_untracked_records"]:
            untracked, first = style["prompts_untracked_records"], style["prompts"]
            more += f" ({untracked} records under prompts past the first {first} not profiled per prompt)"
        out.print(_indented(Text(more.strip(), style="dim"), 2))


def _print_rule(out: Console, code: str, examples: list[dict[str, Any]], count: int) -> None:
    rule = REGISTRY[code]
    sev = rule.severity.value
    head = Text.assemble((code, f"bold {COLOUR[sev]}"), " ", (rule.name, "bold"), f" ({sev}, {count})")
    out.print()
    out.print(head)
    for f in examples:
        message = textwrap.shorten(f["message"], MAX_MESSAGE, placeholder=" ...")
        where = Text(at(f), style="cyan", overflow="fold")
        if f["field"]:
            where.append(f" [{f['field']}]", style="dim")
        out.print(_indented(where, 2))
        out.print(_indented(Text(message, overflow="fold"), 4))
    if count > len(examples):
        more = f"... {count - len(examples)} more (--max-examples N, or --output-format concise for every finding)"
        out.print(_indented(Text(more, style="dim"), 2))
    out.print(_indented(_hanging(Text("fix:", style="bold green"), Text(rule.hint)), 2))


def _print_fixes(data: dict[str, Any], out: Console) -> None:
    fx = data["fix"]
    out.print(
        f"--fix: {fx['records_changed']} records repaired -> {fx['output']} ({fx['not_copied']} unparsable not copied)",
        markup=False,
    )
    if "files" in fx:
        out.print(f"  {len(fx['files'])} files; {fx['paths_rewritten']} relative audio paths made absolute to keep resolving")
    for item in data["fixes"][:20]:
        where = f"{item['source']}:{item['line'] if item['line'] is not None else item['index']}"
        out.print(_indented(Text(f"{where}: " + "; ".join(item["changes"])), 2))
    if len(data["fixes"]) > 20:
        out.print(f"  ... {len(data['fixes']) - 20} more in the JSON report (--report-json)", markup=False)
