"""Templates (``--task`` presets, ``--template FILE.yaml``): a prompt pool drawn by seed and record id,
placeholders from the record, the assistant turn from a column, a system prompt; applied by choose_prompt
for every transcript-only reader (NeMo, lhotse, dataset/tar rows, MiniCPM), in lint as in convert."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

import audiodata
from audiodata.cli.main import main
from audiodata.errors import InputDataError
from audiodata.pipeline.options import ConvertOptions, OptionsError
from audiodata.readers.dialects import parse_record
from audiodata.readers.dialects.common import ParseContext
from audiodata.readers.spec import DialectSpec
from audiodata.readers.templates import PRESETS, TASKS, Template, load_template, render
from audiodata.records import Record, SourceLoc
from audiodata.rules.transcript import is_transcription_prompt
from tests.raw_asr_audio import FIXTURES, LAYOUT, make_corpus
from trainer.evaluate import choose_metric

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SRC = SourceLoc("corpus/train.jsonl", 3, 4)
NEMO = {"audio_filepath": "a.wav", "duration": 2.0, "text": "hello there", "lang": "en", "speaker": "spk1"}


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def ctx(template: Template | None = None, prompt: str | None = None, system: str | None = None, **spec: Any) -> ParseContext:
    return ParseContext(DialectSpec(**spec), SRC, "/media", prompt, system, template)


def parsed(obj: dict[str, Any], c: ParseContext) -> Record:
    rec, findings = parse_record(obj, c)
    assert findings == [] and rec is not None, findings
    return rec


def rejected(obj: dict[str, Any], c: ParseContext) -> tuple[str, str, str]:
    rec, findings = parse_record(obj, c)
    assert rec is None and len(findings) == 1
    return findings[0].code, findings[0].field, findings[0].message


def options(**kw: Any) -> ConvertOptions:
    return ConvertOptions(**kw)


def template_file(tmp_path: Path, text: str) -> Template:
    return load_template(write(tmp_path / "t.yaml", text))


# -- presets ---------------------------------------------------------------------------------------------------


def test_presets_say_what_they_ask_for():
    """ASR prompts are ones lint's transcription test recognises (R rules, A017 and the trainer's WER choice
    see them as transcription requests); the other presets' are not."""
    assert set(TASKS) == {"auto", "none", "asr", "translate", "caption", "qa"}
    assert len(PRESETS["asr"].user) >= 4 and all(is_transcription_prompt(p) for p in PRESETS["asr"].user)
    for name in ("translate", "caption", "qa"):
        assert not any(is_transcription_prompt(p.replace("{", "").replace("}", "")) for p in PRESETS[name].user), name
    assert all("{target_lang}" in p for p in PRESETS["translate"].user)
    assert options(task="asr").rate_task == "asr"
    assert {options(task=t).rate_task for t in ("translate", "caption", "qa", "none")} == {"none"}
    assert options().rate_task == "auto" and options().prompting is None


def test_the_pool_is_drawn_by_seed_and_record_id():
    asr = PRESETS["asr"]
    ids = [f"rec-{k}" for k in range(300)]
    drawn = [asr.pick(i) for i in ids]
    assert drawn == [asr.pick(i) for i in ids]  # the same record, the same prompt
    counts = Counter(drawn)
    assert set(counts) == set(asr.user) and min(counts.values()) > 300 / len(asr.user) / 2  # spread over the pool
    reseeded = [asr.with_values(seed=1).pick(i) for i in ids]
    assert reseeded != drawn and Counter(reseeded).keys() == counts.keys()
    assert Template("one", ("only",)).pick("x") == "only" and Template("none").pick("x") == ""


def test_a_preset_fills_in_only_where_a_record_has_no_prompt():
    asr = PRESETS["asr"]
    own = parsed({"audio": "a.wav", "text": "hi", "prompt": "Say it back."}, ctx(asr))
    assert own.messages[0].content == "<audio>Say it back."
    given = parsed({"audio": "a.wav", "text": "hi"}, ctx(asr, prompt="Transcribe, please."))
    assert given.messages[0].content == "<audio>Transcribe, please."
    pooled = parsed({"audio": "a.wav", "text": "hi", "id": "r1"}, ctx(asr))
    assert pooled.messages[0].content == "<audio>" + asr.pick("r1")
    assert pooled.messages[1].content == "hi"


# -- template files --------------------------------------------------------------------------------------------


