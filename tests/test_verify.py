"""``audiodata verify``: a clean conversion passes; each kind of damage is caught and located."""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from audiodata.cli.main import main
from audiodata.verify import CHECKS, Problem, VerifyError, VerifyReport, verify
from tests.conftest import tone

SFT = "data/sft/train-00000-of-00001.parquet"
DPO = "data/dpo/train-00000-of-00001.parquet"


@pytest.fixture
def out(sample_out: tuple[Path, object], tmp_path: Path) -> Path:
    """A private copy of the session's conversion, safe to damage."""
    dst = tmp_path / "out"
    shutil.copytree(sample_out[0], dst)
    return dst


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def save_manifest(out: Path, m: dict) -> None:
    (out / "manifest.json").write_text(json.dumps(m, indent=2))


def codes(report: VerifyReport) -> set[str]:
    return {p.code for p in report.problems}


def run_cli(argv: list[str]) -> tuple[int, str]:
    """``audiodata ARGV``: the exit code and everything it printed (200 columns wide)."""
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        mp.setenv("COLUMNS", "200")
        code = main(argv)
    return code, printed.getvalue()


def test_clean_conversion_verifies(out: Path) -> None:
    m = manifest(out)
    ticks: list[tuple[int, int, int]] = []
    report = verify(out, on_progress=lambda *a: ticks.append(a))
    assert report.problems == []
    assert report.exit_code == 0
    assert report.shards_checked == len(m["shards"]) == 2
    assert report.rows_checked == m["summary"]["written"] == sum(s["rows"] for s in m["shards"])
    assert report.clips_checked == m["summary"]["clips"] == sum(s["clips"] for s in m["shards"])
    assert ticks[-1] == (2, 2, report.rows_checked)
    d = report.to_dict()
    assert d["exit_code"] == 0 and d["summary"]["problems"] == 0
    json.dumps(d)


def test_no_audio_skips_decoding(out: Path) -> None:
    report = verify(out, audio=False)
    assert report.problems == [] and report.clips_checked == 0 and report.rows_checked == 63


def test_flipped_byte_is_a_checksum_problem(out: Path) -> None:
    path = out / SFT
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    report = verify(out)
    assert report.exit_code == 1
    sha = [p for p in report.problems if p.code == "V004"]
    assert sha and all(p.where == SFT for p in sha)
    assert "sha256" in sha[0].message
    assert all(p.where.startswith(SFT) for p in report.problems if p.code != "V017")


def test_missing_shard(out: Path) -> None:
    (out / DPO).unlink()
    report = verify(out)
    assert [p.where for p in report.problems if p.code == "V002"] == [DPO]
    assert report.shards_checked == 1
    # the card glob data/dpo/train-* now matches nothing
    assert any(p.code == "V014" and "data/dpo/train-*" in p.message for p in report.problems)
    assert verify(out, num_workers=2).to_dict() == report.to_dict()  # split over workers: the same report
    (out / SFT).unlink()
    (out / DPO).write_bytes(b"not parquet")  # the footer unreadable: checked whole, as one process does
    assert verify(out, num_workers=2).to_dict() == verify(out).to_dict()


def test_extra_parquet_file(out: Path) -> None:
    extra = "data/sft/train-00001-of-00001.parquet"
    shutil.copy(out / SFT, out / extra)
    report = verify(out)
    assert any(p.code == "V003" and p.where == extra for p in report.problems)
    assert any(p.code == "V014" and p.where == extra for p in report.problems)  # the card's glob would load it


def _edit_card(out: Path, old: str, new: str) -> None:
    card = out / "README.md"
    text = card.read_text()
    assert old in text
    card.write_text(text.replace(old, new, 1))


def test_card_num_examples_mismatch(out: Path) -> None:
    _edit_card(out, "num_examples: 50", "num_examples: 49")
    report = verify(out)
    assert [(p.code, p.where) for p in report.problems] == [("V015", "README.md")]
    assert "sft" in report.problems[0].message and "49" in report.problems[0].message


def test_card_config_removed(out: Path) -> None:
    _edit_card(out, "- config_name: dpo\n  data_files:\n  - split: train\n    path: data/dpo/train-*\n", "")
    report = verify(out)
    assert any(p.code == "V014" and p.where == DPO for p in report.problems)


