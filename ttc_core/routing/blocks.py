"""Prefix blocks of a prompt, hashed as chains (the way vLLM and SGLang key their caches).

The text is cut into blocks of ``block_chars`` characters; block i's hash covers blocks
0..i, so two texts share block i's hash exactly when they share their first ``i + 1``
blocks. Only whole blocks count, as in a server's KV cache. The hash is blake2b, the same
in every process (``hash()`` of a string is salted per process), so all workers agree.
"""

from __future__ import annotations

import hashlib


def chain_hashes(text: str, block_chars: int, start: int = 0, seed: bytes = b"") -> list[bytes]:
    """The chain hashes of the whole blocks of ``text`` from character ``start`` (a block
    boundary), continuing the chain from ``seed`` (the hash of the block before)."""
    out: list[bytes] = []
    previous = seed
    # Blocks are cut in characters and hashed as bytes.
    for begin in range(start, len(text) - block_chars + 1, block_chars):
        block = text[begin : begin + block_chars].encode("utf-8", "surrogatepass")
        previous = hashlib.blake2b(previous + block, digest_size=12).digest()
        out.append(previous)
    return out


def point(data: bytes | str) -> int:
    """A position on the hash ring (64 bits)."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "big")
