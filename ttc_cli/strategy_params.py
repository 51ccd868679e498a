"""What each strategy takes, read from its own parameter model (``ttc_core.search.strategies``):
the one source for ``ttc strategies``, ``ttc run --help`` and the typing of ``--param``.

A ``--param KEY=VALUE`` is read as JSON first (``8``, ``true``, ``null``, ``{"confidence":
0.9}``, ``["\\n\\n"]``) and as a plain string otherwise, then checked against the field's
own type and bounds, so ``--param k=two`` is refused on the command line, naming ``k``,
before anything is sent.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from ttc_cli.usage import UsageError
from ttc_core.search.strategies import STRATEGIES, SamplingParams, Strategy, get_strategy


class ParamError(UsageError):
    """A param the strategy does not take, or a value its type refuses (one line)."""


def own_fields(strategy: Strategy[Any]) -> dict[str, FieldInfo]:
    """The strategy's fields beyond the shared sampling knobs, and the shared ones whose
    default it changes (step searches' ``max_tokens`` is per step)."""
    shared = SamplingParams.model_fields
    return {
        name: info
        for name, info in strategy.params_model.model_fields.items()
        if name not in shared or _default(info) != _default(shared[name])
    }


def type_name(annotation: Any) -> str:
    """A field's type as a reader wants it: ``int``, ``float or null``, ``best|majority``."""
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return "|".join(str(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        shown = [type_name(a) for a in args if a is not type(None)]
        return " or ".join(shown) + (" or null" if type(None) in args else "")
    if origin is not None:
        inner = ", ".join(type_name(a) for a in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "JSON object"
    return getattr(annotation, "__name__", str(annotation))


def _default(info: FieldInfo) -> Any:
    return info.get_default(call_default_factory=True)


def _shown_default(info: FieldInfo) -> str:
    default = _default(info)
    if default is PydanticUndefined:
        return "required"
    return "null" if default is None else repr(default)


def _field_lines(fields: Mapping[str, FieldInfo]) -> list[str]:
    return [
        f"    {name:<15} {type_name(info.annotation):<32} {_shown_default(info):<8}"
        f"{'  ' + info.description if info.description else ''}".rstrip()
        for name, info in fields.items()
    ]


def strategies_table() -> str:
    """Every strategy with its params, their types and defaults."""
    lines = [
        "every strategy also takes (with these defaults unless listed below):",
        *_field_lines(SamplingParams.model_fields),
    ]
    for name in sorted(STRATEGIES):
        strategy = STRATEGIES[name]
        scorer = "  [needs --prm]" if strategy.needs_step_scorer else ""
        lines.append(f"{name}: {strategy.summary}{scorer}")
        lines.extend(_field_lines(own_fields(strategy)) or ["    (no params of its own)"])
    return "\n".join(lines)


def parse_param(strategy_name: str, item: str, *, flag: str = "--param") -> tuple[str, Any]:
    """``KEY=VALUE`` as the strategy's field ``KEY`` takes it, in its JSON form (what the
    API is sent); :class:`ParamError` names the param (and ``flag``, the option it came
    from) when the strategy has no such field or the value does not fit it."""
    key, sep, raw = item.partition("=")
    fields = get_strategy(strategy_name).params_model.model_fields
    if not sep or not key:
        raise ParamError(f"{flag} {item}: give KEY=VALUE, e.g. {flag} n=8")
    said = f"{flag} {key}" if flag == "--param" else flag
    if key not in fields:
        raise ParamError(
            f"{said}: {strategy_name} takes no {key!r}; its params are "
            f"{', '.join(sorted(fields))} (`ttc strategies` lists them)"
        )
    info = fields[key]
    adapter: TypeAdapter[Any] = TypeAdapter(Annotated[info.annotation, info])  # type: ignore[arg-type]
    try:
        value = adapter.validate_json(raw)
    except ValidationError as as_json:
        try:
            value = adapter.validate_strings(raw)
        except ValidationError as as_text:
            # An object or a list was meant as JSON: its error says which part is wrong.
            exc = as_json if raw.lstrip()[:1] in ("{", "[") else as_text
            inner = ".".join(str(p) for p in exc.errors()[0]["loc"])
            why = (
                f"{key}.{inner}: {_first_message(exc)}"
                if inner
                else f"{key} takes {type_name(info.annotation)} ({_first_message(exc)})"
            )
            raise ParamError(f"{said}={raw}: {strategy_name}'s {why}") from None
    return key, adapter.dump_python(value, mode="json")


def check_params(strategy_name: str, params: dict[str, Any]) -> None:
    """The whole set, as the server will check it (rules across fields, such as
    ``beam_width`` dividing ``n``)."""
    try:
        get_strategy(strategy_name).parse_params(params)
    except ValidationError as exc:
        where = ".".join(str(p) for p in exc.errors()[0]["loc"])
        shown = " ".join(f"{k}={json.dumps(v)}" for k, v in params.items()) or "defaults"
        raise ParamError(
            f"{strategy_name} params{'.' + where if where else ''} ({shown}): {_first_message(exc)}"
        ) from None


def _first_message(exc: ValidationError) -> str:
    return str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
