"""Reading ``params.yaml`` and checking its values, with errors a user can act on.

Every check raises :class:`~pipeline.errors.ConfigError` naming the key, the rule, the
value received and a hint. Defaults live in ``params.yaml`` alone: a config dataclass
has no field defaults, so a key deleted from the file stops the stage naming that key
instead of falling back to a value written somewhere else.
"""

from __future__ import annotations

import codecs
import dataclasses
from pathlib import Path
from typing import Any, Mapping

import yaml

from pipeline.errors import ConfigError


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """Read ``params.yaml`` into a dict; a missing or non-mapping file is a clear error."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"params file {str(path)!r} must exist; it was not found. "
            "Run the stage from the repository root, where params.yaml lives."
        )
    with path.open() as handle:
        params = yaml.safe_load(handle) or {}
    if not isinstance(params, dict):
        raise ConfigError(
            f"params file {str(path)!r} must hold a mapping of sections; got {type(params).__name__}."
        )
    return params


def section(params: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """Return ``params[name]``, failing with a hint when the section is missing."""
    value = params.get(name)
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"params section {name!r} must be a mapping; got {value!r}. "
            f"Add a '{name}:' block to params.yaml (see the README for its keys)."
        )
    return value


def require(values: Mapping[str, Any], prefix: str, key: str) -> Any:
    """Return ``values[key]``; a missing key names its full dotted path."""
    if key not in values:
        raise ConfigError(
            f"params key '{prefix}.{key}' must be set; it is missing. "
            f"Add it under '{prefix}:' in params.yaml."
        )
    return values[key]


def fields_of(values: Mapping[str, Any], cls: type, prefix: str, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The keys of a params section that ``cls`` declares, every one of them present.

    An unknown key is a typo and stops with the valid ones; a missing key stops naming it.
    Values pass as YAML read them (lists stay lists, so an error shows what the file says);
    each ``__post_init__`` converts what it checks.
    """
    names = [f.name for f in dataclasses.fields(cls) if f.name not in skip]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ConfigError(
            f"params keys under {prefix!r} must be among {sorted(names)}; got unknown {unknown}. "
            "Check the spelling in params.yaml."
        )
    missing = [f"{prefix}.{name}" for name in names if name not in values]
    if missing:
        raise ConfigError(
            f"params keys {missing} must be set; they are missing. Add them under '{prefix}:' in params.yaml "
            "(the repository's params.yaml lists every key with its usual value)."
        )
    return dict(values)


def check_range(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    integer: bool = False,
) -> None:
    """Check a number against an interval; ``*_open`` excludes that end."""
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind):
        wanted = "an integer" if integer else "a number"
        raise ConfigError(f"{name!r} must be {wanted}; got {value!r}.")
    lo_bad = low is not None and (value <= low if low_open else value < low)
    hi_bad = high is not None and (value >= high if high_open else value > high)
    if lo_bad or hi_bad:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        interval = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
        raise ConfigError(f"{name!r} must be in {interval}; got {value!r}.")


def check_bool(name: str, value: Any) -> None:
    """``true`` or ``false``; YAML's 1/0 or 'yes' strings are refused, not guessed."""
    if not isinstance(value, bool):
        raise ConfigError(f"{name!r} must be true or false; got {value!r}.")


def check_int_tuple(name: str, value: Any, *, length: int | None = None, low: int = 1) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(f"{name!r} must be a non-empty list of integers; got {value!r}.")
    if length is not None and len(value) != length:
        raise ConfigError(f"{name!r} must have {length} entries; got {len(value)}: {value!r}.")
    for item in value:
        check_range(name, item, low=low, integer=True)
    return tuple(int(v) for v in value)


def check_float_tuple(name: str, value: Any, *, length: int) -> tuple[float, ...]:
    if not isinstance(value, (list, tuple)) or len(value) != length:
        raise ConfigError(f"{name!r} must be a list of {length} numbers; got {value!r}.")
    for item in value:
        check_range(name, item)
    return tuple(float(v) for v in value)


def check_ordered_pair(name: str, value: Any, *, hint: str = "") -> tuple[float, float]:
    """``[low, high]`` numbers with ``low < high``."""
    low, high = check_float_tuple(name, value, length=2)
    if low >= high:
        raise ConfigError(f"{name!r} must be [low, high] with low < high; got {[low, high]}.{hint}")
    return low, high


def check_names(name: str, value: Any) -> tuple[str, ...]:
    """A list of distinct, non-empty column names."""
    if not isinstance(value, (list, tuple)) or not all(isinstance(s, str) and s for s in value):
        raise ConfigError(f"{name!r} must be a list of column names; got {value!r}.")
    if len(set(value)) != len(value):
        raise ConfigError(f"{name!r} must not repeat a column; got {list(value)!r}.")
    return tuple(value)


def check_codec(name: str, value: Any) -> None:
    """``auto`` or a codec Python knows (``cp1252``, ``latin-1``, ``utf-16``)."""
    try:
        if value != "auto":
            codecs.lookup(value)
    except (LookupError, TypeError):
        raise ConfigError(
            f"{name!r} must be 'auto' or a Python codec name such as 'cp1252' or 'latin-1'; got {value!r}."
        ) from None
