"""The command line: exit codes CI pipelines gate on, JSON summary, info, rules; commands as a package (plugins
through the entry-point group), and a start that loads nothing heavy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from audiodata.cli import main as cli_main
from audiodata.cli.main import main
from tests.conftest import SAMPLE, write_audio, write_jsonl

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("datasets", "pandas", "pyarrow", "torch", "transformers")


def test_exit_0_when_every_record_goes_through(tmp_path, capsys):
    write_audio(tmp_path / "c/a.wav", seconds=1.0, rate=22050)
    write_jsonl(tmp_path / "c/c.jsonl", [{"audio": "a.wav", "text": "hello"}])
    assert main(["convert", str(tmp_path / "c"), "-o", str(tmp_path / "o"), "--no-progress", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["records_written"] == 1 and summary["exit_code"] == 0


def test_exit_1_when_records_are_rejected(tmp_path, capsys):
    assert main(["convert", str(SAMPLE), "-o", str(tmp_path / "o"), "--no-progress", "--num-workers", "1"]) == 1
    out = capsys.readouterr().out
    assert "rejected" in out and "rejects.jsonl" in out


def test_exit_2_on_usage_errors(tmp_path, capsys):
    assert main(["convert", str(tmp_path / "missing.jsonl"), "-o", str(tmp_path / "o")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["convert", str(SAMPLE), "-o", str(tmp_path / "o"), "--val-ratio", "1.5"]) == 2
    assert main(["convert", str(SAMPLE), "-o", str(tmp_path / "o"), "--max-shard-size", "lots"]) == 2
    try:
        main(["convert", str(SAMPLE)])  # no --output: argparse
    except SystemExit as exc:
        assert exc.code == 2


def test_ignore_turns_an_error_into_a_pass(tmp_path):
    write_audio(tmp_path / "c/a.wav", seconds=1.0)
    write_jsonl(
        tmp_path / "c/c.jsonl",
        [
            {
                "conversations": [{"from": "human", "value": "<audio><audio>hi"}, {"from": "gpt", "value": "ok"}],
                "audios": ["a.wav"],
            }
        ],
    )
    assert main(["convert", str(tmp_path / "c"), "-o", str(tmp_path / "o1"), "--no-progress"]) == 1
    assert main(["convert", str(tmp_path / "c"), "-o", str(tmp_path / "o2"), "--no-progress", "--ignore", "M001"]) == 0


def test_info_and_rules(tmp_path, capsys):
    main(["convert", str(SAMPLE), "-o", str(tmp_path / "o"), "--no-progress", "--num-workers", "1"])
    capsys.readouterr()
    assert main(["info", str(tmp_path / "o"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["records_read"] == info["written"] + info["rejected"]
    assert main(["info", str(tmp_path / "o")]) == 0
    assert "sft" in capsys.readouterr().out
    assert main(["info", str(tmp_path / "nothing")]) == 2
    assert main(["rules", "--json"]) == 0
    rules = json.loads(capsys.readouterr().out)
    codes = [r["code"] for r in rules]
    assert codes == sorted(codes) and {"M001", "A002", "F001"} <= set(codes)


def test_lint_table_shows_bracketed_fields_as_text(tmp_path, capsys):
    """A field such as ``[label]`` is printed, not swallowed as rich markup."""
    write_audio(tmp_path / "c/a.wav", seconds=1.0)
    rec = {"messages": [{"role": "user", "content": "<audio>Q"}, {"role": "assistant", "content": "A"}], "audios": ["a.wav"]}
    write_jsonl(tmp_path / "c/c.jsonl", [{**rec, "label": "no"}])
    assert main(["lint", str(tmp_path / "c"), "--no-progress", "--no-audio"]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "[label]" in out and "P002" in out


# --------------------------------------------------------------------------- start fast


def imported_by(argv: list[str]) -> set[str]:
    """The top-level packages ``audiodata ARGV`` imports, run in a fresh interpreter from this checkout."""
    code = (
        "import sys, io, contextlib\n"
        "from audiodata.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        f"        main({argv!r})\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return set(run.stdout.split())


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["convert", "--help"], ["rules", "--json"]])
def test_help_version_and_rules_load_nothing_heavy(argv: list[str]) -> None:
    """``datasets`` and pandas cost ~1.5 s: the commands that only print must not load them (nor pyarrow or torch)."""
    loaded = imported_by(argv)
    assert "audiodata" in loaded
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
    if argv != ["--help"]:
        assert "trainer" not in loaded  # the trainer's commands load only when named (or listed by --help)


def test_help_lists_the_trainer_commands_it_gets_through_the_entry_point_group(capsys) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    listed = capsys.readouterr().out
    for name in ("convert", "lint", "dedup", "publish", "verify", "export", "info", "rules", "train", "make-tiny-model"):
        assert f"    {name}" in listed


def test_the_base_package_never_imports_the_trainer() -> None:
    """The trainer is an edge: it plugs into the command line through ``audiodata.commands``, never the other way."""
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "audiodata").rglob("*.py")
        if any(line.lstrip().startswith(("import trainer", "from trainer")) for line in p.read_text().splitlines())
    ]
    assert offenders == []
    declared = cli_main._source_entry_points()
    assert declared == {"train": "trainer.cli:register_train", "make-tiny-model": "trainer.cli:register_tiny_model"}


def hello_register(subparsers) -> None:  # a third-party command, as a plugin package would declare it
    p = subparsers.add_parser("hello", help="say hello")
    p.add_argument("--name", default="world")
    p.set_defaults(func=lambda args: print(f"hello {args.name}") or 0)


def broken_register(subparsers) -> None:
    raise AssertionError("never called: its module does not import")


def test_a_plugin_command_registers_and_runs_and_a_broken_one_is_named(monkeypatch, capsys) -> None:
    found = [
        EntryPoint("hello", f"{__name__}:hello_register", cli_main.ENTRY_POINT_GROUP),
        EntryPoint("broken", "no_such_module_anywhere:register", cli_main.ENTRY_POINT_GROUP),
    ]
    monkeypatch.setattr(cli_main, "_entry_points", lambda: found)
    assert main(["hello", "--name", "you"]) == 0
    assert capsys.readouterr().out == "hello you\n"
    with pytest.raises(SystemExit):
        main(["--help"])
    out, err = capsys.readouterr()
    assert "hello" in out and "say hello" in out
    assert "the 'broken' command (no_such_module_anywhere:register) could not be loaded" in err
    assert main(["rules", "--json"]) == 0  # built-ins never depend on a plugin loading