def test_card_audio_rate_mismatch(out: Path) -> None:
    _edit_card(out, "sampling_rate: 16000", "sampling_rate: 8000")
    report = verify(out, audio=False)
    assert codes(report) == {"V016"}


def test_missing_card(out: Path) -> None:
    (out / "README.md").unlink()
    assert codes(verify(out, audio=False)) == {"V013"}


def test_manifest_row_count_mismatch(out: Path) -> None:
    m = manifest(out)
    m["shards"][1]["rows"] += 1
    save_manifest(out, m)
    report = verify(out, audio=False)
    assert [(p.code, p.where) for p in report.problems] == [("V006", DPO)]  # the summary still matches the shards
    assert "14" in report.problems[0].message


def test_summary_totals_mismatch(out: Path) -> None:
    m = manifest(out)
    m["summary"]["written"] += 2
    m["summary"]["clips"] -= 1
    save_manifest(out, m)
    report = verify(out, audio=False)
    assert codes(report) == {"V017"}
    assert len(report.problems) == 3  # written, clips, records_read = written + rejected + duplicates


def _swap_clip(out: Path, shard: str, row: int, clip: int, flac: bytes) -> None:
    """Rewrite ``shard`` with one clip's bytes replaced; the manifest's sha256/bytes follow so only audio checks can tell."""
    path = out / shard
    table = pq.read_table(path)
    audios = table.column("audios").to_pylist()
    audios[row][clip]["bytes"] = flac
    idx = table.schema.get_field_index("audios")
    table = table.set_column(idx, table.schema.field(idx), pa.array(audios, type=table.schema.field(idx).type))
    pq.write_table(table, path)
    m = manifest(out)
    data = path.read_bytes()
    for s in m["shards"]:
        if s["file"] == shard:
            s["sha256"], s["bytes"] = hashlib.sha256(data).hexdigest(), len(data)
    save_manifest(out, m)


def test_valid_audio_swap_is_caught_by_audio_checks(out: Path) -> None:
    buf = io.BytesIO()
    sf.write(buf, tone(1.0, 8000, 330.0), 8000, format="FLAC", subtype="PCM_16")
    _swap_clip(out, SFT, 12, 0, buf.getvalue())
    report = verify(out)
    where = f"{SFT} row 12 audios[0]"
    found = {p.code for p in report.problems if p.where == where}
    assert {"V009", "V012"} <= found
    assert all(p.where == where for p in report.problems)
    assert "8000" in next(p.message for p in report.problems if p.code == "V009")
    # without decoding, the swap passes: only the audio checks can see it
    assert verify(out, audio=False).problems == []


def test_same_rate_swap_is_caught_by_pcm_hash(out: Path) -> None:
    m_info = pq.read_table(out / SFT, columns=["audio_info"]).column("audio_info").to_pylist()[3][0]
    n = m_info["num_samples"]
    buf = io.BytesIO()
    sf.write(buf, tone(n / 16000, 16000, 1234.0)[:n], 16000, format="FLAC", subtype="PCM_16")
    _swap_clip(out, SFT, 3, 0, buf.getvalue())
    report = verify(out)
    assert [(p.code, p.where) for p in report.problems] == [("V012", f"{SFT} row 3 audios[0]")]


def test_undecodable_audio(out: Path) -> None:
    _swap_clip(out, DPO, 0, 0, b"not audio at all")
    report = verify(out)
    assert [(p.code, p.where) for p in report.problems] == [("V008", f"{DPO} row 0 audios[0]")]


def test_missing_manifest_raises(out: Path) -> None:
    (out / "manifest.json").unlink()
    with pytest.raises(VerifyError, match="manifest"):
        verify(out)


def test_unreadable_manifest_raises(out: Path) -> None:
    (out / "manifest.json").write_text("{not json")
    with pytest.raises(VerifyError):
        verify(out)
    assert issubclass(VerifyError, ValueError)


def test_cli_exit_codes(out: Path, tmp_path: Path) -> None:
    code, text = run_cli(["verify", str(out)])
    assert code == 0 and "shards checked" in text

    code, text = run_cli(["verify", str(out), "--json", "--no-progress"])
    assert code == 0
    assert json.loads(text)["summary"]["rows_checked"] == 63

    _edit_card(out, "num_examples: 13", "num_examples: 12")
    code, text = run_cli(["verify", str(out), "--no-audio"])
    assert code == 1 and "V015" in text

    empty = tmp_path / "empty"
    empty.mkdir()
    code, text = run_cli(["verify", str(empty)])
    assert code == 2 and "manifest.json" in text


