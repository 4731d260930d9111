"""The parser of ``train sft|dpo|kto``: TRL's ``TrlParser`` over :class:`TrainConfig`, with audiodata's conventions.

``HfArgumentParser`` (which ``TrlParser`` extends) makes the flags from the dataclass: one per field, from its
type, default and ``metadata={"help": ..., "aliases": [...]}``, in both spellings (``--lora_r``, ``--lora-r``),
``--no-use-lora`` for a boolean that defaults to true. ``--config FILE`` works as in TRL's own scripts: the file's
values become the parser's defaults (``TrlParser.set_defaults_with_config``), so a flag given on the command line
overrides the file, and the file's ``env:`` mapping is set as environment variables. On top of that, for
audiodata's command line:

- a field the command itself sets (``task``: the subcommand) gets no flag;
- ``--help`` lists one spelling per flag, the hyphenated one and audiodata's own names (``-o/--output``,
  ``--num-workers``); the underscore spellings and the TRL/transformers/LLaMA-Factory aliases
  (``--per_device_train_batch_size``, ``--cutoff_len``) parse the same, unlisted;
- every boolean takes ``--x``, ``--x false`` and ``--no-x`` (HfArgumentParser gives ``--no-x`` only to those that
  default to true, and a value-less ``--x`` only to those with a non-None default);
- a renamed flag (``--family``: ``--model-family``) still parses, with a deprecation note;
- the file's keys and values are checked by :meth:`TrainConfig.coerce` before they become defaults (an unknown key
  gets a "did you mean", a wrong type names the field), and a bad file is a usage error (exit 2).

What the parser returns is checked again, whole, by :meth:`TrainConfig.from_dict` (``trainer.cli.config_from_args``).
Importing this module imports trl's parser (about 0.4 s, no torch): ``trainer.cli`` does it only when a train
command is parsed.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
import types
import typing
from collections.abc import Iterable, Sequence
from typing import Any

from trl import TrlParser

from audiodata.cli.common import Parser
from audiodata.cli.flags import renamed
from trainer.config import ConfigError, TrainConfig, read_yaml

#: Aliases --help lists beside a field's own hyphenated flag: the names audiodata's commands give these concepts.
SHOWN_ALIASES = ("-o", "--output", "--num-workers", "--model-family")
#: Old spellings of a field's flag (old -> new): parsed for one more release with a deprecation note, never listed.
RENAMED = {"--family": "--model-family"}


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """HfArgumentParser's formatter (each flag's default shown), less "(default: None)" and the defaults of
    switches such as ``--no-use-lora``."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.nargs == 0 or action.default is None or action.default == "":
            return action.help
        return super()._get_help_string(action)


class TrainParser(Parser, TrlParser):
    """A ``TrlParser`` for ``dataclass_types`` (``[TrainConfig]``) that parses as audiodata's commands do (see the
    module docstring). ``fixed``: fields the command sets (``{"task": "dpo"}``), not flags; the parsed namespace
    has them."""

    def __init__(
        self, dataclass_types: Iterable[type] | None = None, *, fixed: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        self.fixed = dict(fixed or {})
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(dataclass_types=dataclass_types, **kwargs)  # type: ignore[arg-type]  # dataclass types
        self.set_defaults(**self.fixed)

    # -- the flags -------------------------------------------------------------------------------------------
    def _add_dataclass_arguments(self, dtype: Any) -> None:
        """HfArgumentParser's loop over the fields, on copies of them (it narrows ``Field.type`` in place, which
        would change the dataclass itself), less the ``fixed`` ones, each field's flags then fitted to audiodata's
        conventions."""
        self.add_argument("--config", metavar="FILE", help="YAML file of TrainConfig fields (and env:); flags override it")
        group = self.add_argument_group(f"{dtype.__name__} fields (also the keys of a --config file)")
        hints = typing.get_type_hints(dtype)
        for f in dataclasses.fields(dtype):
            if not f.init or f.name in self.fixed:
                continue
            f = copy.copy(f)
            f.type = hints[f.name]
            boolean = f.type is bool or f.type == (bool | None)
            if boolean and f.default is None:  # --x alone means true here too (HfArgumentParser wants a value)
                f.metadata = types.MappingProxyType({**f.metadata, "nargs": "?", "const": True})
            before = len(self._actions)
            self._parse_dataclass_field(group, f)  # type: ignore[arg-type]  # a group takes add_argument like a parser
            self._fit(group, f.name, self._actions[before:], boolean)

    def _fit(self, group: argparse._ArgumentGroup, name: str, added: list[argparse.Action], boolean: bool) -> None:
        """One field's flags: a ``--no-x`` for every boolean, one listed spelling each, the renamed ones noted."""
        hyphen = name.replace("_", "-")
        if boolean and len(added) == 1:
            added = [*added, group.add_argument(f"--no_{name}", f"--no-{hyphen}", action="store_false", dest=name)]
        if boolean:
            added[0].metavar = "BOOL"  # --x [BOOL]: true, false, yes, no, 1, 0
        own = {f"--{hyphen}", f"--no-{hyphen}"}
        for action in added:
            if action.nargs == 0:  # --no-x: the default is the field's, not this switch's
                action.default, action.help = argparse.SUPPRESS, f"the same as --{hyphen} false"
            strings = action.option_strings
            shown = [s for s in strings if s in SHOWN_ALIASES] + [s for s in strings if s in own and s not in RENAMED]
            hidden = [s for s in strings if s not in shown and s not in RENAMED]
            old = [s for s in strings if s in RENAMED]
            for s in hidden + old:
                del self._option_string_actions[s]
            action.option_strings = shown
            if hidden:  # the same flag under its other spellings, unlisted
                clone = copy.copy(action)
                clone.option_strings, clone.help = hidden, argparse.SUPPRESS
                group._add_action(clone)
            for s in old:
                renamed(self, RENAMED[s], s)

    # -- --config FILE ----------------------------------------------------------------------------------------
    def parse_known_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:  # type: ignore[override]
        """TrlParser's ``parse_args_and_config`` as a subcommand's parser needs it: the root parser hands this one
        its part of the command line, so ``--config`` is read here, before the flags are parsed."""
        args = list(sys.argv[1:] if args is None else args)
        path = _config_path(args)
        if path is not None:
            try:
                self.apply_config(path)
            except ConfigError as exc:
                self.error(str(exc))
        return super().parse_known_args(args, namespace)

    def apply_config(self, path: str) -> None:
        """A YAML file's values as the parser's defaults (flags then override them), checked first."""
        values = read_yaml(path)  # sets its env:
        for name, value in self.fixed.items():  # task: the file may name the command's own, no other
            given = values.pop(name, value)
            if given != value:
                raise ConfigError(f"{path}: {name} is {given!r}, but the command sets {value!r} (remove the key)")
        left = self.set_defaults_with_config(**TrainConfig.coerce(values, source=str(path)))
        if left:  # every field but the fixed ones has a flag: a new field the parser skipped
            raise ConfigError(f"{path}: {' '.join(left[::2])} cannot be set by this command")


def _config_path(args: list[str]) -> str | None:
    """The value of the last ``--config FILE`` / ``--config=FILE`` before a ``--``, as argparse would read it."""
    path = None
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg == "--config" and i + 1 < len(args):
            path = args[i + 1]
        elif arg.startswith("--config="):
            path = arg.split("=", 1)[1]
    return path


__all__ = ["RENAMED", "SHOWN_ALIASES", "HelpFormatter", "TrainParser"]