def test_a_template_file_prompts_every_record_from_its_pool(tmp_path: Path):
    t = template_file(tmp_path, 'user: ["{prompt} <audio>", "<audio> {prompt}"]\n')
    rec = parsed({"audio": "a.wav", "text": "hi", "prompt": "Repeat.", "id": "k"}, ctx(t))
    assert rec.messages[0].content in ("Repeat. <audio>", "<audio> Repeat.")  # the row's own prompt is a column
    assert rec.messages[0].content == t.pick("k").replace("{prompt}", "Repeat.")


def test_placeholders_come_from_the_record_then_the_options_then_the_defaults(tmp_path: Path):
    t = template_file(
        tmp_path,
        'system: "Translate all input audio into {target_lang}."\n'
        'user: "<audio>{lang} speech by {speaker}; literal {{braces}}"\n'
        "defaults: {target_lang: German, speaker: nobody}\n",
    )
    rec = parsed(NEMO, ctx(t))
    assert rec.messages[0].content == "<audio>en speech by spk1; literal {braces}"
    assert rec.system == "Translate all input audio into German."
    assert parsed({**NEMO, "target_lang": "French"}, ctx(t)).system == "Translate all input audio into French."
    lang_flag = t.with_values(target_lang="Italian")
    assert parsed(NEMO, ctx(lang_flag)).system == "Translate all input audio into Italian."  # --target-lang
    assert parsed({**NEMO, "target_lang": "French"}, ctx(lang_flag)).system.endswith("French.")  # the row's own wins
    no_speaker = {k: v for k, v in NEMO.items() if k != "speaker"}
    assert parsed(no_speaker, ctx(t)).messages[0].content.startswith("<audio>en speech by nobody")


def test_a_record_without_a_placeholder_s_value_is_rejected_naming_it():
    missing = rejected({"audio": "a.wav", "text": "hi"}, ctx(PRESETS["translate"]))
    assert missing[:2] == ("S001", "target_lang") and "--target-lang" in missing[2]
    bad = rejected({"audio": "a.wav", "answer": "hi", "question": ["a", "list"]}, ctx(PRESETS["qa"], formatting="transcription"))
    assert bad[:2] == ("S001", "question") and "must be text" in bad[2]
    nolang = rejected({k: v for k, v in NEMO.items() if k != "lang"}, ctx(Template("t", ("{lang}",))))
    assert nolang[:2] == ("S001", "lang")
    # a number fills a placeholder as written; {lang} also reads language/locale columns
    t = Template("t", ("<audio>{locale} #{n}",))
    assert parsed({"audio": "a.wav", "text": "x", "locale": "de-DE", "n": 3}, ctx(t)).messages[0].content == "<audio>de-DE #3"
    t = Template("t", ("<audio>{lang}",))
    assert parsed({"audio": "a.wav", "text": "x", "language": "German"}, ctx(t)).messages[0].content == "<audio>German"


def test_the_assistant_turn_from_a_column_for_every_reader():
    qa = PRESETS["qa"]
    speechllm = {"audio_filepath": "a.wav", "duration": 2.0, "question": "Who speaks?", "answer": "A woman."}
    rec = parsed(speechllm, ctx(qa))  # a NeMo SpeechLLM manifest line: no text, question and answer
    assert [m.content for m in rec.messages] == ["<audio>Who speaks?", "A woman."] and rec.messages[1].field == "answer"
    assert rec.metadata["question"] == "Who speaks?"
    code, field, message = rejected({**speechllm, "answer": None}, ctx(qa))
    assert (code, field) == ("S001", "answer") and "assistant column" in message
    row = {"audio": "a.wav", "sentence": "Hallo.", "translation": "Hello."}
    t = Template("t", ("<audio>Translate.",), assistant="translation")
    rec = parsed(row, ctx(t, formatting="transcription"))
    assert rec.messages[1].content == "Hello." and rec.messages[1].field == "translation"
    assert parsed({"audio": "a.wav", "text": "x", "translation": "y"}, ctx(t)).messages[1].content == "y"  # MiniCPM rows
    cut = json.loads((FIXTURES / "cuts.jsonl").read_text().splitlines()[0])
    cut["supervisions"][0]["custom"] = {"translation": "Bitte ruf Stella an."}
    rec = parsed(cut, ctx(t))
    assert rec.messages[1].content == "Bitte ruf Stella an." and rec.messages[1].field == "supervisions.translation"
    del cut["supervisions"][0]["custom"]
    code, field, _ = rejected(cut, ctx(t))
    assert (code, field) == ("S001", "supervisions[0].custom.translation")


