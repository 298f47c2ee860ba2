"""Click parameter types for durations, key=value pairs and names: bad values exit 2 naming the flag."""

from __future__ import annotations

import functools
from collections.abc import Callable

import click

from orchestrator.core.durations import parse_duration
from orchestrator.core.errors import InputError


def fields_as_flags(flag_for: Callable[[str], str]):
    """A decorator naming a command's InputError fields as the flags the operator typed (``for`` →
    ``--for``); a field already named as a flag or argument (``-...``, ``NAME``), or none, stays."""

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except InputError as exc:
                if exc.field is None or exc.field.startswith("-") or exc.field == "NAME":
                    raise
                raise exc.renamed(flag_for(exc.field)) from None

        return wrapper

    return decorate


class DurationType(click.ParamType):
    name = "duration"

    def convert(self, value, param, ctx) -> float:
        if isinstance(value, float):
            return value
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        if seconds <= 0:
            self.fail(f"must be positive, got {value!r}", param, ctx)
        return seconds


class KeyValueType(click.ParamType):
    name = "key=value"
    separator = "="

    def convert(self, value, param, ctx) -> tuple[str, str]:
        if isinstance(value, tuple):
            return value
        key, sep, val = value.partition(self.separator)
        if not sep or not self.key_ok(key):
            self.fail(f"expected {self.name}, got {value!r}", param, ctx)
        return self.pair(key, val)

    def key_ok(self, key: str) -> bool:
        return bool(key)

    def pair(self, key: str, val: str) -> tuple[str, str]:
        return key, val


class NameType(click.ParamType):
    name = "name"

    def convert(self, value, param, ctx) -> str:
        from orchestrator.components.definition import check_name  # pydantic: only when a name is given

        try:
            return check_name(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


#: Largest row id the databases store (BIGINT); a larger one cannot name anything.
MAX_ID = 2**63 - 1

DURATION = DurationType()
#: An incident id as typed: a positive whole number that fits the database.
INCIDENT_ID = click.IntRange(1, MAX_ID)
KEY_VALUE = KeyValueType()
NAME = NameType()
