"""Tests for the input-record JSON Schemas in ``schemas/input/``.

Each dialect schema validates ONE raw input record; ``audio_ref.json`` is shared
and resolved by ``$id`` through a ``referencing.Registry`` (``referencing`` is
the reference-resolution library that jsonschema itself depends on).
"""

import json
import pathlib

import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from referencing import Registry, Resource

SCHEMA_DIR = pathlib.Path(__file__).resolve().parents[2] / "schemas" / "input"
ID_PREFIX = "https://audiodata.dev/schemas/input/"
AUDIO_REF_ID = ID_PREFIX + "audio_ref.json"
DIALECTS = ("minicpm", "sharegpt", "alpaca", "messages", "dataset_info", "llamafactory-v1")
EXPECTED_FILES = {f"{name}.json" for name in (*DIALECTS, "audio_ref")}


def _load_schemas() -> dict[str, dict]:
    return {
        path.stem: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(SCHEMA_DIR.glob("*.json"))
    }


SCHEMAS = _load_schemas()
REGISTRY = Registry().with_resources(
    (schema["$id"], Resource.from_contents(schema)) for schema in SCHEMAS.values()
)


def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(SCHEMAS[name], registry=REGISTRY)


def best_error_path(name: str, instance) -> list | None:
    """The instance path of the error a user would be shown, or None if valid."""
    error = best_match(validator(name).iter_errors(instance))
    return None if error is None else list(error.absolute_path)


