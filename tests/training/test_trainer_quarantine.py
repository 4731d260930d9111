"""Which record broke step N: grad norm in batches.jsonl, bad micro-batches quarantined and skipped (or the run
stopped), ``lint``/``convert --exclude quarantine.jsonl``, ``audiodata train replay --step N``.

Faults are produced with the test hook ``AUDIODATA_TEST_INJECT_FAULTS`` (trainer/faultinject.py): a record
whose audio features are NaN, one whose gradients are NaN, one whose forward runs out of memory, one the
collator (or the encoder) raises on. Training runs are marked slow (a tiny model, a few steps: 20-60 s on a
shared 2-core machine); the rest runs in the fast suite.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("trl")

import pyarrow.parquet as pq
import torch
from jsonschema import Draft202012Validator

import audiodata
from audiodata.cli.main import main as audiodata_main
from audiodata.exclude import ExcludeError, load_exclude
from audiodata.pipeline.options import OptionsError
from tests.conftest import REPO, SAMPLE, write_jsonl
from trainer.batchlog import BatchLog, read_batch_log
from trainer.config import ConfigError, TrainConfig
from trainer.faultinject import ENV, FaultPlan, from_env
from trainer.quarantine import QUARANTINE, RecordIndex, SafeCollator, SafeRows, read_quarantine
from trainer.tiny import make_tiny_model

FAULTS = ENV


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", family="qwen2-audio"))


# -- --exclude: the library and the CLI ----------------------------------------------------


def corpus(tmp: Path) -> Path:
    """Four SFT records, two with their own id and two named by file stem and index (``talk-000001``...)."""
    clips = [SAMPLE / "audio" / f"clip0{i}_16k.flac" for i in (7, 8, 9)]
    records: list[dict[str, Any]] = []
    for i in range(4):
        rec = {
            "messages": [{"role": "user", "content": "<audio>What is said?"}, {"role": "assistant", "content": f"Words {i}."}],
            "audios": [str(clips[i % 3])],
        }
        if i % 2 == 0:
            rec["id"] = f"own-{i}"
        records.append(rec)
    return write_jsonl(tmp / "talk.jsonl", records)


def test_exclude_lists_name_records_by_their_stable_id(tmp_path: Path):
    q = write_jsonl(tmp_path / "quarantine.jsonl", [{"id": "own-0", "reason": "nan", "step": 3}, ""])
    skipped = write_jsonl(tmp_path / "skipped.jsonl", [{"id": 7, "source": "x.jsonl", "index": 7, "reason": "audio"}])
    rejects = write_jsonl(
        tmp_path / "rejects.jsonl",
        [
            {"source": "data/talk.jsonl", "index": 1, "line": 2, "reasons": [], "record": {"messages": []}},  # no id: stem-index
            {"source": "data/talk.jsonl", "index": 2, "line": 3, "reasons": [], "record": {"id": "own-2"}},
            {"source": "data/talk.jsonl", "index": 5, "line": 6, "reasons": [], "raw": "{not json"},  # names no record
        ],
    )
    found = load_exclude([q, skipped, rejects])
    listed = {"own-0": "quarantine.jsonl", "7": "skipped.jsonl", "talk-000001": "rejects.jsonl", "own-2": "rejects.jsonl"}
    assert found.ids == listed
    assert found.by("talk-000001") == "rejects.jsonl" and found.by("talk-000003") is None
    assert load_exclude([q]).digest() != load_exclude([q, skipped]).digest()
    with pytest.raises(ExcludeError, match="no such file"):
        load_exclude([tmp_path / "missing.jsonl"])
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"id": "a"}, "{torn"])
    with pytest.raises(ExcludeError, match=r"bad.jsonl:2: not a JSON line"):
        load_exclude([bad])
    nameless = write_jsonl(tmp_path / "nameless.jsonl", [{"reason": "x"}])
    with pytest.raises(ExcludeError, match=r"nameless.jsonl:1: names no record"):
        load_exclude([nameless])
    with pytest.raises(OptionsError, match="no such file"):
        audiodata.ConvertOptions(exclude=[str(tmp_path / "missing.jsonl")])


def test_lint_and_convert_leave_out_the_listed_records_and_count_them(tmp_path: Path):
    src = corpus(tmp_path)
    out = tmp_path / "out"
    full = audiodata.convert([str(src)], out, num_workers=1)
    assert full.records_written == 4 and full.records_excluded == 0
    shard = next(out.rglob("*.parquet"))
    ids = [r["id"] for r in pq.read_table(shard).select(["id"]).to_pylist()]
    assert sorted(ids) == ["own-0", "own-2", "talk-000001", "talk-000003"]
    # what the trainer writes names a record by the shards' id: the id lint and convert give it in the source
    q = write_jsonl(tmp_path / "run" / QUARANTINE, [{"id": "talk-000001", "row": 1}, {"id": "own-2", "row": 2}])

    report = audiodata.lint([str(src)], exclude=[str(q)], num_workers=1)
    data = report.to_dict()
    assert data["summary"]["records"] == 2 and data["summary"]["excluded_by"] == {"quarantine.jsonl": 2}
    schema = json.loads((REPO / "schemas" / "lint_report.schema.json").read_text())
    Draft202012Validator(schema).validate(data)
    assert audiodata.lint([str(src)], num_workers=1).to_dict()["summary"]["records"] == 4  # the quiet case

    again = audiodata.convert([str(src)], tmp_path / "out2", exclude=[str(q)], num_workers=1)
    assert again.records_written == 2 and again.records_excluded == 2 and again.records_read == 4
    assert again.excluded_by == {"quarantine.jsonl": 2} and again.exit_code == 0
    lines = [json.loads(x) for x in (tmp_path / "out2" / "rejects.jsonl").read_text().splitlines()]
    assert sorted(e["excluded"]["id"] for e in lines) == ["own-2", "talk-000001"]  # listed, never vanished
    assert all(e["excluded"]["by"] == "quarantine.jsonl" and e["record"] for e in lines)
    manifest = json.loads((tmp_path / "out2" / "manifest.json").read_text())
    assert manifest["summary"]["excluded"] == 2 and manifest["options"]["exclude"] == ["quarantine.jsonl"]
    kept = [r["id"] for r in pq.read_table(next((tmp_path / "out2").rglob("*.parquet"))).select(["id"]).to_pylist()]
    assert sorted(kept) == ["own-0", "talk-000003"]
    assert "exclude" not in json.loads((out / "manifest.json").read_text())["options"]  # runs without it: as before
    # the list is part of the run's identity: the same output with another list is another conversion
    write_jsonl(q, [{"id": "own-0"}])
    with pytest.raises(OptionsError, match="other inputs or options"):
        audiodata.convert([str(src)], tmp_path / "out2", exclude=[str(q)], num_workers=1)


def test_cli_exclude_flag_on_lint_and_convert(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    src = corpus(tmp_path)
    q = write_jsonl(tmp_path / QUARANTINE, [{"id": "own-0"}])
    assert audiodata_main(["lint", str(src), "--no-audio", "--no-progress", "--exclude", str(q), "--num-workers", "1"]) == 0
    assert "excluded by quarantine.jsonl: 1 records" in capsys.readouterr().out
    code = audiodata_main(["convert", str(src), "-o", str(tmp_path / "out"), "--exclude", str(q), "--json", "--num-workers", "1"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["records_excluded"] == 1 and result["excluded_by"] == {"quarantine.jsonl": 1}
    assert audiodata_main(["lint", str(src), "--no-audio", "--exclude", str(tmp_path / "nope.jsonl")]) == 2


# -- the pieces, without training ------------------------------------------------------------------


def test_fault_plan_comes_only_from_its_test_variable(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(FAULTS, raising=False)
    assert from_env() is None
    monkeypatch.setenv(FAULTS, "nan_audio:a,oom:b,nan_audio:b")
    plan = from_env()
    assert plan is not None and plan.has("oom", ["x", "b"]) == "b" and plan.has("nan_audio", ["b"]) == "b"
    assert plan.has("collate_error", ["a", "b"]) is None
    monkeypatch.setenv(FAULTS, "nan:a")
    with pytest.raises(ValueError, match="KIND:RECORD_ID"):
        from_env()
    # nan_grad: the loss keeps its value, the gradients are NaN
    w = torch.nn.Parameter(torch.ones(3))
    loss = FaultPlan({"r": frozenset({"nan_grad"})}).after_forward(["r"], (w * 2).sum(), torch.nn.ParameterList([w]))
    assert loss.item() == 6.0
    loss.backward()
    assert bool(torch.isnan(w.grad).all())
    with pytest.raises(torch.OutOfMemoryError, match="injected for record r"):
        FaultPlan({"r": frozenset({"oom"})}).before_forward(["q", "r"])


def test_batch_log_gives_every_line_of_a_step_its_grad_norm(tmp_path: Path):
    log = BatchLog(str(tmp_path), rank=0)
    log.start(None)
    log.write(1, 0, {"ids": ["a"], "fault": None}, 2.0)
    log.write(1, 0, {"ids": ["b"], "fault": {"kind": "nonfinite_loss"}}, 0.0)
    assert read_batch_log(tmp_path / "batches.jsonl") == []  # the norm is not known before the optimizer step
    log.end_step(1.25)
    log.write(2, 0, {"ids": ["c"], "fault": None}, 3.0)
    log.end_step(float("nan"), {"kind": "nonfinite_grad"})
    log.write(3, 0, {"ids": ["d"], "fault": None}, 1.0)
    log.flush()  # the run ended inside step 3
    lines = read_batch_log(tmp_path / "batches.jsonl")
    assert [(e["step"], e["micro"], e["grad_norm"], e["step_micro_batches"]) for e in lines] == [
        (1, 0, 1.25, 2),
        (1, 1, 1.25, 2),
        (2, 0, None, 1),
        (3, 0, None, 1),
    ]
    assert [e["loss"] for e in lines] == [2.0, None, 3.0, 1.0]  # a skipped micro-batch has no loss
    assert lines[2]["step_fault"] == {"kind": "nonfinite_grad"} and "step_fault" not in lines[0]


@pytest.fixture(scope="module")
def sft_rows(tiny: str, sample_out) -> tuple[Any, Any]:
    from trainer.collators import AudioCollator
    from trainer.data import PlannedRows, SkipLog, encoded, load_rows
    from trainer.families import get_family

    out, _ = sample_out
    fam = get_family("qwen2-audio")
    collator = AudioCollator(fam, fam.load_processor(tiny))
    rows = load_rows(TrainConfig(model=tiny, data=str(out)), "train").select(range(4))
    planned = PlannedRows(encoded(rows, collator.encode_sft, SkipLog(str(out))), [0])
    return rows, planned, collator


def test_safe_rows_and_collator_turn_data_errors_into_a_marker_naming_the_culprit(sft_rows):
    from trainer.data import BATCH_META

    rows, planned, collator = sft_rows
    ids = rows["id"]
    index = RecordIndex(rows)
    plain = SafeCollator(collator, labels=True, quarantined=set())
    batch = plain(SafeRows(planned, index).__getitems__([0, 1]))
    assert batch[BATCH_META]["ids"] == ids[:2] and "fault" not in batch[BATCH_META]
    ref = collator(planned.__getitems__([0, 1]))
    assert torch.equal(batch["input_ids"], ref["input_ids"]) and torch.equal(batch["labels"], ref["labels"])  # unchanged

    plan = FaultPlan({ids[1]: frozenset({"collate_error"}), ids[3]: frozenset({"encode_error"})})
    guarded = SafeCollator(collator, labels=True, quarantined=set(), plan=plan)
    marker = guarded(SafeRows(planned, index, plan).__getitems__([0, 1, 2]))
    fault = marker[BATCH_META]["fault"]
    assert fault["kind"] == "data" and fault["reason"].startswith("the collator raised ValueError")
    assert [c["id"] for c in fault["culprits"]] == [ids[1]] and fault["culprits"][0]["row"] == 1
    assert set(marker) == {BATCH_META, "labels"} and int((marker["labels"] != -100).sum()) == 0
    # an example that does not encode (in the data loader): named with its row; repeats name their row too
    items = SafeRows(planned, index, plan).__getitems__([2, 3, 4])
    assert [i.get("__fault", "").split(":")[0] for i in items] == ["", "encoding it raised RuntimeError", ""]
    marker = guarded(items)
    assert [c["id"] for c in marker[BATCH_META]["fault"]["culprits"]] == [ids[3]]
    # quarantined rows are left out of the micro-batches they come back in; all of them: a marker
    left = SafeCollator(collator, labels=True, quarantined={0})
    batch = left(SafeRows(planned, index).__getitems__([0, 1, 4]))  # key 4 repeats row 0
    assert batch[BATCH_META]["ids"] == [ids[1]] and batch[BATCH_META]["dropped"] == [ids[0], ids[0]]
    assert left(SafeRows(planned, index).__getitems__([0]))[BATCH_META]["fault"]["kind"] == "quarantined"
    again = SafeCollator(collator, labels=True, quarantined={3}, plan=plan)  # a quarantined row that fails to encode
    assert "fault" not in again(SafeRows(planned, index, plan).__getitems__([2, 3]))[BATCH_META]  # is left out, not a fault


def test_replay_of_what_is_not_a_run_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert audiodata_main(["train", "replay", "--step", "1", str(tmp_path)]) == 2
    assert "no run_config.json" in capsys.readouterr().err
    (tmp_path / "run_config.json").write_text(json.dumps({"config": {}, "processes": 1}))
    write_jsonl(tmp_path / "batches.jsonl", [{"step": 1, "micro": 0, "rank": 0, "rows": [0], "ids": ["a"], "loss": 1.0}])
    assert audiodata_main(["train", "replay", "--step", "5", "--rank", "1", str(tmp_path)]) == 2
    assert "batches.jsonl has no step 5 on rank 1 (steps 1..1, ranks 0)" in capsys.readouterr().err


def test_on_bad_batch_is_validated(tiny: str, sample_out):
    out, _ = sample_out
    assert TrainConfig.from_dict({"model": tiny, "data": str(out)}).on_bad_batch == "skip"
    with pytest.raises(ConfigError, match="on_bad_batch must be skip or stop"):
        TrainConfig.from_dict({"model": tiny, "data": str(out), "on_bad_batch": "ignore"})


# -- training with faults (slow) ----------------------------------------------------------------------


def small_sft(out: Path, dst: Path, keep: int) -> tuple[Path, list[str]]:
    from tests.training.test_trainer import subset

    data = subset(out, dst, "sft", keep=keep)
    ids = [r["id"] for r in pq.read_table(next(data.rglob("*.parquet"))).select(["id"]).to_pylist()]
    return data, ids


def planned(cfg: TrainConfig, world: int = 1) -> Any:
    """The batch plan a run with ``cfg`` follows (so a test can put a faulty record where it wants it)."""
    from trainer.data import estimate_lengths, load_rows
    from trainer.families import get_family
    from trainer.sampler import LengthGroupedBatchSampler

    lengths, clips, _ = estimate_lengths(load_rows(cfg, "train"), get_family("qwen2-audio").math, cfg.long_audio)
    batch = cfg.per_device_batch_size
    return LengthGroupedBatchSampler(lengths, clips, batch, cfg.max_clips_per_batch, cfg.seed, num_replicas=world)


def train_flags(tiny: str, data: Path, run: Path, **kw: Any) -> dict[str, Any]:
    base = {"model": tiny, "data": str(data), "output_dir": str(run), "per_device_batch_size": 2, "logging_steps": 1}
    return {**base, "save_steps": 1000, "learning_rate": 1e-3, "lora_dropout": 0.0, "warmup_ratio": 0.0, **kw}


@pytest.mark.slow
def test_bad_records_are_quarantined_skipped_replayed_and_excluded(tiny: str, sample_out, tmp_path: Path, monkeypatch):
    """One process, three faults in three steps: a NaN loss (step 1), a collator error (step 2), NaN gradients
    (step 3). Each culprit is found among its micro-batch, quarantined with its source, its micro-batch
    (or step) skipped, training goes on; replay reproduces a faulty step (exit 1) and a good one (same ids,
    same loss: exit 0); convert --exclude the quarantine leaves exactly the culprits out of the source."""
    from trainer.replay import replay
    from trainer.train import train

    out, _ = sample_out
    data, ids = small_sft(out, tmp_path / "data", keep=8)
    run = tmp_path / "run"
    cfg = TrainConfig.from_dict(train_flags(tiny, data, run, max_steps=4, save_steps=1, save_total_limit=10))
    plan = planned(cfg).batches()  # one culprit in each of the first three steps
    nan_loss, bad_collate, nan_grad = ids[plan[0][1]], ids[plan[1][0]], ids[plan[2][1]]
    monkeypatch.setenv(FAULTS, f"nan_audio:{nan_loss},collate_error:{bad_collate},nan_grad:{nan_grad}")
    report = train(cfg)

    assert report["steps"] == 4
    q = report["quarantine"]
    assert q["records"] == 3 and q["by_kind"] == {"nonfinite_loss": 1, "data": 1, "nonfinite_grad": 1}
    assert q["skipped_micro_batches"] == 2 and q["skipped_steps"] == 1 and q["stopped"] is None
    entries = {e["id"]: e for e in read_quarantine(run / QUARANTINE)}
    assert set(entries) == {nan_loss, bad_collate, nan_grad}
    assert (entries[nan_loss]["step"], entries[bad_collate]["step"], entries[nan_grad]["step"]) == (1, 2, 3)
    table = pq.read_table(next(data.rglob("*.parquet"))).select(["id", "source"]).to_pylist()
    for rid, e in entries.items():
        assert e["source"] == next(r["source"] for r in table if r["id"] == rid)  # file, index, line of the input
        assert (run / e["dump"]).is_file()
    log = read_batch_log(run / "batches.jsonl")
    by_step = {e["step"]: e for e in log}
    assert by_step[1]["fault"]["culprits"] == [nan_loss] and by_step[1]["loss"] is None
    assert by_step[2]["fault"]["kind"] == "data" and by_step[2]["fault"]["culprits"] == [bad_collate]
    assert by_step[3]["fault"] is None and by_step[3]["step_fault"]["culprits"] == [nan_grad]
    assert by_step[3]["grad_norm"] is None and by_step[3]["loss"] is not None  # finite loss, NaN gradient
    assert by_step[4]["fault"] is None and by_step[4]["grad_norm"] > 0 and by_step[4]["num_items_in_batch"] > 0
    assert [h["step"] for h in report["loss_history"]] == [3, 4]  # no loss for steps whose micro-batch was skipped
    assert report["examples_seen"] == 4  # steps 3 and 4 trained (step 3's update then dropped)

    good = replay(run, step=4)  # checkpoint-3: the weights step 4 ran on
    assert good.exit_code == 0 and good.weights.endswith("checkpoint-3")
    m = good.micro_batches[0]
    assert m.ids == by_step[4]["ids"] == m.logged_ids
    assert m.loss == pytest.approx(by_step[4]["loss"], rel=1e-5)
    assert m.grad_norm == pytest.approx(by_step[4]["grad_norm"], rel=1e-4)  # one process, one micro-batch: the step's
    assert [r["id"] for r in m.records] == m.ids and all(r["loss"] > 0 and r["fault"] is None for r in m.records)
    bad = replay(run, step=1)
    assert bad.exit_code == 1 and bad.micro_batches[0].fault.startswith("non-finite loss")
    assert [r["id"] for r in bad.micro_batches[0].records if r["fault"]] == [nan_loss]

    # back to the source corpus: the quarantine names records as lint and convert know them
    src = tmp_path / "corpus"
    shutil.copytree(SAMPLE, src)
    excluded = audiodata.convert([str(src)], tmp_path / "again", exclude=[str(run / QUARANTINE)], num_workers=1)
    assert excluded.records_excluded == 3 and excluded.excluded_by == {QUARANTINE: 3}


@pytest.mark.slow
def test_out_of_memory_under_gradient_accumulation_and_replay_of_an_accumulated_step(tiny, sample_out, tmp_path, monkeypatch):
    """Out of memory in the forward pass of one micro-batch of two: that one is skipped, the other trains, the
    step is taken; replaying an accumulated step gives each micro-batch's logged loss (same num_items_in_batch,
    same scaling)."""
    from trainer.replay import replay
    from trainer.train import train

    out, _ = sample_out
    data, ids = small_sft(out, tmp_path / "data", keep=6)
    run = tmp_path / "run"
    cfg = TrainConfig.from_dict(train_flags(tiny, data, run, max_steps=2, per_device_batch_size=1, gradient_accumulation_steps=2))
    oom = ids[planned(cfg).batches()[1][0]]  # the second micro-batch of step 1
    monkeypatch.setenv(FAULTS, f"oom:{oom}")
    report = train(cfg)
    log = read_batch_log(run / "batches.jsonl")
    hit = next(e for e in log if e["ids"] == [oom])
    assert hit["step"] == 1 and hit["micro"] == 1
    assert hit["fault"]["kind"] == "oom" and "forward pass" in hit["fault"]["reason"] and hit["fault"]["culprits"] == [oom]
    other = next(e for e in log if e["step"] == hit["step"] and e is not hit)
    assert other["fault"] is None and other["loss"] > 0 and other["grad_norm"] == hit["grad_norm"] > 0  # the step went on
    assert all(e["step_micro_batches"] == 2 for e in log) and report["quarantine"]["skipped_steps"] == 0
    assert read_quarantine(run / QUARANTINE)[0]["reason"].startswith("out of memory on this record alone")
    first = [e for e in log if e["step"] == 1]
    result = replay(run, step=1)
    assert [m.ids for m in result.micro_batches] == [e["ids"] for e in first]
    ok, failing = result.micro_batches
    assert ok.loss == pytest.approx(first[0]["loss"], rel=1e-5) and ok.fault is None
    assert failing.fault.startswith("out of memory") and failing.records[0]["fault"].startswith("out of memory")
    assert result.exit_code == 1


@pytest.mark.slow
def test_on_bad_batch_stop_ends_the_run_at_the_step_and_the_cli_exits_1(tiny, sample_out, tmp_path, monkeypatch, capsys):
    from trainer.cli import main as trainer_main

    out, _ = sample_out
    data, ids = small_sft(out, tmp_path / "data", keep=6)
    run = tmp_path / "run"
    flags = train_flags(tiny, data, run, max_steps=3, on_bad_batch="stop")
    bad = ids[planned(TrainConfig.from_dict(flags)).batches()[1][0]]  # step 2 fails
    monkeypatch.setenv(FAULTS, f"nan_audio:{bad}")
    args = [f"--{k.replace('_', '-')}={v}" for k, v in flags.items()]
    assert trainer_main(["train", "sft", *args, "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    stopped = report["quarantine"]["stopped"]
    assert stopped["kind"] == "nonfinite_loss" and stopped["why"] == "on_bad_batch: stop" and stopped["step"] == 2
    assert report["steps"] == 2 and [h["step"] for h in report["loss_history"]] == [1]  # step 2 had no gradient: no update
    log = read_batch_log(run / "batches.jsonl")
    assert [e["step"] for e in log] == [1, 2] and log[1]["fault"]["culprits"] == [bad] and log[1]["grad_norm"] == 0.0
    assert read_quarantine(run / QUARANTINE)  # the culprit is named before stopping


# -- two processes (slow) ----------------------------------------------------------------------------


@pytest.mark.slow
def test_two_processes_take_the_same_decision_and_nobody_hangs(tiny: str, sample_out, tmp_path: Path, monkeypatch):
    """torchrun with 2 ranks (gloo): a NaN loss on one rank, a collator error on the other, NaN gradients in
    a third step. Every rank skips the same micro-batches (the other rank's line says "peer"), the run ends
    with equal step counts, the culprits are quarantined by the rank that held them, later epochs leave the
    quarantined rows out, and the report sums the ranks' counters."""
    from tests.training.test_distributed import torchrun

    out, _ = sample_out
    data, ids = small_sft(out, tmp_path / "data", keep=12)
    plan = planned(TrainConfig.from_dict(train_flags(tiny, data, tmp_path / "run")), world=2)
    assert plan.steps_per_epoch >= 3

    def culprit(batch: list[int]) -> str:  # a row of the batch that no repeat slot brings back
        return ids[next(k for k in batch if k < len(ids) and k not in plan.repeats)]

    nan_loss, bad_collate = culprit(plan.rank_batches(0)[0]), culprit(plan.rank_batches(1)[1])
    nan_grad = culprit(plan.rank_batches(1)[2])
    monkeypatch.setenv(FAULTS, f"nan_audio:{nan_loss},collate_error:{bad_collate},nan_grad:{nan_grad}")
    report = torchrun("sft", {**train_flags(tiny, data, tmp_path / "run"), "num_train_epochs": 2})

    log = read_batch_log(tmp_path / "run" / "batches.jsonl")
    steps = sorted({e["step"] for e in log})
    assert len(steps) == report["steps"] == 2 * plan.steps_per_epoch
    assert all(sorted(e["rank"] for e in log if e["step"] == s) == [0, 1] for s in steps)  # both ranks at every step
    for s in steps:
        pair = {e["rank"]: e for e in log if e["step"] == s}
        kinds = {r: (e["fault"] or {}).get("kind") for r, e in pair.items()}
        if any(kinds.values()):  # one rank's fault: the other skipped the same micro-batch
            assert "peer" in kinds.values() or set(kinds.values()) == {"quarantined"}, (s, kinds)
            assert {"data", "nonfinite_loss", "quarantined"} & set(kinds.values()), (s, kinds)
        assert pair[0]["grad_norm"] == pair[1]["grad_norm"]  # the same step norm on both ranks
    by_id = {e["id"]: e for e in read_quarantine(tmp_path / "run" / QUARANTINE)}
    assert by_id[nan_loss]["rank"] == 0 and by_id[nan_loss]["step"] == 1 and by_id[bad_collate]["rank"] == 1
    assert by_id[nan_grad]["kind"] == "nonfinite_grad"
    q = report["quarantine"]
    assert q["records"] == 3 and q["skipped_micro_batches"] >= 4 and q["skipped_steps"] == 1
    assert q["dropped_rows"] >= 3  # epoch 2 left the quarantined rows out
    assert all(set(e.get("quarantined_left_out") or []) <= {nan_loss, bad_collate, nan_grad} for e in log)
    second_epoch = [i for e in log if e["epoch"] == 1 for i in e["ids"] if not e["fault"]]
    assert not {nan_loss, bad_collate, nan_grad} & set(second_epoch)
