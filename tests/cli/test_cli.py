"""The command line: exit codes CI pipelines gate on, JSON summary, info, rules; commands as a package (plugins
through the entry-point group), and a start that loads nothing heavy."""

from __future__ import annotations

import importlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import types
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from audiodata.cli import main as cli_main
from audiodata.cli.main import main
from tests.conftest import SAMPLE, tree_bytes, write_audio, write_jsonl
from tests.hub_mock import hub

__all__ = ["hub"]  # the fixture, imported for pytest

ROOT = Path(__file__).resolve().parents[2]
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


def test_the_public_names_resolve_whatever_was_imported_first() -> None:
    """``audiodata.dedup`` is a function and a subpackage's name: importing the subpackage must not shadow it."""
    code = (
        "import audiodata.dedup.index, audiodata.pipeline.dedup, audiodata\n"
        "import sys\n"
        "assert callable(audiodata.dedup), audiodata.dedup\n"
        "assert all(getattr(audiodata, n) is not None for n in audiodata.__all__)\n"
        "assert callable(audiodata.convert) and callable(audiodata.lint)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True)


def test_help_lists_the_trainer_commands_it_gets_through_the_entry_point_group(capsys) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    listed = capsys.readouterr().out
    for name in ("convert", "lint", "dedup", "publish", "verify", "export", "info", "rules", "train", "make-tiny-model", "cache"):
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
    assert declared == {
        "train": "trainer.cli:register_train",
        "make-tiny-model": "trainer.cli:register_tiny_model",
        "cache": "trainer.cli:register_cache",
    }


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


# --------------------------------------------------------------------------- progress on all long work


@pytest.fixture
def terminal(monkeypatch):
    """stderr taken for a terminal (rich draws bars only there), 120 columns. rich reads the environment object
    it saw at import, and ``datasets``' ``map(num_proc=...)`` replaces ``os.environ`` with a copy: point rich at
    today's, or a test that ran such a map first leaves this one without its terminal."""
    from rich.console import Console

    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.setattr(Console, "_environ", os.environ)


BAR_LABELS = ("converting", "linting", "dedup ", "verifying", "exporting", "publishing")


def test_bad_input_is_said_before_any_bar_is_drawn(sample_out, tmp_path: Path, terminal, capsys) -> None:
    out, _ = sample_out
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    bad = {
        "convert": ["convert", str(tmp_path / "missing.jsonl"), "-o", str(tmp_path / "o")],
        "lint": ["lint", str(tmp_path / "missing.jsonl")],
        "dedup": ["dedup", str(tmp_path / "missing.jsonl")],
        "verify": ["verify", str(tmp_path)],
        "export": ["export", str(out), "--to", "ms-swift", "-o", str(taken)],
        "publish": ["publish", str(tmp_path), "me/x", "--dry-run"],
        "info": ["info", str(tmp_path)],
    }
    for name, argv in bad.items():
        assert main(argv) == 2, name
        err = capsys.readouterr().err
        assert "error:" in err, name
        assert not any(label in err for label in BAR_LABELS), (name, err)
    # the control: on good input the same terminal gets a bar, with its rate
    assert main(["verify", str(out), "--no-audio"]) == 0
    err = capsys.readouterr().err
    assert "verifying" in err and "rows/s" in err and "2/2 shards" in err


def test_export_into_a_non_empty_folder_says_so_and_offers_the_command_with_overwrite(sample_out, tmp_path: Path, capsys):
    out, _ = sample_out
    dest = tmp_path / "my export"
    argv = ["export", str(out), "--to", "ms-swift", "-o", str(dest), "--no-progress"]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"{dest} is not empty" in err
    offered = err.strip().splitlines()[-1]
    assert offered == shlex.join(["audiodata", *argv, "--overwrite"])
    assert main(shlex.split(offered)[1:]) == 0


def test_verify_in_parallel_gives_the_serial_report(sample_out, tmp_path: Path) -> None:
    """Problems in both shards (a flipped byte, a row count), a missing card: the same report, in the same order."""
    from audiodata.verify import verify

    out = tmp_path / "out"
    shutil.copytree(sample_out[0], out)
    manifest = json.loads((out / "manifest.json").read_text())
    for n, shard in enumerate(manifest["shards"]):
        path = out / shard["file"]
        data = bytearray(path.read_bytes())
        data[len(data) // 3] ^= 0xFF
        path.write_bytes(bytes(data))
        shard["rows"] += n + 1
    (out / "manifest.json").write_text(json.dumps(manifest))
    (out / "README.md").unlink()
    ticks: dict[int, list[tuple[int, int, int]]] = {1: [], 2: []}
    serial = verify(out, on_progress=lambda *a: ticks[1].append(a), num_workers=1)
    parallel = verify(out, on_progress=lambda *a: ticks[2].append(a), num_workers=2)
    assert serial.to_dict() == parallel.to_dict()
    assert len(serial.by_code()) >= 3 and serial.shards_checked == 2
    assert ticks[1][-1] == ticks[2][-1] == (2, 2, serial.rows_checked)
    assert [t for t in ticks[1] if t[0] == 2] == [ticks[1][-1]]  # serial also ticks within a shard
    assert main(["verify", str(out), "--num-workers", "2", "--json", "--no-progress"]) == 1
    with pytest.raises(SystemExit):
        main(["verify", str(out), "--num-workers", "x"])


@pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")  # huggingface_hub's, as in test_publish_hub
def test_export_and_publish_report_their_progress(sample_out, tmp_path: Path, hub) -> None:
    from audiodata.export import export
    from audiodata.publish import publish

    out, _ = sample_out
    rows = sum(s["rows"] for s in json.loads((out / "manifest.json").read_text())["shards"])
    ticks: list[tuple[int, int]] = []
    export(out, "ms-swift", tmp_path / "swift", on_progress=lambda *a: ticks.append(a))
    assert ticks == [(n, rows) for n in range(1, rows + 1)]
    seen: list[tuple[str, int, int]] = []
    publish(out, "someone/x", token="hf_mock", endpoint=hub.url, max_commit_bytes=1, on_progress=lambda *a: seen.append(a))
    dry: list[tuple[str, int, int]] = []
    publish(out, "someone/x", dry_run=True, on_progress=lambda *a: dry.append(a))  # a dry run shows its checking
    assert dry and {p for p, _, _ in dry} == {"checking"}
    assert [p for p, _, _ in seen] == sorted(p for p, _, _ in seen)  # checking, hashing, then uploading
    checked = [(d, t) for p, d, t in seen if p == "checking"]
    shards = json.loads((out / "manifest.json").read_text())["shards"]
    shard_bytes = sum(s["bytes"] for s in shards)
    assert len(checked) == len(shards) and checked[-1] == (shard_bytes, shard_bytes)
    assert [d for d, _ in checked] == sorted(d for d, _ in checked)
    total = next(t for p, _, t in seen if p == "hashing")
    assert seen[-1] == ("uploading", total, total) and ("hashing", total, total) in seen
    assert [d for p, d, _ in seen if p == "uploading"] == sorted(d for p, d, _ in seen if p == "uploading")


# --------------------------------------------------------------------------- Ctrl-C never costs a run


def test_ctrl_c_in_an_overwrite_prints_the_command_that_resumes_and_it_does(tmp_path: Path, monkeypatch, capsys) -> None:
    """``convert ... --overwrite`` into a new folder, interrupted once shards are written: the same command would wipe
    them; the printed one (without --overwrite, shell-quoted) resumes and ends byte-identical to an uninterrupted run."""
    import audiodata.pipeline.convert as pipeline

    corpus = tmp_path / "my corpus"
    for i in range(12):
        write_audio(corpus / f"a{i}.wav", seconds=0.5, rate=16000, freq=200 + 60 * i)
    write_jsonl(corpus / "data.jsonl", [{"audio": f"a{i}.wav", "text": f"clip {i}"} for i in range(12)])
    common = ["--max-shard-size", "64KiB", "--num-workers", "1", "--no-progress"]
    assert main(["convert", str(corpus), "-o", str(tmp_path / "clean"), *common]) == 0
    out = tmp_path / "run out"
    argv = ["convert", str(corpus), "-o", str(out), *common, "--overwrite"]
    real = pipeline.convert

    def interrupted(*args, on_progress=None, **kw):
        def tick(p) -> None:
            if p.records >= 8:
                raise KeyboardInterrupt
            on_progress(p)

        return real(*args, on_progress=tick, **kw)

    monkeypatch.setattr(pipeline, "convert", interrupted)
    capsys.readouterr()
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert "to resume, run it without --overwrite (with it, it would start over)" in " ".join(err.split())
    command = err.strip().splitlines()[-1]
    assert command == shlex.join(["audiodata", *[a for a in argv if a != "--overwrite"]])
    assert list((out / ".audiodata").rglob("shard-*.parquet"))  # finished shards are there to resume from
    monkeypatch.setattr(pipeline, "convert", real)
    assert main([*shlex.split(command)[1:], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["resumed_from"] > 0
    assert tree_bytes(out) == tree_bytes(tmp_path / "clean")


def test_ctrl_c_in_export_and_publish_names_the_same_command(sample_out, tmp_path: Path, monkeypatch, capsys) -> None:
    out, _ = sample_out

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    for target, argv in (
        ("audiodata.export.export", ["export", str(out), "--to", "minicpm", "-o", str(tmp_path / "e x")]),
        ("audiodata.publish.publish", ["publish", str(out), "me/x"]),
    ):
        module, name = target.rsplit(".", 1)  # by module object: audiodata.export is also the function
        monkeypatch.setattr(importlib.import_module(module), name, stop)
        assert main(argv) == 130
        err = capsys.readouterr().err.strip().splitlines()
        assert "run the same command again" in err[0] and err[-1] == shlex.join(["audiodata", *argv])
    monkeypatch.setattr("audiodata.pipeline.lint.lint", stop)
    assert main(["lint", str(SAMPLE)]) == 130
    assert capsys.readouterr().err.strip() == "interrupted"  # nothing to resume: nothing was written


def test_ctrl_c_in_training_names_the_command_that_continues_from_the_newest_checkpoint(
    sample_out, tmp_path: Path, monkeypatch, capsys
) -> None:
    run = tmp_path / "run"
    argv = ["train", "sft", "--model", "m", "--data", str(sample_out[0]), "-o", str(run)]

    def stopped(cfg):
        (run / "checkpoint-5").mkdir(parents=True, exist_ok=True)
        raise KeyboardInterrupt

    # a stand-in for trainer.train (whose import loads torch): the run saves a checkpoint, then Ctrl-C
    monkeypatch.setitem(sys.modules, "trainer.train", types.SimpleNamespace(train=stopped))
    assert main(argv) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert f"checkpoints in {run} are kept" in err[0] and err[-1] == shlex.join(["audiodata", *argv, "--resume", "latest"])
    assert main([*argv, "--resume", "latest"]) == 130  # already resuming: the same command again
    assert capsys.readouterr().err.strip().splitlines()[-1] == shlex.join(["audiodata", *argv, "--resume", "latest"])


def test_an_installed_distribution_s_entry_point_adds_its_command(tmp_path: Path) -> None:
    """Through importlib.metadata, as pip installs a plugin: a dist-info with entry_points.txt on the path."""
    info = tmp_path / "audiodata_hello-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: audiodata-hello\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[audiodata.commands]\nhello = hello_plugin:register\n")
    (tmp_path / "hello_plugin.py").write_text(
        "def register(subparsers):\n"
        "    p = subparsers.add_parser('hello', help='say hello')\n"
        "    p.set_defaults(func=lambda args: print('hello from a plugin') or 0)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)])}
    run = subprocess.run([sys.executable, "-m", "audiodata", "hello"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert (run.returncode, run.stdout) == (0, "hello from a plugin\n"), run.stderr
    listed = subprocess.run([sys.executable, "-m", "audiodata", "--help"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert "say hello" in listed.stdout and "make-tiny-model" in listed.stdout
