"""Settings problems, one line each, naming the setting's path and the nearest valid name.

A misspelled key must not pass silently (``max_concurency`` would leave the default in
force) and must not end ``ttc serve`` in a pydantic traceback either::

    endpoints.local.max_concurency: unknown; did you mean max_concurrency?
    TTC_MAX_DEPHT: unknown setting; did you mean TTC_MAX_DEPTH?

:func:`load_settings` is what the CLI's long-running commands (``serve``, ``worker``,
``beat``) call at start-up; it raises :class:`SettingsError`, whose lines they print.
"""

from __future__ import annotations

import difflib
import os
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from ttc_core.settings import Settings

#: Environment variables with the ``TTC_`` prefix that are not settings of the service:
#: the CLI client's (``ttc run``) and the test and benchmark tooling's.
CLIENT_VARIABLES = frozenset({"TTC_SERVER", "TTC_API_KEY", "TTC_SHARED_DATA"})
TOOLING_PREFIXES = ("TTC_TEST_", "TTC_CONFORMANCE_", "TTC_BENCH_", "TTC_SIM_")


class SettingsError(ValueError):
    """The settings can't be used; ``lines`` says why, one problem per line."""

    def __init__(self, lines: Sequence[str]) -> None:
        self.lines = list(lines)
        super().__init__("; ".join(self.lines))


def _nearest(name: str, candidates: Iterable[str]) -> str | None:
    found = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return found[0] if found else None


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model an annotation holds, looking through Optional/Annotated."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _is_mapping(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _is_mapping(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return any(_is_mapping(a) for a in typing.get_args(annotation))
    return origin in (dict, Mapping)


def _is_sequence(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _is_sequence(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return any(_is_sequence(a) for a in typing.get_args(annotation))
    return origin in (list, tuple, Sequence)


def _owner_of(root: type[BaseModel], loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The model that holds the last element of ``loc`` (for an unknown key: where it is)."""
    model: type[BaseModel] | None = root
    skip = False
    for part in loc[:-1]:
        if skip:  # a dict key or a list index
            skip = False
            continue
        if model is None or not isinstance(part, str) or part not in model.model_fields:
            return None
        annotation = model.model_fields[part].annotation
        skip = _is_mapping(annotation) or _is_sequence(annotation)
        model = _model_in(annotation)
    return None if skip else model


def _path(loc: Sequence[int | str]) -> str:
    return ".".join(str(part) for part in loc) or "settings"


def describe(exc: ValidationError, root: type[BaseModel] = Settings) -> list[str]:
    """One line per error of ``exc`` (raised while building ``root``)."""
    lines = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        path = _path(loc)
        if error["type"] == "extra_forbidden":
            owner = _owner_of(root, loc)
            near = _nearest(str(loc[-1]), owner.model_fields) if owner else None
            hint = f"; did you mean {near}?" if near else ""
            lines.append(f"{path}: unknown{hint}")
        elif error["type"] == "missing":
            lines.append(f"{path}: required")
        else:
            message = str(error["msg"]).removeprefix("Value error, ")
            lines.append(f"{path}: {message}")
    return lines


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """``TTC_*`` variables that name no setting (a typo would silently keep a default)."""
    environ = os.environ if environ is None else environ
    known = {f"TTC_{name.upper()}" for name in Settings.model_fields}
    lines = []
    for name in sorted(environ):
        if not name.startswith("TTC_") or name in known or name in CLIENT_VARIABLES:
            continue
        if name.startswith(TOOLING_PREFIXES):
            continue
        near = _nearest(name, known)
        hint = f"; did you mean {near}?" if near else ""
        lines.append(f"{name}: unknown setting{hint}")
    return lines


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment (plus ``overrides``), refusing unknown names."""
    problems = unknown_variables()
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError([*problems, *describe(exc)]) from None
    except ValueError as exc:  # e.g. TTC_ENDPOINTS that is not JSON
        raise SettingsError([*problems, f"settings: {exc}"]) from None
    if problems:
        raise SettingsError(problems)
    return settings
