"""Upstream error bodies, summarized and with secrets taken out, before anyone sees them.

An inference server's error body is untrusted text that reaches nodes (``meta.error``),
job events and logs, which tenants read. Some servers and proxies echo the request back,
headers included, so the endpoint's API key can be in it. :func:`upstream_summary` keeps
a bounded prefix with whitespace collapsed and replaces, with ``[redacted]``: the
endpoint's configured key (wherever it appears), ``Authorization`` / ``Proxy-
Authorization`` / ``X-Api-Key`` / ``Api-Key`` / ``Cookie`` header values, ``Bearer`` and
``Basic`` credentials, and tokens shaped like API keys (``sk-...``, ``ttc_...``,
``hf_...``, ``gsk_...``, ``AIza...``, ``xai-...``, JWTs).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["MAX_SUMMARY_CHARS", "REDACTED", "redact", "upstream_summary"]

REDACTED = "[redacted]"
#: Longest summary of an upstream body.
MAX_SUMMARY_CHARS = 300

_HEADER = re.compile(
    r"""(?ix)
    (["']?(?:proxy-)?authorization|["']?x-api-key|["']?api[-_]key|["']?cookie|["']?set-cookie)
    (["']?\s*[:=]\s*["']?)
    ([^"'\r\n,}]*)
    """
)
_SCHEME = re.compile(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{4,}")
_KEYLIKE = re.compile(
    r"""(?x)
    \b(?:
        sk-[A-Za-z0-9_-]{8,}
      | ttc_[A-Za-z0-9]{8,}
      | hf_[A-Za-z0-9]{8,}
      | gsk_[A-Za-z0-9]{8,}
      | xai-[A-Za-z0-9]{8,}
      | AIza[A-Za-z0-9_-]{20,}
      | eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*
    )
    """
)
_SPACE = re.compile(r"\s+")


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with ``secrets`` (exact values) and anything credential-shaped replaced."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    text = _HEADER.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)
    text = _SCHEME.sub(lambda m: m.group(1) + " " + REDACTED, text)
    return _KEYLIKE.sub(REDACTED, text)


def upstream_summary(
    body: str, secrets: Iterable[str | None] = (), limit: int = MAX_SUMMARY_CHARS
) -> str:
    """A bounded, single-line, redacted summary of an upstream response body.

    Secrets are removed from the whole body before it is cut, so a key split by the cut
    cannot leave a usable prefix behind.
    """
    flat = _SPACE.sub(" ", redact(body, secrets)).strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
