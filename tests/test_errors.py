"""One exception hierarchy (audiodata/errors.py): every error audiodata means to raise says its exit code;
anything else escaping a command is a bug, said as one, with its own exit code, never "usage error"."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from audiodata.cli.main import main
from audiodata.dataset import DatasetError
from audiodata.errors import (
    EXIT_FAULT,
    EXIT_INTERNAL,
    EXIT_USAGE,
    ISSUES_URL,
    AudiodataError,
    DatasetFormatError,
    InputDataError,
    OutputError,
    UsageError,
    exit_code_of,
)
from audiodata.export import ExportError
from audiodata.faults import MachineFault
from audiodata.lock import OutputBusy
from audiodata.pipeline.options import OptionsError
from audiodata.publish import PublishError
from audiodata.readers.sources import InputError
from audiodata.verify import VerifyError
from trainer.config import ConfigError

REPO = Path(__file__).resolve().parents[1]

OLD_NAMES = [  # the per-module classes of earlier releases: each is now the hierarchy's kind of error it is
    (OptionsError, UsageError, EXIT_USAGE),
    (ConfigError, UsageError, EXIT_USAGE),
    (ExportError, UsageError, EXIT_USAGE),
    (InputError, InputDataError, EXIT_USAGE),
    (OutputBusy, OutputError, EXIT_USAGE),
    (DatasetError, DatasetFormatError, EXIT_USAGE),
    (VerifyError, DatasetFormatError, EXIT_USAGE),
    (PublishError, DatasetFormatError, EXIT_USAGE),
]


@pytest.mark.parametrize(("old", "kind", "code"), OLD_NAMES, ids=[o.__name__ for o, _, _ in OLD_NAMES])
def test_old_names_are_kinds_of_audiodata_error_with_their_exit_code(old: type, kind: type, code: int):
    assert issubclass(old, kind) and issubclass(old, AudiodataError)
    assert exit_code_of(old("x")) == code
    assert issubclass(old, ValueError)  # callers' `except ValueError` still catches what it caught


def test_machine_faults_stay_exit_3():
    fault = MachineFault("write", "out/x", OSError(28, "No space left on device"))
    assert isinstance(fault, AudiodataError) and exit_code_of(fault) == EXIT_FAULT
    assert exit_code_of(OSError(5, "Input/output error")) == EXIT_FAULT  # a bare one that escapes: the machine's


@pytest.mark.parametrize("exc", [ValueError("boom"), KeyError("k"), TypeError("t"), RuntimeError("r"), AssertionError()])
def test_anything_else_is_a_bug(exc: BaseException):
    assert exit_code_of(exc) == EXIT_INTERNAL != EXIT_USAGE


def test_an_unexpected_exception_is_reported_as_a_bug_not_a_usage_error(monkeypatch, capsys, tmp_path: Path):
    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("invalid literal for int() with base 10: 'x'")  # what a bug in our code looks like

    monkeypatch.setattr("audiodata.pipeline.lint.lint", broken)
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("{}\n")
    code = main(["lint", str(corpus), "--no-progress"])
    err = capsys.readouterr().err
    assert code == EXIT_INTERNAL == 70  # before: exit 2, "error: invalid literal ..." as if the user erred
    assert "Traceback (most recent call last)" in err and "in broken" in err  # where it happened, for the report
    last = err.strip().splitlines()[-1]
    assert last == (
        "internal error: ValueError: invalid literal for int() with base 10: 'x' — this is a bug in audiodata, "
        f"please report it at {ISSUES_URL} with the command and this traceback"
    )


def test_an_audiodata_error_is_one_line_and_its_exit_code(monkeypatch, capsys, tmp_path: Path):
    class Refused(OutputError):
        exit_code = 2

    def refuse(*args: object, **kwargs: object) -> None:
        raise Refused("out/ds holds [something] else; choose another folder")

    monkeypatch.setattr("audiodata.pipeline.lint.lint", refuse)
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("{}\n")
    assert main(["lint", str(corpus), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert " ".join(err.split()) == "error: out/ds holds [something] else; choose another folder"  # brackets are text


def test_a_bad_option_value_is_a_usage_error(tmp_path: Path, capsys):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("{}\n")
    code = main(["convert", str(corpus), "-o", str(tmp_path / "o"), "--max-shard-size", "lots", "--no-progress"])
    assert code == EXIT_USAGE and "not a size: 'lots'" in capsys.readouterr().err


def test_a_bug_in_a_subprocess_exits_70_with_the_hint(tmp_path: Path):
    """The real entry point, end to end: an exception our code did not mean to raise."""
    code = (
        "import sys, audiodata.cli.main as m, audiodata.pipeline.lint as lint\n"
        "def boom(*a, **k):\n    raise KeyError('audio_info')\n"
        "lint.lint = boom\n"
        "sys.exit(m.main(sys.argv[1:]))\n"
    )
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("{}\n")
    done = subprocess.run(
        [sys.executable, "-c", code, "lint", str(corpus), "--no-progress"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 70, done.stderr
    assert "internal error: KeyError: 'audio_info' — this is a bug in audiodata" in done.stderr


def test_the_readme_documents_every_exit_code():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("## Exit codes") :]
    documented = {int(m) for m in re.findall(r"^\| (\d+) \|", table, flags=re.M)}
    assert {0, 1, 2, 3, EXIT_INTERNAL} <= documented
    assert "this is a bug in audiodata" in table
