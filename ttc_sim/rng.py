"""Stable seeds: every random draw in the simulator comes from ``random.Random`` seeded with a
hash of its inputs (hashlib, never Python's salted ``hash``), so runs repeat across processes."""

from __future__ import annotations

import hashlib
import random


def stable_seed(*parts: object) -> int:
    """A 64-bit integer determined by ``parts`` (by their ``str``)."""
    data = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def rng_for(*parts: object) -> random.Random:
    """A ``random.Random`` seeded from ``parts``."""
    return random.Random(stable_seed(*parts))


def text_digest(text: str, size: int = 8) -> str:
    """A short hex digest of ``text``."""
    return hashlib.blake2b(text.encode(), digest_size=size).hexdigest()
