"""The README's embedded-mode shell blocks run as written, in order.

A block marked ``<!-- readme: runs -->`` on the line before its fence is extracted and run
with ``bash -euo pipefail`` in a fresh directory, after ``ttc demo`` (what ``make demo``
runs), with ``.venv`` pointing at this interpreter's environment: the state a newcomer
has after the README's first command.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
MARK = "<!-- readme: runs -->"
BLOCK = re.compile(re.escape(MARK) + r"\s*\n```(?:bash|sh)\n(.*?)\n```", re.DOTALL)


def runnable_blocks(text: str) -> list[str]:
    return BLOCK.findall(text)


def test_the_marked_blocks_are_found() -> None:
    text = README.read_text()
    blocks = runnable_blocks(text)
    # Every mark is followed by a shell block (a mark before anything else is a typo).
    assert len(blocks) == text.count(MARK) >= 2
    assert any("ttc tree" in b for b in blocks) and any("ttc run" in b for b in blocks)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_the_embedded_snippets_run_as_written(tmp_path: Path) -> None:
    assert _port_free(8000), "the README's snippets serve on port 8000, which is taken here"
    (tmp_path / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTC_")}
    env["PATH"] = f"{Path(sys.prefix) / 'bin'}:{env.get('PATH', '')}"
    demo = subprocess.run(
        [".venv/bin/ttc", "demo"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert demo.returncode == 0, demo.stderr[-3000:]
    outputs = []
    for block in runnable_blocks(README.read_text()):
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, (
            f"{block}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
        )
        outputs.append(done.stdout)
    tree, served = outputs[0], outputs[1]
    assert "beam_search" in tree and "root (prompt)" in tree and "*#" in tree
    assert '"object":"list"' in served and "self_consistency@sim" in served
    assert "status: succeeded" in served and "correct: True" in served
    assert _port_free(8000), "the served demo is still running after the block's kill"


@pytest.mark.parametrize(
    ("text", "count"),
    [
        (f"{MARK}\n```bash\necho hi\n```\n", 1),
        (f"{MARK}\n\n```sh\necho a\necho b\n```\n```bash\nnot marked\n```", 1),
        ("```bash\necho unmarked\n```", 0),
    ],
)
def test_blocks_are_read_from_the_mark_to_the_fence(text: str, count: int) -> None:
    assert len(runnable_blocks(text)) == count
