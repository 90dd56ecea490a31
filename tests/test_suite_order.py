"""The suite's own scheduling: files that run pipelines for minutes go to workers first."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import pytest_collection_modifyitems


def _item(path: str, long: bool) -> SimpleNamespace:
    return SimpleNamespace(path=Path(path), name=f"{path}:{long}",
                           get_closest_marker=lambda name: pytest.mark.long if long and name == "long"
                           else None)


def test_files_with_a_long_test_come_first_and_the_rest_keep_their_order():
    items = [_item("a.py", False), _item("b.py", False), _item("e2e.py", False),
             _item("e2e.py", True), _item("c.py", False), _item("runs.py", True)]
    pytest_collection_modifyitems(None, items)
    assert [item.name for item in items] == [
        "e2e.py:False", "e2e.py:True", "runs.py:True", "a.py:False", "b.py:False", "c.py:False"]


def test_the_makefile_keeps_xdist_from_reordering_files_by_their_number_of_tests():
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    assert "--no-loadscope-reorder" in makefile and "--dist loadfile" in makefile