def test_check_codes_are_stable() -> None:
    assert list(CHECKS) == [f"V{i:03d}" for i in range(1, 20)]


# -- every verify code fires on its damage and stays quiet on a near miss --------------------------------


def _stored_clip(out: Path, shard: str, row: int) -> tuple[bytes, dict]:
    table = pq.read_table(out / shard, columns=["audios", "audio_info"])
    return table.column("audios").to_pylist()[row][0]["bytes"], table.column("audio_info").to_pylist()[row][0]


def _clip_as(
    out: Path, shard: str, row: int, fmt: str = "WAV", channels: int = 1, rate: int | None = None, cut: int = 0
) -> bytes:
    """The stored clip of ``row`` re-encoded (``WAV``: the same PCM in another container), or changed."""
    data, sr = sf.read(io.BytesIO(_stored_clip(out, shard, row)[0]), dtype="int16")
    if cut:
        data = data[:-cut]
    if channels == 2:
        data = np.stack([data, data], axis=1)
    buf = io.BytesIO()
    sf.write(buf, data, rate or sr, format=fmt, subtype="PCM_16")
    return buf.getvalue()


def _rewrite(out: Path, shard: str, edit: Any = None, row_group_size: int | None = None) -> None:
    """Rewrite a shard (``edit`` maps the table), keeping the manifest's size and sha256 in step."""
    path = out / shard
    table = pq.read_table(path)
    table = edit(table) if edit else table
    pq.write_table(table, path, row_group_size=row_group_size)
    m = manifest(out)
    data = path.read_bytes()
    for s in m["shards"]:
        if s["file"] == shard:
            s["sha256"], s["bytes"] = hashlib.sha256(data).hexdigest(), len(data)
    save_manifest(out, m)


def _drop_audio_info(table: pa.Table) -> pa.Table:
    idx = table.schema.get_field_index("audio_info")
    infos = table.column("audio_info").to_pylist()
    infos[0] = []
    return table.set_column(idx, table.schema.field(idx), pa.array(infos, type=table.schema.field(idx).type))


def _edit_manifest(key: str, delta: int, also: str | None = None) -> Any:
    def edit(out: Path) -> None:
        m = manifest(out)
        m["summary"][key] += delta
        if also:
            m["summary"][also] += delta
        save_manifest(out, m)

    return edit


def _shard_rows(delta: int) -> Any:
    def edit(out: Path) -> None:
        m = manifest(out)
        m["shards"][1]["rows"] += delta
        save_manifest(out, m)

    return edit


def _reformat_manifest(out: Path) -> None:
    save_manifest(out, dict(reversed(list(manifest(out).items()))))  # other key order and indent: the same manifest


SAME_LAYOUT = lambda out: _rewrite(out, SFT, row_group_size=5)  # noqa: E731  (same rows, other row groups)
AS_WAV = lambda out: _swap_clip(out, SFT, 3, 0, _clip_as(out, SFT, 3))  # noqa: E731  (same PCM, another container)

