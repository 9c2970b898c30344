"""JSON records: one frozen dataclass per object of a file, fields in the order the file holds them.

A reader and a writer of the same file share the record, so a key cannot be written
under one name and read under another. :func:`record_to_json` writes a record as plain
JSON types; :func:`read_record` builds one from parsed JSON, checking every key and the
kind of every value, and raises :class:`ArtifactError` naming the file, the key and the
fix. Conventions a record class may use:

* ``OMIT_WHEN_EMPTY``: fields left out of the file when ``None`` or empty, read back as
  ``None`` or ``{}`` when absent.
* a field named ``as_written``: the whole object as read, for keys the pipeline writes
  but no reader needs; the typed fields are written over it.

The record of a whole file derives from :class:`JsonFile` as well, which names the file
in errors and gives it ``to_json``, ``from_json`` and ``read``.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pipeline.errors import PipelineInputError


class ArtifactError(PipelineInputError):
    """A stage's JSON output lacks a key its reader needs, or holds a value of the wrong kind."""


def record_to_json(value: Any) -> Any:
    """Plain JSON types of a record (dataclasses, mappings and sequences of them)."""
    if is_dataclass(value):
        omit = getattr(value, "OMIT_WHEN_EMPTY", frozenset())
        out = dict(getattr(value, "as_written", {}))
        for f in fields(value):
            item = getattr(value, f.name)
            if f.name != "as_written" and not (f.name in omit and (item is None or item == {})):
                out[f.name] = record_to_json(item)
        return out
    if isinstance(value, Mapping):
        return {key: record_to_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [record_to_json(item) for item in value]
    return value


class Reading:
    """Where a value comes from, for error messages: the kind of file, its path, the fix."""

    def __init__(self, what: str, file: str, fix: str) -> None:
        self.what, self.file, self.fix = what, file, fix

    def error(self, key: str, rule: str, value: Any) -> ArtifactError:
        if value is _MISSING:
            return ArtifactError(f"{self.what} {self.file!r} must have the key {key!r}; it is missing. {self.fix}")
        return ArtifactError(f"{self.what} {self.file!r} must have {key!r} {rule}; got {value!r}. {self.fix}")


_MISSING = object()
_SCALARS: dict[Any, tuple[type, ...]] = {str: (str,), int: (int,), float: (int, float), bool: (bool,)}
_KIND_NAMES = {str: "string", int: "integer", float: "number", bool: "boolean"}


def read_record(cls: type, data: Any, key: str, reading: Reading) -> Any:
    """An instance of the record ``cls`` from parsed JSON ``data`` found at ``key`` ("" for the top)."""
    if not isinstance(data, Mapping):
        raise reading.error(key or "the top level", "as a JSON object", data)
    hints = typing.get_type_hints(cls)
    omit = getattr(cls, "OMIT_WHEN_EMPTY", frozenset())
    values: dict[str, Any] = {}
    for f in fields(cls):
        name = f"{key}.{f.name}" if key else f.name
        if f.name == "as_written":
            values[f.name] = dict(data)
        elif f.name in data:
            values[f.name] = _read_value(hints[f.name], data[f.name], name, reading)
        elif f.name in omit:
            values[f.name] = {} if typing.get_origin(hints[f.name]) is Mapping else None
        else:
            raise reading.error(name, "", _MISSING)
    return cls(**values)


def _read_value(hint: Any, value: Any, key: str, reading: Reading) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (kind,) = [a for a in args if a is not type(None)]
        return _read_value(kind, value, key, reading)
    if is_dataclass(hint):
        return read_record(hint, value, key, reading)
    if origin is Mapping:
        if not isinstance(value, Mapping):
            raise reading.error(key, "as a JSON object", value)
        return {k: _read_value(args[1], v, f"{key}.{k}", reading) for k, v in value.items()}
    if origin is tuple:
        if not isinstance(value, list) or (args[-1] is not Ellipsis and len(value) != len(args)):
            raise reading.error(key, "as a list" if args[-1] is Ellipsis else f"as a list of {len(args)} values", value)
        return tuple(_read_value(args[0], v, f"{key}[{i}]", reading) for i, v in enumerate(value))
    if (isinstance(value, bool) and hint is not bool) or not isinstance(value, _SCALARS[hint]):
        raise reading.error(key, f"as a JSON {_KIND_NAMES[hint]}", value)
    return value


def read_json_object(path: str | Path, what: str, fix: str) -> Any:
    """The parsed content of a JSON file, or an :class:`ArtifactError` naming it and the fix."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{what} {str(path)!r} must exist; it was not found. {fix}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ArtifactError(f"{what} {str(path)!r} must be valid JSON; got {err}. {fix}") from err


FileRecord = TypeVar("FileRecord", bound="JsonFile")


class JsonFile:
    """Base of the record of a whole JSON file (a frozen dataclass too).

    Attributes:
        WHAT: the file as errors name it (``"metrics file"``).
        FIX: what to do when it is missing or broken (``"run the stage again"``).
    """

    WHAT: ClassVar[str]
    FIX: ClassVar[str]

    def to_json(self) -> dict[str, Any]:
        """The file's content as plain JSON types."""
        return record_to_json(self)

    @classmethod
    def from_json(cls: type[FileRecord], data: Any, *, file: str) -> FileRecord:
        """The record of parsed JSON ``data`` read from ``file``.

        Raises:
            ArtifactError: naming ``file`` and the first missing or mistyped key.
        """
        return read_record(cls, data, "", Reading(cls.WHAT, file, cls.FIX))

    @classmethod
    def read(cls: type[FileRecord], path: str | Path) -> FileRecord:
        """The record of the file at ``path`` (missing, not JSON or not valid: :class:`ArtifactError`)."""
        return cls.from_json(read_json_object(path, cls.WHAT, cls.FIX), file=str(path))