def _walk_properties(node, where=""):
    """Yield (location, property name, property schema) for every `properties` entry."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                for prop, sub in value.items():
                    yield f"{where}/properties", prop, sub
            yield from _walk_properties(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _walk_properties(item, f"{where}/{index}")


# --------------------------------------------------------------------------
# The schemas themselves
# --------------------------------------------------------------------------


def test_expected_files_present():
    assert {f"{name}.json" for name in SCHEMAS} >= EXPECTED_FILES


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_schema_is_valid_draft_2020_12(name):
    schema = SCHEMAS[name]
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"{ID_PREFIX}{name}.json"
    assert schema["title"]
    assert schema["description"]


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_every_property_is_described(name):
    # Conditional branches (if/then/else, not) only restate names already described.
    missing = [
        f"{where}/{prop}"
        for where, prop, sub in _walk_properties(SCHEMAS[name])
        if isinstance(sub, dict)
        and not any(part in where for part in ("/if", "/then", "/else", "/not"))
        and not sub.get("description")
    ]
    assert missing == []


def test_registry_resolves_audio_ref_by_id():
    resolver = REGISTRY.resolver()
    assert resolver.lookup(AUDIO_REF_ID).contents == SCHEMAS["audio_ref"]
    assert (
        resolver.lookup(AUDIO_REF_ID + "#/$defs/audio_ref").contents["title"]
        == "Audio reference"
    )
    assert (
        resolver.lookup(AUDIO_REF_ID + "#/$defs/audio_list").contents["type"] == "array"
    )
    # A relative "$ref": "audio_ref.json" in a dialect schema resolves via its $id.
    in_sharegpt = REGISTRY.resolver(base_uri=SCHEMAS["sharegpt"]["$id"])
    assert in_sharegpt.lookup("audio_ref.json").contents is SCHEMAS["audio_ref"]


def test_audio_ref_defined_once():
    for name in DIALECTS:
        assert "audio_ref" not in SCHEMAS[name].get("$defs", {}), name
    text = {name: json.dumps(schema) for name, schema in SCHEMAS.items()}
    for name in ("minicpm", "sharegpt", "alpaca", "messages"):
        assert '"$ref": "audio_ref.json' in text[name], name


# --------------------------------------------------------------------------
# audio_ref.json
# --------------------------------------------------------------------------

AUDIO_REF_VALID = [
    "clips/0001.wav",
    "https://example.org/a.flac",
    "data:audio/wav;base64,UklGRiQAAABXQVZF",
    {"bytes": "UklGRiQAAABXQVZF"},
    {"bytes": "UklGRiQAAABXQVZF", "path": "0001.wav"},
    {"path": "/abs/0001.mp3"},
    {"array": [0.0, 0.25, -0.5], "sampling_rate": 16000},
    {"array": [0, 1, 2], "sampling_rate": 8000, "path": "0001.wav"},
]

AUDIO_REF_INVALID = [
    ("", []),
    ({}, []),
    (42, []),
    ({"url": "https://example.org/a.wav"}, []),
    ({"bytes": 5}, ["bytes"]),
    ({"array": [0.1, "x"], "sampling_rate": 16000}, ["array", 1]),
    ({"array": [0.1], "sampling_rate": 0}, ["sampling_rate"]),
    ({"array": [0.1]}, []),
    ({"array": [0.1], "sampling_rate": 16000, "bytes": "AAAA"}, []),
]


@pytest.mark.parametrize("instance", AUDIO_REF_VALID)
def test_audio_ref_valid(instance):
    assert best_error_path("audio_ref", instance) is None


@pytest.mark.parametrize(("instance", "path"), AUDIO_REF_INVALID)
def test_audio_ref_invalid(instance, path):
    assert best_error_path("audio_ref", instance) == path


# --------------------------------------------------------------------------
# Dialects
# --------------------------------------------------------------------------

CONV = [
    {"from": "human", "value": "<audio>What is said?"},
    {"from": "gpt", "value": "Hello there."},
]

VALID = {
    "minicpm": [
        {"audio": "clips/1.wav", "text": "hello world"},
        {
            "id": 17,
            "audios": ["a.wav", {"bytes": "UklGRg==", "path": "b.wav"}],
            "prompt": "Compare the two clips.",
            "system": "You are helpful.",
            "text": "The second is louder.",
            "speaker": "spk01",
        },
        {
            "id": "utt-3",
            "audio": {"array": [0.0, 0.1], "sampling_rate": 16000},
            "instruction": "Transcribe.",
            "text": "",
        },
    ],
    "sharegpt": [
        {"conversations": CONV, "audios": ["clips/1.wav"]},
        {
            "id": "dpo-1",
            "system": "Be brief.",
            "tools": "[]",
            "conversations": [{"role": "user", "content": "<audio>Describe it."}],
            "chosen": {"role": "assistant", "content": "A dog barks."},
            "rejected": {"role": "assistant", "content": "A cat."},
            "audios": "clips/2.flac",
            "source": "esc50",
        },
        {"conversations": CONV, "audios": [], "kto_tag": False},
    ],
    "alpaca": [
        {"instruction": "<audio>Transcribe.", "output": "hi", "audios": ["a.wav"]},
        {
            "input": "<audio>",
            "system": "s",
            "history": [["Hi", "Hello"], ["<audio>What?", "Rain."]],
            "chosen": "good",
            "rejected": "bad",
            "audios": ["a.wav", "b.wav"],
        },
        {"instruction": "i", "input": "", "output": "o", "kto_tag": True, "id": 9},
        # one clip as a plain string: LLaMA-Factory's converter wraps it (llamafactory/data/converter.py:43-52, 0.9.5)
        {"instruction": "<audio>Transcribe.", "output": "hi", "audios": "a.wav"},
    ],
    "messages": [
        {
            "messages": [
                {"role": "system", "content": "You are helpful."},
                {"role": "user", "content": "<audio>What is said?"},
                {"role": "assistant", "content": "Hello."},
            ],
            "audios": ["a.wav"],
            "rejected_response": "Goodbye.",
        },
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "audio", "audio": "a.wav"},
                        {"type": "audio", "audio_url": "https://example.org/b.mp3"},
                        {"type": "audio"},
                        {
                            "type": "input_audio",
                            "input_audio": {"data": "UklGRg==", "format": "wav"},
                        },
                        {"type": "text", "text": "Compare them."},
                    ],
                },
                {"role": "assistant", "content": [{"type": "text", "text": "Same."}]},
            ],
            "audios": [{"path": "c.wav"}],
            "tools": [{"type": "function", "function": {"name": "f"}}],
        },
        # ms-swift wraps a single string (swift/dataset/preprocessor/core.py:120-125, ms-swift 4.6.0)
        {"messages": [{"role": "user", "content": "<audio>Hi"}, {"role": "assistant", "content": "Hello."}], "audios": "a.wav"},
        # ms-swift's rejected_messages + rejected_audios form (docs/source_en/Customization/Custom-dataset.md, DPO)
        {
            "messages": [{"role": "user", "content": "<audio>Hi"}, {"role": "assistant", "content": "Hello."}],
            "audios": ["a.wav"],
            "rejected_messages": [{"role": "user", "content": "<audio>Hi"}, {"role": "assistant", "content": "Bye."}],
            "rejected_audios": "a.wav",
        },
        # rejected_response as a list of reply messages (same doc; template_inputs.py:231-236)
        {
            "messages": [
                {"role": "user", "content": "Weather?"},
                {"role": "tool_call", "content": "{}"},
                {"role": "tool_response", "content": "sun"},
                {"role": "assistant", "content": "Sunny."},
            ],
            "rejected_response": [{"role": "assistant", "content": "No idea."}],
        },
    ],
    "llamafactory-v1": [
        {  # data/v1_sft_demo.jsonl:1 (LLaMA-Factory mirror), with an audio_url item (v1/utils/types.py:81-85)
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "audio_url", "value": "a.wav"}, {"type": "text", "value": "hi"}],
                    "loss_weight": 0.0,
                },
                {"role": "assistant", "content": [{"type": "text", "value": "Hello."}], "loss_weight": 1.0},
            ],
            "tools": "[]",
        },
        {  # data/v1_dpo_demo.jsonl:1: the prompt repeated on both sides, the answer last
            "chosen_messages": [
                {"role": "user", "content": [{"type": "audio_url", "value": "a.wav"}]},
                {"role": "assistant", "content": [{"type": "tool_call", "value": '{"name": "f", "arguments": {}}'}]},
            ],
            "rejected_messages": [
                {"role": "user", "content": [{"type": "audio_url", "value": "a.wav"}]},
                {"role": "assistant", "content": [{"type": "reasoning", "value": "hm"}, {"type": "text", "value": "no"}]},
            ],
            "id": 7,
        },
    ],
    "dataset_info": [
        {
            "mllm_audio_demo": {
                "file_name": "mllm_audio_demo.json",
                "formatting": "sharegpt",
                "columns": {"messages": "messages", "audios": "audios"},
                "tags": {
                    "role_tag": "role",
                    "content_tag": "content",
                    "user_tag": "user",
                    "assistant_tag": "assistant",
                },
            },
            "asr_alpaca": {
                "file_name": "asr.jsonl",
                "columns": {
                    "prompt": "instruction",
                    "response": "output",
                    "audios": "audios",
                },
                "num_samples": 1000,
            },
        },
        {
            "audio_dpo": {
                "hf_hub_url": "org/audio-dpo",
                "ms_hub_url": "org/audio-dpo",
                "subset": "en",
                "split": "train",
                "folder": "data",
                "formatting": "sharegpt",
                "ranking": True,
                "columns": {
                    "messages": "conversations",
                    "chosen": "chosen",
                    "rejected": "rejected",
                    "audios": "audios",
                },
            }
        },
    ],
}

INVALID = {
    "minicpm": [
        ({"text": "no audio"}, []),
        ({"audio": "a.wav", "text": 5}, ["text"]),
        (
            {"audios": ["a.wav", {"array": [0.1], "sampling_rate": 0}], "text": "t"},
            ["audios", 1, "sampling_rate"],
        ),
        ({"audio": "a.wav", "audios": ["b.wav"], "text": "t"}, []),
        ({"audios": [], "text": "t"}, ["audios"]),
    ],
    "sharegpt": [
        (
            {"conversations": [*CONV, {"from": "human", "value": 3}]},
            ["conversations", 2, "value"],
        ),
        (
            {"conversations": [CONV[0], {"from": "gpt", "content": "y"}]},
            ["conversations", 1],
        ),
        (
            {
                "conversations": [
                    {"role": "user", "content": [{"type": "text", "text": "x"}]}
                ]
            },
            ["conversations", 0, "content"],
        ),
        ({"conversations": CONV, "chosen": {"from": "gpt", "value": "a"}}, []),
        ({"conversations": CONV, "audios": ["a.wav", ""]}, ["audios", 1]),
        ({"conversations": CONV, "kto_tag": "true"}, ["kto_tag"]),
    ],
    "alpaca": [
        (
            {"instruction": "i", "output": "o", "history": [["a", "b"], ["c"]]},
            ["history", 1],
        ),
        (
            {"instruction": "i", "output": "o", "history": [["a", "b"], ["c", 2]]},
            ["history", 1, 1],
        ),
        ({"output": "o"}, []),
        (
            {
                "instruction": "i",
                "chosen": "a",
                "rejected": {"from": "gpt", "value": "b"},
            },
            ["rejected"],
        ),
        ({"instruction": "i", "chosen": "a", "rejected": "b", "output": "o"}, []),
    ],
    "messages": [
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
            ["messages", 0, "content", 0, "text"],
        ),
        ({"messages": [{"role": "user", "content": None}]}, ["messages", 0, "content"]),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "document", "document": "x.pdf"}]}
                ]
            },
            ["messages", 0, "content", 0, "type"],
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "input_audio", "input_audio": {"data": "AA=="}}
                        ],
                    }
                ]
            },
            ["messages", 0, "content", 0, "input_audio"],
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "audio", "path": "a.wav", "url": "b.wav"}],
                    }
                ]
            },
            ["messages", 0, "content", 0],
        ),
        (
            {
                "messages": [{"role": "user", "content": "<audio>"}],
                "audios": [{"bytes": ""}],
            },
            ["audios", 0, "bytes"],
        ),
        ({"messages": [{"role": "user", "content": "<audio>"}], "audios": ""}, ["audios"]),
        ({"messages": [{"role": "user", "content": "q"}], "rejected_messages": []}, ["rejected_messages"]),
        ({"messages": [{"role": "user", "content": "q"}], "rejected_audios": 5}, ["rejected_audios"]),
        ({"messages": [{"role": "user", "content": "q"}], "rejected_response": 5}, ["rejected_response"]),
    ],
    "llamafactory-v1": [
        ({"messages": [{"role": "user", "content": "hi"}]}, ["messages", 0, "content"]),
        (
            {"messages": [{"role": "user", "content": [{"type": "audio", "value": "a.wav"}]}]},
            ["messages", 0, "content", 0, "type"],
        ),
        ({"messages": [{"role": "user", "content": [{"type": "text"}]}]}, ["messages", 0, "content", 0]),
        ({"chosen_messages": [{"role": "user", "content": []}]}, []),
        ({"messages": [], "tools": "[]"}, ["messages"]),
    ],
    "dataset_info": [
        (
            {
                "d": {
                    "file_name": "d.json",
                    "formatting": "sharegpt",
                    "columns": {"audio": "audios"},
                }
            },
            ["d", "columns"],
        ),
        ({"d": {"file_name": "d.json", "formatting": "chatml"}}, ["d", "formatting"]),
        (
            {"d": {"file_name": "d.json", "columns": {"messages": "messages"}}},
            ["d", "columns"],
        ),
        (
            {
                "d": {
                    "hf_hub_url": "org/d",
                    "ranking": True,
                    "columns": {"prompt": "p", "chosen": "c"},
                }
            },
            ["d", "columns"],
        ),
        ({"d": {"formatting": "sharegpt"}}, ["d"]),
        ({"d": {"file_name": "d.json", "num_samples": 0}}, ["d", "num_samples"]),
    ],
}


def _valid_cases():
    return [
        pytest.param(name, instance, id=f"{name}-{index}")
        for name, instances in VALID.items()
        for index, instance in enumerate(instances)
    ]


def _invalid_cases():
    return [
        pytest.param(name, instance, path, id=f"{name}-{index}")
        for name, cases in INVALID.items()
        for index, (instance, path) in enumerate(cases)
    ]


def test_tables_cover_every_dialect():
    assert set(VALID) == set(INVALID) == set(DIALECTS)


@pytest.mark.parametrize(("name", "instance"), _valid_cases())
def test_valid_records(name, instance):
    errors = [
        (list(e.absolute_path), e.message)
        for e in validator(name).iter_errors(instance)
    ]
    assert errors == []


@pytest.mark.parametrize(("name", "instance", "path"), _invalid_cases())
def test_invalid_records(name, instance, path):
    assert not validator(name).is_valid(instance)
    assert best_error_path(name, instance) == path


def test_error_path_reads_well():
    record = {
        "conversations": [*CONV, {"from": "human", "value": ["not", "a", "string"]}]
    }
    error = best_match(validator("sharegpt").iter_errors(record))
    assert (
        "/".join(str(part) for part in error.absolute_path) == "conversations/2/value"
    )
    assert error.message == "['not', 'a', 'string'] is not of type 'string'"
