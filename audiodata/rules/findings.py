"""A finding: one rule firing on one record, located to the field."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from audiodata.records import SourceLoc
from audiodata.rules.registry import Severity, get


@dataclass(frozen=True, slots=True)
class Finding:
    code: str
    message: str
    field: str = ""
    source: SourceLoc | None = None

    @property
    def severity(self) -> Severity:
        return get(self.code).severity

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def located(self, source: SourceLoc) -> Finding:
        return Finding(self.code, self.message, self.field, source)

    def reason(self) -> dict[str, Any]:
        """The finding without its location: what rejects.jsonl lists per record."""
        out: dict[str, Any] = {"code": self.code, "severity": self.severity.value, "message": self.message}
        if self.field:
            out["field"] = self.field
        return out

    def to_dict(self) -> dict[str, Any]:
        out = self.reason()
        if self.source is not None:
            out.update(source=self.source.file, index=self.source.index, line=self.source.line)
            if self.source.member:
                out["member"] = self.source.member
        return out

    def __str__(self) -> str:
        where = f"{self.source}: " if self.source else ""
        fld = f" [{self.field}]" if self.field else ""
        return f"{where}{self.code}{fld} {self.message}"