# code -> (damage, near miss that must not fire it, decode audio?)
VERIFY_CASES: dict[str, tuple[Any, Any, bool]] = {
    "V001": (lambda out: (out / "manifest.json").unlink(), _reformat_manifest, False),
    "V002": (lambda out: (out / DPO).unlink(), lambda out: (out / "rejects.jsonl").unlink(), False),
    "V003": (
        lambda out: shutil.copy(out / SFT, out / "data/sft/train-00001-of-00001.parquet"),
        lambda out: (out / "data/sft/notes.txt").write_text("not a shard"),
        False,
    ),
    "V004": (
        lambda out: (out / SFT).write_bytes((out / SFT).read_bytes()[:-1] + b"\0"),
        lambda out: os.utime(out / SFT, (0, 0)),
        False,
    ),
    "V005": (lambda out: (out / SFT).write_bytes((out / SFT).read_bytes()[:4000]), SAME_LAYOUT, False),
    "V006": (_shard_rows(+1), SAME_LAYOUT, False),
    "V007": (lambda out: _rewrite(out, SFT, _drop_audio_info), SAME_LAYOUT, True),
    "V008": (lambda out: _swap_clip(out, SFT, 3, 0, b"not audio at all"), AS_WAV, True),
    "V009": (lambda out: _swap_clip(out, SFT, 3, 0, _clip_as(out, SFT, 3, rate=8000)), AS_WAV, True),
    "V010": (lambda out: _swap_clip(out, SFT, 3, 0, _clip_as(out, SFT, 3, channels=2)), AS_WAV, True),
    "V011": (lambda out: _swap_clip(out, SFT, 3, 0, _clip_as(out, SFT, 3, "FLAC", cut=160)), AS_WAV, True),
    "V012": (lambda out: _other_tone(out), AS_WAV, True),
    "V013": (
        lambda out: (out / "README.md").unlink(),
        lambda out: (out / "README.md").write_text((out / "README.md").read_text() + "\nA note added below the card.\n"),
        False,
    ),
    "V014": (
        lambda out: _edit_card(out, "- config_name: dpo\n  data_files:\n  - split: train\n    path: data/dpo/train-*\n", ""),
        lambda out: _edit_card(out, "path: data/dpo/train-*", f"path: {DPO}"),  # the exact file: still matched once
        False,
    ),
    "V015": (
        lambda out: _edit_card(out, "num_examples: 50", "num_examples: 49"),
        lambda out: _edit_card(out, "num_examples: 50", 'num_examples: !!int "50"'),  # the same number, spelled otherwise
        False,
    ),
    "V016": (
        lambda out: _edit_card(out, "sampling_rate: 16000", "sampling_rate: 8000"),
        lambda out: _edit_card(out, "sampling_rate: 16000", 'sampling_rate: !!int "16000"'),
        False,
    ),
    "V017": (_edit_manifest("written", +2), _edit_manifest("rejected", +1, also="records_read"), False),
    # --decoders (verify_codes decodes through soundfile whenever it decodes): other PCM, and a clip that fails
    "V018": (lambda out: _other_tone(out), AS_WAV, True),
    "V019": (lambda out: _swap_clip(out, SFT, 3, 0, b"not audio at all"), AS_WAV, True),
}


def _other_tone(out: Path) -> None:
    """V012's damage: another tone of the same rate and length (only the PCM hash can tell)."""
    n = _stored_clip(out, SFT, 3)[1]["num_samples"]
    buf = io.BytesIO()
    sf.write(buf, tone(n / 16000, 16000, 1234.0)[:n], 16000, format="FLAC", subtype="PCM_16")
    _swap_clip(out, SFT, 3, 0, buf.getvalue())


def verify_codes(out: Path, audio: bool) -> set[str]:
    try:
        return codes(verify(out, audio=audio, decoders=["soundfile"] if audio else None))
    except VerifyError as exc:  # V001 stops verify: there is nothing to compare against
        return {str(exc).split()[0]}


def test_every_verify_code_has_a_case() -> None:
    from audiodata.rules.registry import REGISTRY

    assert set(VERIFY_CASES) == set(CHECKS) == {c for c in REGISTRY if c.startswith("V")}
    assert all(REGISTRY[c].stage == "output" and REGISTRY[c].doc is not None for c in CHECKS)


@pytest.mark.parametrize("code", sorted(VERIFY_CASES))
def test_verify_code_fires(code: str, out: Path) -> None:
    damage, _, audio = VERIFY_CASES[code]
    damage(out)
    assert code in verify_codes(out, audio)


@pytest.mark.parametrize("code", sorted(VERIFY_CASES))
def test_verify_code_stays_quiet_on_a_near_miss(code: str, out: Path) -> None:
    _, near_miss, audio = VERIFY_CASES[code]
    near_miss(out)
    assert verify_codes(out, audio) == set()


def test_problems_carry_registered_codes_only() -> None:
    with pytest.raises(ValueError, match="not registered"):
        Problem("V999", "x", "y")


def _regroup(path: Path, rows_per_group: int, info_edit: dict[int, dict[str, Any]] | None = None) -> None:
    """Rewrite a shard in small row groups (its schema metadata kept), optionally changing some rows' audio_info."""
    table = pq.read_table(path)
    if info_edit:
        infos = table.column("audio_info").to_pylist()
        for row, change in info_edit.items():
            infos[row][0].update(change)
        col = table.schema.get_field_index("audio_info")
        table = table.set_column(col, table.schema.field(col), pa.array(infos, table.schema.field(col).type))
    pq.write_table(table, path, row_group_size=rows_per_group)


