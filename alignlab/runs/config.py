"""Study configs whose fields *are* the CLI options: one source for the name, default, help text and validation.

A study's ``config.py`` declares a dataclass that inherits :class:`StudyConfig` and declares each field with
:func:`option`::

    @dataclass
    class BBQConfig(StudyConfig):
        limit: int | None = option(None, "At most this many questions per category.", minimum=1)

``alignlab <study> <command> --help`` is built from these fields (``cli_common.study_command``), the whole config
is saved in the run's manifest (:meth:`StudyConfig.as_dict`) and read back on ``--resume``
(:meth:`StudyConfig.from_dict`). Validation runs in ``__post_init__``, so Python and the CLI refuse the same
values with the same message.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass
from typing import Any, TypeVar

C = TypeVar("C", bound="StudyConfig")


@dataclass(frozen=True)
class Flag:
    """How one config field appears on the command line."""

    help: str = ""
    flag: str | None = None  # default: --field-name
    short: str | None = None  # e.g. "-n"
    argument: bool = False  # positional argument(s) instead of an option
    csv: bool = False  # a list field given as one comma-separated value ("q,if,cot")
    minimum: float | None = None  # numbers: the smallest value allowed (None always allowed for optional fields)
    maximum: float | None = None
    choices: tuple[str, ...] | None = None  # strings (or each element of a list) must be one of these
    cli: bool = True  # False: set from Python (or a resumed manifest) only

    def name_for(self, field_name: str) -> str:
        return self.flag or "--" + field_name.replace("_", "-")


def option(default: Any = MISSING, help: str = "", *, factory: Callable[[], Any] | None = None,
           **flag: Any) -> Any:
    """A config field with its CLI spelling (see :class:`Flag`). ``factory`` builds a mutable default."""
    metadata = {"cli": Flag(help=help, **flag)}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def flag_of(field: dataclasses.Field[Any]) -> Flag:
    return field.metadata.get("cli") or Flag()


class StudyConfig:
    """Base of every study's config dataclass: checks ranges and choices, saves and restores itself."""

    def __post_init__(self) -> None:
        check_fields(self)

    def as_dict(self) -> dict[str, Any]:
        """Every field, as saved in the manifest (``config.study``); run-time state (``init=False``) is left out."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)  # type: ignore[arg-type]
                if f.init}

    @classmethod
    def from_dict(cls: type[C], saved: Mapping[str, Any]) -> C:
        """Rebuild a config saved by :meth:`as_dict`; keys this version does not know are ignored."""
        names = {f.name for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in saved.items() if k in names})


def check_fields(config: Any) -> None:
    """Raise ``ValueError`` naming the field and its flag when a value is outside its declared range or choices."""
    for field in dataclasses.fields(config):
        flag = flag_of(field)
        value = getattr(config, field.name)
        where = f"{field.name} ({flag.name_for(field.name)})" if flag.cli else field.name
        if value is None:
            continue
        if flag.minimum is not None or flag.maximum is not None:
            for number in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(number, bool) or not isinstance(number, (int, float)):
                    raise ValueError(f"{where} must be a number, got {number!r}")
                if flag.minimum is not None and number < flag.minimum:
                    raise ValueError(f"{where} must be at least {_num(flag.minimum)}, got {number}")
                if flag.maximum is not None and number > flag.maximum:
                    raise ValueError(f"{where} must be at most {_num(flag.maximum)}, got {number}")
        if flag.choices is not None:
            for choice in value if isinstance(value, (list, tuple)) else [value]:
                if choice not in flag.choices:
                    raise ValueError(f"{where} must be one of {', '.join(flag.choices)}; got {choice!r}")


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    return value
