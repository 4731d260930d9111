"""The output JSON Schema is generated from the one schema definition and matches real rows."""

from __future__ import annotations

import base64
import json

import pyarrow.parquet as pq
from jsonschema import Draft202012Validator

from audiodata.writer.schema import COLUMNS, dump_output_schema, features
from tests.conftest import REPO


def test_committed_schema_is_in_sync():
    assert (REPO / "schemas/output.schema.json").read_text() == dump_output_schema(), "run `make schemas`"


def test_rows_validate_against_the_schema(sample_out):
    out, _ = sample_out
    schema = json.loads((REPO / "schemas/output.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    for path in sorted((out / "data").rglob("*.parquet")):
        for row in pq.read_table(path).to_pylist()[:5]:
            for a in row["audios"]:
                a["bytes"] = base64.b64encode(a["bytes"]).decode()
            errors = list(validator.iter_errors(row))
            assert not errors, errors[0].message


def test_parquet_schema_comes_from_the_same_definition(sample_out):
    out, _ = sample_out
    for kind in ("sft", "dpo"):
        written = pq.read_schema(out / f"data/{kind}/train-00000-of-00001.parquet")
        assert written.remove_metadata() == features(kind, 16000).arrow_schema.remove_metadata()
        assert written.names == [c.name for c in COLUMNS if kind in c.kinds]