def test_lhotse_placeholders_read_the_cut_and_its_supervision():
    cut = json.loads((FIXTURES / "cuts.jsonl").read_text().splitlines()[0])
    t = Template("t", ("<audio>{lang} / {speaker}",), system="cut {id}")
    rec = parsed(cut, ctx(t))
    assert rec.messages[0].content == "<audio>English / spk2" and rec.system == "cut long-1"


def test_a_record_s_own_system_prompt_wins_over_the_template_s():
    t = Template("t", system="Be brief.")
    assert parsed({"audio": "a.wav", "text": "x", "system": "Mine."}, ctx(t)).system == "Mine."
    assert parsed({"audio": "a.wav", "text": "x"}, ctx(t)).system == "Be brief."
    assert parsed({"audio": "a.wav", "text": "x"}, ctx(None, system="Flag.")).system == "Flag."


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("user: [hi]\nprompts: [x]\n", "unknown key 'prompts'"),
        ("user: []\n", "user must be a prompt or a non-empty list"),
        ("user: [1, 2]\n", "user must be"),
        ('user: ["<audio>{not a name}"]\n', "{not a name}, which is not a column name"),
        ('user: ["  "]\n', "user[0] is empty"),
        ("user: x\ntask: translate\n", "task must be one of auto, asr, none"),
        ("user: x\nseed: one\n", "seed must be an integer"),
        ("user: x\nassistant: [a]\n", "assistant must be a column name"),
        ("user: x\ndefaults: [a]\n", "defaults must be a mapping"),
        ("- just\n- a list\n", "must be a mapping"),
        ("user: [unclosed\n", "t.yaml:2: not YAML"),
    ],
)
def test_a_bad_template_file_stops_the_run_naming_the_key(tmp_path: Path, text: str, says: str):
    path = write(tmp_path / "t.yaml", text)
    with pytest.raises(OptionsError, match="--template") as err:
        options(template=str(path))
    assert says in str(err.value) and str(path) in str(err.value)


def test_options_that_contradict_a_template_are_refused(tmp_path: Path):
    path = str(write(tmp_path / "t.yaml", 'user: "<audio>x"\nsystem: "s"\nassistant: answer\n'))
    for kw, says in [
        ({"task": "asr"}, "--task asr and --template"),
        ({"prompt": "p"}, "--prompt and --template"),
        ({"system": "s2"}, "--system and the template"),
        ({"columns": {"text": "other"}}, "--column text=other and the template"),
    ]:
        with pytest.raises(OptionsError, match=says):
            options(template=path, **kw)
    with pytest.raises(OptionsError, match="--target-lang applies to a template"):
        options(target_lang="German")
    with pytest.raises(OptionsError, match=r"--target-lang: the asr template's prompts name no \{target_lang\}"):
        options(task="asr", target_lang="German")
    assert options(task="translate", target_lang="German").prompting is not None
    with pytest.raises(OptionsError, match="--prompt-seed applies to a template"):
        options(task="none", prompt_seed=3)
    assert options(template=path, columns={"text": "answer"}).prompting is not None


def test_the_template_decides_what_the_r_rules_and_long_recordings_treat_as_transcripts(tmp_path: Path):
    asr_pool = str(write(tmp_path / "a.yaml", 'user: ["Transcribe the audio.", "What does the speaker say?"]\n'))
    assert options(template=asr_pool).rate_task == "auto" and options(template=asr_pool).transcription()
    told = str(write(tmp_path / "b.yaml", "user: x\ntask: asr\n"))
    assert options(template=told).rate_task == "asr" and options(template=told).transcription()
    system = str(write(tmp_path / "c.yaml", 'system: "Translate all input audio into English."\nuser: "<audio>"\n'))
    assert not options(template=system).transcription()
    assert not options(task="translate").transcription() and options(task="asr").transcription()
    assert options(task="translate").audio_settings(None).task == "none"


def test_the_manifest_records_the_template_and_the_fingerprint_what_it_says(tmp_path: Path):
    plain = options().recorded()
    assert not {"template", "target_lang", "prompt_seed"} & set(plain)  # runs without one record what they did
    path = write(tmp_path / "t.yaml", "user: [a, b]\n")
    first = options(template=str(path)).fingerprint([])
    assert options(template=str(path)).fingerprint([]) == first
    write(path, "user: [a, c]\n")
    assert options(template=str(path)).fingerprint([]) != first  # an edited pool is another run
    assert options(template=str(path), prompt_seed=4).fingerprint([]) != options(template=str(path)).fingerprint([])
    assert options(task="asr").fingerprint([]) != options(task="auto").fingerprint([])


