"""Hostile output: what a random-weight model and a misbehaving server send.

A tiny random-weight model served by vLLM writes garbage with U+FFFD, control characters
and sometimes NUL; servers have been seen sending lone surrogates, bytes that are not
UTF-8 and negative usage. These knobs (``output_*``, ``usage_style`` in
:class:`~ttc_sim.config.SimConfig`) make the simulator send the same, deterministically.

Bytes that are not UTF-8 cannot live in a Python string, so a placeholder character stands
for each in the text, and :func:`to_wire` swaps the JSON escape of each placeholder for a
raw invalid byte in the encoded body.
"""

from __future__ import annotations

from typing import Any

from .config import SimConfig
from .rng import rng_for

__all__ = ["INVALID_BYTE", "corrupt_tokens", "garbage_tokens", "to_wire", "usage_as_sent"]

#: Stands for one byte that is not UTF-8 until :func:`to_wire` encodes the body.
INVALID_BYTE = "\ue0ff"
_INVALID_ESCAPED = b"\\ue0ff"
_SURROGATES = ("\ud800", "\udbff", "\udc00", "\udfff", "\ud83d")
_GARBAGE_WORDS = ("ly", "ĠĠ", "aff", "ingu", "ÃĽ", "##", "ecd", "oss", "ĊĊ", "ttp", "vm")
_GARBAGE_CHARS = ("\x01", "\x07", "\x1b", "\x7f", "\ufffd", "\u200b", "\x0c", "\t", "\n")


def _spread(tokens: list[str], extra: list[str], key: tuple[Any, ...]) -> list[str]:
    """``tokens`` with each of ``extra`` glued to a token chosen at random (the token
    count, hence the usage, stays the same)."""
    if not extra:
        return tokens
    out = list(tokens) or [""]
    r = rng_for("hostile", *key)
    for piece in extra:
        i = r.randrange(len(out))
        out[i] = out[i] + piece if r.random() < 0.5 else piece + out[i]
    return out


def corrupt_tokens(tokens: list[str], cfg: SimConfig, key: tuple[Any, ...]) -> list[str]:
    """``tokens`` with the configured NULs, lone surrogates and invalid bytes in them."""
    extra = (
        ["\x00"] * cfg.output_nul
        + [_SURROGATES[i % len(_SURROGATES)] for i in range(cfg.output_surrogates)]
        + [INVALID_BYTE] * cfg.output_invalid_utf8
    )
    return _spread(tokens, extra, key)


def garbage_tokens(count: int, key: tuple[Any, ...]) -> list[str]:
    """``count`` tokens of random-weight-model output."""
    r = rng_for("garbage", *key)
    out: list[str] = []
    for _ in range(count):
        u = r.random()
        if u < 0.08:
            out.append("\x00")
        elif u < 0.3:
            out.append(r.choice(_GARBAGE_CHARS))
        elif u < 0.36:
            out.append(INVALID_BYTE)
        else:
            out.append(r.choice(_GARBAGE_WORDS))
    return out


def usage_as_sent(use: dict[str, int], style: str) -> dict[str, Any] | None:
    """The ``usage`` object a server of ``style`` sends for the real ``use`` (None: none)."""
    if style == "exact":
        return use
    if style == "missing":
        return None
    if style == "negative":
        return {k: -v - 1 for k, v in use.items()}
    if style == "float":
        return {k: v + 0.5 for k, v in use.items()}
    if style == "string":
        return {k: f"{v} tokens" for k, v in use.items()}
    if style == "bool":
        return {k: True for k in use}
    if style == "huge":
        return {k: 10**15 + v for k, v in use.items()}
    raise ValueError(f"unknown usage_style {style!r}")


def to_wire(body: bytes) -> bytes:
    """An encoded JSON body with each placeholder's escape replaced by a raw 0xFF byte."""
    return body.replace(_INVALID_ESCAPED, b"\xff") if _INVALID_ESCAPED in body else body
