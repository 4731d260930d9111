"""The README runs as written: every ```bash / ```sh block of README.md, in order, on sample_data/ (and examples/).

A block preceded by ``<!-- no-test: REASON -->`` (a GPU, the network, the Hub, a package install) is not run,
but every ``audiodata`` command in it must still parse, with no deprecated spelling, and the files it names
(``--config``) must exist. ``<!-- test-with: hub-mock ... -->`` runs a block against a local mock of the Hub
(tests/hub_mock.py) through ``HF_ENDPOINT``. A line's comment ``exit N`` names a code it may end with besides 0
(the sample corpus holds 10 broken records: convert and lint end with 1 on it).
"""

from __future__ import annotations

import glob
import itertools
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, fields
from pathlib import Path

import pytest
import yaml

from audiodata.cli.main import build_parser
from tests.hub_mock import hub
from trainer.config import TrainConfig

__all__ = ["hub"]  # the fixture, imported for pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MARK = re.compile(r"<!--\s*(no-test|test-with):\s*(.*?)\s*-->")
FENCE = re.compile(r"```(bash|sh)\s*$")


@dataclass
class Command:
    line: int  # in README.md, 1-based
    text: str  # the command, continuation lines joined, without its comment
    allowed: frozenset[int]  # exit codes it may end with


@dataclass
class Block:
    line: int  # of the opening fence
    commands: list[Command]
    skip: str | None = None  # why it is not run
    env: str | None = None  # "hub-mock"


def split_comment(line: str) -> tuple[str, str]:
    """``command # comment`` -> (command, comment); a ``#`` inside quotes or a word is not a comment."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1 :].strip()
    return line.rstrip(), ""


def readme_blocks() -> list[Block]:
    lines = README.read_text(encoding="utf-8").splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        if not FENCE.match(lines[i]):
            i += 1
            continue
        start = i
        before = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        mark = MARK.fullmatch(before.strip())
        block = Block(start + 1, [])
        if mark:
            kind, reason = mark.groups()
            assert reason, f"README.md:{start}: a {kind} mark says why"
            if kind == "no-test":
                block.skip = reason
            else:
                block.env = reason.split()[0]
        i += 1
        pending: list[str] = []
        first = 0
        comments: list[str] = []
        while not lines[i].startswith("```"):
            code, comment = split_comment(lines[i])
            if code.strip() or pending:
                first = first or i + 1
                comments.append(comment)
                if code.endswith("\\"):
                    pending.append(code[:-1].strip())
                else:
                    text = " ".join([*pending, code.strip()])
                    codes = {int(n) for c in comments for n in re.findall(r"\bexit (\d+)\b", c)}
                    block.commands.append(Command(first, text, frozenset({0, *codes})))
                    pending, first, comments = [], 0, []
            i += 1
        out.append(block)
        i += 1
    return out


def audiodata_argv(command: str) -> list[str] | None:
    """The arguments after ``audiodata`` (or after ``-m trainer``: the same commands) of one shell command line."""
    words = shlex.split(command)
    if words and words[0] == "audiodata":
        return words[1:]
    if "-m" in words and words[words.index("-m") + 1 : words.index("-m") + 2] == ["trainer"]:
        return words[words.index("-m") + 2 :]
    return None


# --------------------------------------------------------------------------- fast: the README's shape


def test_every_block_is_run_or_says_why_not() -> None:
    blocks = readme_blocks()
    assert len(blocks) >= 8
    run = [b for b in blocks if b.skip is None]
    assert len(run) >= 6 and all(b.commands for b in blocks)
    assert all(b.env in (None, "hub-mock") for b in blocks)
    for b in run:  # a block that runs uses audiodata only (no installs, no GPU launchers)
        for c in b.commands:
            assert audiodata_argv(c.text) is not None, f"README.md:{c.line}: {c.text}"


def test_every_command_parses_with_today_s_flags(capsys) -> None:
    """Run or not, each command's flags exist and none is a deprecated spelling."""
    seen = 0
    for b in readme_blocks():
        for c in b.commands:
            for part in re.split(r"\s*(?:&&|\|\|)\s*", c.text):  # `a && b`, and `convert ... || [ $? -eq 1 ]`
                argv = audiodata_argv(part)
                if argv is None:
                    continue
                try:
                    build_parser(argv).parse_args(argv)
                except SystemExit as exc:
                    pytest.fail(f"README.md:{c.line}: {part}: does not parse ({exc.code}): {capsys.readouterr().err}")
                err = capsys.readouterr().err
                assert "deprecated" not in err, f"README.md:{c.line}: {part}: {err}"
                seen += 1
    assert seen >= 30


def test_the_files_the_commands_name_exist() -> None:
    """``--config`` files (run or not) are shipped and hold TrainConfig fields; inputs under sample_data/ and
    examples/ exist."""
    keys = {f.name for f in fields(TrainConfig)}
    configs = 0
    for b in readme_blocks():
        for c in b.commands:
            words = shlex.split(c.text)
            for flag, value in itertools.pairwise(words):
                if flag == "--config":
                    path = ROOT / value
                    assert path.is_file(), f"README.md:{c.line}: --config {value} does not exist"
                    assert set(yaml.safe_load(path.read_text())) <= keys, value
                    configs += 1
            for word in words:
                if word.startswith(("sample_data/", "examples/")):
                    assert glob.glob(str(ROOT / word)), f"README.md:{c.line}: {word} matches nothing"
    assert configs >= 4


# --------------------------------------------------------------------------- slow: run it


def shim(bin_dir: Path) -> dict[str, str]:
    """An environment whose ``audiodata`` is this checkout's, run by this venv's Python."""
    bin_dir.mkdir()
    exe = bin_dir / "audiodata"
    exe.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m audiodata "$@"\n')
    exe.chmod(0o755)
    path = os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return {**os.environ, "PATH": path, "PYTHONPATH": str(ROOT), "COLUMNS": "120"}


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")
def test_the_readme_runs_as_written(tmp_path: Path, hub) -> None:
    work = tmp_path / "repo"
    work.mkdir()
    shutil.copytree(ROOT / "sample_data", work / "sample_data")
    shutil.copytree(ROOT / "trainer" / "configs", work / "trainer" / "configs")  # the example configs commands name
    shutil.copytree(ROOT / "examples", work / "examples")  # the example manifest and templates
    env = shim(tmp_path / "bin")
    ran = 0
    for b in readme_blocks():
        if b.skip is not None:
            continue
        block_env = {k: v for k, v in env.items() if k != "HF_HUB_OFFLINE"}
        if b.env == "hub-mock":  # the mock is the only Hub a block reaches
            block_env["HF_TOKEN"] = hub.token or ""
        else:  # a block that would reach the real Hub fails here instead of downloading
            block_env["HF_HUB_OFFLINE"] = "1"
        for c in b.commands:
            done = subprocess.run(["bash", "-c", c.text], cwd=work, env=block_env, capture_output=True, text=True, timeout=900)
            assert done.returncode in c.allowed, (
                f"README.md:{c.line}: `{c.text}` exited {done.returncode} (allowed {sorted(c.allowed)})\n"
                f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
            ran += 1
    assert ran >= 25
    # what the blocks claim, checked on what they left behind
    assert (work / "out/ds/manifest.json").is_file() and (work / "out/lint.html").is_file()
    assert (work / "out/lf_alpaca/dataset_info.json").is_file() and (work / "out/merged").is_dir()
    assert hub.exists("me/my-audio-sft")