def _serial_and_parallel(out: Path) -> tuple[VerifyReport, VerifyReport, list[Any], list[Any]]:
    ticks: dict[int, list[Any]] = {1: [], 2: []}
    serial = verify(out, on_progress=lambda *a: ticks[1].append(a), num_workers=1)
    parallel = verify(out, on_progress=lambda *a: ticks[2].append(a), num_workers=2)
    return serial, parallel, ticks[1], ticks[2]


def test_one_shard_is_checked_by_row_group_in_parallel_with_the_serial_report(out: Path, monkeypatch) -> None:
    """A single shard split over the workers (spans of row groups): problems from several spans, in row order."""
    verify_mod = importlib.import_module("audiodata.verify")  # the package re-exports the function by that name

    monkeypatch.setattr(verify_mod, "SPAN_ROWS", 3)
    rows = pq.ParquetFile(out / SFT).metadata.num_rows
    assert verify_mod.span_rows(rows, 2) == 3 and verify_mod.span_rows(1000, 2) == 3  # at most SPAN_ROWS
    assert verify_mod.span_rows(16, 2) == 2 and verify_mod.span_rows(1, 2) == 1  # ~4 jobs a worker
    assert rows >= 12
    _regroup(out / SFT, 2, {1: {"num_samples": 1}, rows - 2: {"pcm_hash": "0" * 32}})
    plan = verify_mod._spans(out / SFT, 3)
    assert plan is not None and len(plan) >= 4 and [first for _, first in plan][:3] == [0, 4, 8]
    window = importlib.import_module("audiodata.pipeline.window")
    real, jobs = window.ordered_map, []

    def counting(fn: Any, work: Any, workers: int, *args: Any, **kwargs: Any) -> Any:
        return real(fn, (jobs.append(ctx) or (ctx, a) for ctx, a in work), workers, *args, **kwargs)

    monkeypatch.setattr(window, "ordered_map", counting)
    serial, parallel, ticks1, ticks2 = _serial_and_parallel(out)
    assert len([ctx for ctx in jobs if ctx[0] == 0]) == 1 + len(plan)  # the checksum, then each span: one job each
    assert serial.to_dict() == parallel.to_dict()
    where = [p.where for p in serial.problems if p.code in ("V011", "V012")]
    assert where == [f"{SFT} row 1 audios[0]", f"{SFT} row {rows - 2} audios[0]"]
    assert ticks1[-1] == ticks2[-1]
    assert len([t for t in ticks2 if t[0] == 0]) >= 4  # ticks within the one shard, span by span


def test_a_read_failure_mid_shard_stops_the_parallel_check_where_the_serial_one_stops(out: Path, monkeypatch) -> None:
    """A damaged page in row group 3: the serial check stops there (V005 at its first row), and so does the
    parallel one, whose later spans' findings are dropped; the shard's counts are then not compared."""
    verify_mod = importlib.import_module("audiodata.verify")  # the package re-exports the function by that name

    monkeypatch.setattr(verify_mod, "SPAN_ROWS", 2)
    rows = pq.ParquetFile(out / SFT).metadata.num_rows
    _regroup(out / SFT, 2, {rows - 1: {"num_samples": 1}})  # a finding after the damage: must not be reported
    meta = pq.ParquetFile(out / SFT).metadata
    data = bytearray((out / SFT).read_bytes())
    group = meta.row_group(3)
    for i in range(group.num_columns):  # every page header of audio_info's leaves in that group
        col = group.column(i)
        if col.path_in_schema.startswith("audio_info"):
            start = col.dictionary_page_offset if col.has_dictionary_page else col.data_page_offset
            data[start : start + 16] = b"\xff" * 16
    (out / SFT).write_bytes(bytes(data))
    serial, parallel, _, _ = _serial_and_parallel(out)
    assert serial.to_dict() == parallel.to_dict()
    failed = [p for p in serial.problems if p.code == "V005"]
    assert [p.where for p in failed] == [f"{SFT} row 6"], serial.problems
    assert not [p for p in serial.problems if p.code == "V011"]
