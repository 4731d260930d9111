"""The library versions a training run needs, per model family, against what is installed.

A processor or library version mismatch is the commonest reason a queued GPU job dies hours in
(a renamed processor argument, a model class that does not exist yet). The floors below are the
``train`` extra of ``pyproject.toml`` (``tests/training/test_trainer_preflight.py`` keeps them equal) plus
what each family, and options such as QLoRA, need on top; :func:`check_versions` compares them with
the installed distributions without importing any of them.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from typing import Any

#: What every run needs: the ``train`` extra's floors (pyproject.toml).
#: jiwer scores WER/CER at each evaluation: missing, an ASR run would fail at its first eval step.
REQUIRED: dict[str, str] = {
    "torch": "2.4", "transformers": "5.2", "trl": "1.16", "peft": "0.21", "accelerate": "1.10", "jiwer": "4.0",
}  # fmt: skip

#: Per family, floors above :data:`REQUIRED` where the family needs more. Both model classes came to
#: transformers well before 5.2 (Qwen2-Audio in 4.45, Qwen2.5-Omni's thinker in 4.52), so today these
#: only record that; a family that needs a newer release says so here.
FAMILY_REQUIRED: dict[str, dict[str, str]] = {
    "qwen2-audio": {"transformers": "4.45"},
    "qwen2.5-omni": {"transformers": "4.52"},
}

#: Needed only by some configurations: (config field, package, floor, why).
OPTION_REQUIRED: tuple[tuple[str, str, str, str], ...] = (
    ("load_in_4bit", "bitsandbytes", "0.46", "QLoRA's 4-bit layers"),
    ("deepspeed", "deepspeed", "0.9.3", "DeepSpeed ZeRO"),  # transformers' own floor
)

#: Reported, never required: (package, floor, upper bound or None, what it is for).
OPTIONAL: tuple[tuple[str, str | None, str | None, str], ...] = (
    ("torchcodec", "0.13", "0.14", "datasets' Audio decoding (the trainer decodes clips with soundfile)"),
    ("torchvision", None, None, "Qwen2.5-Omni's full processor (without it: the audio-only one)"),
    ("datasets", "5.2", "6", "reading the shards"),
)


@dataclass
class PackageCheck:
    package: str
    installed: str | None
    required: str | None  # floor, ">= x"
    below: str | None = None  # upper bound, "< y"
    needed: bool = True  # False: optional, a problem is a warning
    why: str = ""

    @property
    def status(self) -> str:
        if self.installed is None:
            return "fail" if self.needed else "ok"
        if not _at_least(self.installed, self.required) or (self.below and _at_least(self.installed, self.below)):
            return "fail" if self.needed else "warn"
        return "ok"

    @property
    def wanted(self) -> str:
        parts = [f">={self.required}"] if self.required else []
        if self.below:
            parts.append(f"<{self.below}")
        return ",".join(parts) or "any"

    def problem(self) -> str | None:
        """One line naming the package, what is installed and what is required (None when fine)."""
        if self.status == "ok":
            return None
        spec = f"{self.package}{self.wanted}"
        if self.installed is None:
            return f"{self.package} is not installed; {self.why or 'training'} needs {spec}: pip install '{spec}'"
        return f"{self.package} {self.installed} is installed; {self.why or 'training'} needs {spec}: pip install '{spec}'"

    def to_dict(self) -> dict[str, Any]:
        return {"installed": self.installed, "required": self.wanted, "needed": self.needed, "status": self.status}


def installed_version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def requirements(family: str | None, options: dict[str, Any]) -> list[PackageCheck]:
    """What a run of ``family`` with the config ``options`` (field -> value) needs, and what is installed."""
    floors = dict(REQUIRED)
    for package, floor in FAMILY_REQUIRED.get(family or "", {}).items():
        floors[package] = max(floors.get(package, floor), floor, key=_parse)
    out = [PackageCheck(p, installed_version(p), v, why=f"the trainer ({family or 'any family'})") for p, v in floors.items()]
    for field_name, package, floor, why in OPTION_REQUIRED:
        if options.get(field_name):
            out.append(PackageCheck(package, installed_version(package), floor, why=f"{field_name} ({why})"))
    for package, least, below, why in OPTIONAL:
        out.append(PackageCheck(package, installed_version(package), least, below, needed=False, why=why))
    return out


def declared_conflicts(checks: list[PackageCheck]) -> list[str]:
    """Installed packages outside the range the installed transformers itself declares (its
    ``dependency_versions_table``): it imports fine, and may fail where it uses them."""
    try:
        from packaging.requirements import InvalidRequirement, Requirement
        from transformers.dependency_versions_table import deps
    except ImportError:
        return []
    out = []
    for c in checks:
        if c.installed is None or c.package not in deps or c.package == "transformers":
            continue
        try:
            spec = Requirement(deps[c.package]).specifier
        except InvalidRequirement:
            continue
        if spec and not spec.contains(c.installed, prereleases=True):
            transformers = installed_version("transformers")
            out.append(f"{c.package} {c.installed} is installed; transformers {transformers} declares {deps[c.package]}")
    return out


def _parse(version: str) -> Any:
    from packaging.version import InvalidVersion, Version

    try:
        return Version(version)
    except InvalidVersion:
        return Version("0")


def _at_least(installed: str, floor: str | None) -> bool:
    return floor is None or _parse(installed) >= _parse(floor)
