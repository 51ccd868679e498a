"""The compact tree of ``ttc demo`` / ``ttc tree`` always shows the winning row."""

from __future__ import annotations

from ttc_cli.render import TreeRow, compact_tree


def _row(depth: int, index: int, *, chosen: bool = False, on_path: bool = False) -> TreeRow:
    return TreeRow(depth, index, "done", None, 0.5, None, 10, chosen, on_path)


def test_the_chosen_path_is_shown_past_the_cut() -> None:
    rows = [_row(1, i) for i in range(30)]
    rows[20] = _row(1, 20, on_path=True)
    rows.insert(21, _row(2, 3, chosen=True))
    text = compact_tree(rows, max_rows=10).splitlines()
    assert text[0] == "root (prompt)"
    assert any(line.lstrip().startswith(">#20") for line in text)
    assert any(line.lstrip().startswith("*#3") for line in text)
    assert sum(1 for line in text if "answer=" in line) == 10
    assert text[-1] == "  ... 9 more nodes"  # 31 rows: 10 shown, 12 and 9 cut
    assert "  ... 12 more nodes" in text


def test_short_trees_are_shown_whole() -> None:
    rows = [_row(1, i, chosen=i == 2) for i in range(4)]
    text = compact_tree(rows, max_rows=10).splitlines()
    assert len(text) == 5
    assert not any("more nodes" in line for line in text)