def test_translated_data_is_evaluated_with_bleu():
    metric, why = choose_metric("auto", [], manifest_task="translate")
    assert (metric, why) == ("bleu", "auto: the dataset was converted with --task translate")


def test_render_leaves_lone_braces_alone():
    assert render("a } b { c {{x}}", {}, {}) == "a } b { c {x}"
    assert render("{x}", {"x": 1.5}, {}) == "1.5"


# -- through convert and lint ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("raw") / "c")


def rows(out: Path) -> list[dict[str, Any]]:
    found = [r for p in sorted((out / "data").rglob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    return sorted(found, key=lambda r: r["source"]["index"])


def test_convert_prompts_a_nemo_manifest_the_same_with_any_worker_count(corpus: Path, tmp_path: Path):
    manifest = corpus / "long.nemo.jsonl"
    one = audiodata.convert([str(manifest)], tmp_path / "one", num_workers=1, task="asr", prompt_seed=5)
    three = audiodata.convert([str(manifest)], tmp_path / "three", num_workers=3, task="asr", prompt_seed=5)
    assert one.records_written == three.records_written == len(LAYOUT)
    a, b = rows(tmp_path / "one"), rows(tmp_path / "three")
    assert [r["messages"] for r in a] == [r["messages"] for r in b]
    pool = PRESETS["asr"].with_values(seed=5)
    assert [r["messages"][0]["content"] for r in a] == ["<audio>" + pool.pick(r["id"]) for r in a]
    assert [r["messages"][1]["content"] for r in a] == [t for *_, t in LAYOUT]
    written = json.loads((tmp_path / "one" / "manifest.json").read_text())
    assert (written["options"]["task"], written["options"]["prompt_seed"]) == ("asr", 5)
    assert written["summary"]["prompts"]["user"] == list(PRESETS["asr"].user) and written["summary"]["prompts"]["seed"] == 5
    card = (tmp_path / "one" / "README.md").read_text()
    assert "by the `asr` preset (`--task asr`)" in card and "drawn by a hash of seed 5" in card
    assert all(f"- `{p}`" in card for p in PRESETS["asr"].user)
    plain = audiodata.convert([str(manifest)], tmp_path / "plain", num_workers=1)  # no template: no such note
    assert plain.records_written == len(LAYOUT)
    assert "prompts" not in json.loads((tmp_path / "plain" / "manifest.json").read_text())["summary"]
    assert "turned into instructions" not in (tmp_path / "plain" / "README.md").read_text()


def test_the_example_templates_convert_the_example_manifest(tmp_path: Path):
    """examples/templates/*.yaml on examples/nemo_asr (the README's Templates block), and their rejects."""
    manifest = EXAMPLES / "nemo_asr" / "train_manifest.json"
    media = str(ROOT / "sample_data" / "audio")
    ast = tmp_path / "ast"
    done = audiodata.convert(
        [str(manifest)], ast, num_workers=1, media_root=media, template=str(EXAMPLES / "templates" / "speech_translation.yaml")
    )
    assert (done.records_written, done.records_rejected) == (12, 0)
    lines = [json.loads(x) for x in manifest.read_text(encoding="utf-8").splitlines()]
    for row, line in zip(rows(ast), lines, strict=True):
        assert row["system"] == "Translate all input audio into German."
        assert row["messages"] == [{"role": "user", "content": "<audio>"}, {"role": "assistant", "content": line["text_de"]}]
        assert json.loads(row["metadata"])["text"] == line["text"]  # the transcript is kept beside the translation
    manifest_json = json.loads((ast / "manifest.json").read_text())
    assert manifest_json["options"]["template"].endswith("speech_translation.yaml")
    assert manifest_json["summary"]["prompts"] == {
        "template": "speech_translation.yaml",  # by name: the card is published, the local path is not
        "preset": False,
        "user": ["<audio>"],
        "assistant": "text_de",
        "system": "Translate all input audio into {target_lang}.",
        "defaults": {"target_lang": "German"},
        "seed": 0,
    }
    card = (ast / "README.md").read_text()
    assert "by the template `speech_translation.yaml`" in card and "The assistant reply is the `text_de` column." in card
    assert "System prompt (where the record had none): `Translate all input audio into {target_lang}.`" in card
    pool = tmp_path / "pool"
    asr_pool = str(EXAMPLES / "templates" / "asr_pool.yaml")
    audiodata.convert([str(manifest)], pool, num_workers=1, media_root=media, template=asr_pool)
    drawn = Counter()
    for row, line in zip(rows(pool), lines, strict=True):
        prompt = row["messages"][0]["content"]
        forms = {
            "<audio>Transcribe the recording (language: en).": "lang",
            "Please transcribe this audio: <audio>": "plain",
            f"<audio>Write down what is said (speaker: {line['speaker']}).": "speaker",
        }
        assert prompt in forms, prompt
        drawn[forms[prompt]] += 1
    assert len(drawn) == 3  # every prompt of the pool is drawn for some of the twelve


def test_lint_reads_with_the_template_as_convert_does(corpus: Path, tmp_path: Path):
    """A placeholder the manifest lacks: lint reports the same located S001 convert rejects with."""
    path = write(tmp_path / "t.yaml", 'user: "<audio>Transcribe ({accent})."\n')
    report = audiodata.lint([str(corpus / "long.nemo.jsonl")], num_workers=1, template=str(path)).to_dict()
    found = report["findings"]
    assert [(f["code"], f["field"], f["line"]) for f in found] == [("S001", "accent", k + 1) for k in range(len(LAYOUT))]
    assert "the template names {accent}" in found[0]["message"]
    out = audiodata.convert([str(corpus / "long.nemo.jsonl")], tmp_path / "o", num_workers=1, template=str(path))
    assert (out.records_written, out.records_rejected) == (0, len(LAYOUT))
    reject = json.loads((tmp_path / "o" / "rejects.jsonl").read_text().splitlines()[0])
    assert reject["reasons"][0]["field"] == "accent" and "{accent}" in reject["reasons"][0]["message"]


def test_the_cli_refuses_a_contradiction_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    path = write(tmp_path / "t.yaml", "user: x\n")
    manifest = write(tmp_path / "m.json", json.dumps(NEMO) + "\n")
    code = main(["lint", str(manifest), "--no-audio", "--template", str(path), "--prompt", "p"])
    assert code == 2 and "--prompt and --template" in capsys.readouterr().err
    code = main(["lint", str(manifest), "--no-audio", "--template", str(tmp_path / "missing.yaml")])
    assert code == 2 and "cannot read it" in capsys.readouterr().err


def test_a_question_answer_dataset_made_by_datasets_converts_with_the_qa_preset(tmp_path: Path):
    """A folder written by ``datasets`` (save_to_disk) with question/answer columns and no transcript column: the
    qa preset's assistant column is the one the rows are read by, and {question} the prompt."""
    from datasets import Audio, Dataset

    clips = [ROOT / "sample_data" / "audio" / n for n in ("clip07_16k.flac", "clip08_16k.flac")]
    questions = ["What does she sell?", "When is the meeting?"]
    answers = ["Sea shells.", "On Thursday."]
    ds = Dataset.from_dict({"audio": [str(p) for p in clips], "question": questions, "answer": answers})
    ds.cast_column("audio", Audio()).save_to_disk(str(tmp_path / "qa"))
    done = audiodata.convert([str(tmp_path / "qa")], tmp_path / "out", num_workers=1, task="qa")
    assert (done.records_written, done.records_rejected) == (2, 0)
    got = [r["messages"] for r in rows(tmp_path / "out")]
    assert got == [
        [{"role": "user", "content": "<audio>" + q}, {"role": "assistant", "content": a}]
        for q, a in zip(questions, answers, strict=True)
    ]
    with pytest.raises(InputDataError, match="no transcript column"):  # without the preset: no reply column
        audiodata.convert([str(tmp_path / "qa")], tmp_path / "plain", num_workers=1)


def test_a_template_s_one_marker_stands_for_every_clip_of_a_recording_kept_whole(corpus: Path, tmp_path: Path):
    """A long untimed recording, not a transcription: kept as consecutive clips, and the template's one <audio>
    becomes one marker per clip (a record's own prompt is used as written)."""
    whole = write(tmp_path / "whole.jsonl", json.dumps({"audio_filepath": "long.wav", "duration": 24.0, "text": "Ein Vortrag."}))
    path = write(tmp_path / "t.yaml", 'user: "Translate this talk into German: <audio>"\ntask: none\n')
    done = audiodata.convert(
        [str(whole)], tmp_path / "o", num_workers=1, media_root=str(corpus), window_seconds=10.0, template=str(path)
    )
    assert done.records_written == 1
    (row,) = rows(tmp_path / "o")
    assert row["messages"][0]["content"] == "Translate this talk into German: <audio><audio><audio>" and len(row["audios"]) == 3
    own = parsed({"audios": ["a.wav", "b.wav"], "text": "x", "prompt": "<audio> vs"}, ctx(PRESETS["asr"]))
    assert own.messages[0].content == "<audio> vs"  # as written: M rules judge it
