"""``python -m aiocontext``: the demo prints the contract's parent/child table."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable

import pytest

from aiocontext import ChainMap, Copy, DeepCopy, PropagationPolicy, Share
from aiocontext.__main__ import main, render, run_example

#: What the parent sees after the child ran, per the contract's table.
PARENT_AFTER: dict[PropagationPolicy, tuple[str, list[str]]] = {
    Share(): ("from child", ["from", "child"]),
    Copy(): ("from parent", ["from", "child"]),
    DeepCopy(): ("from parent", ["from", "parent"]),
    ChainMap(): ("from parent", ["from", "child"]),
}


class TestDemo:
    @pytest.mark.parametrize("policy", list(PARENT_AFTER), ids=repr)
    def test_example_matches_contract(
        self, policy: PropagationPolicy, new_loop: Callable[[], asyncio.AbstractEventLoop]
    ) -> None:
        """Each policy leaves parent and child with the values the contract lists."""
        parent, child = run_example(policy, new_loop)
        assert PARENT_AFTER[policy] == (parent["simple"], parent["complex"])
        assert ("from child", ["from", "child"]) == (child["simple"], child["complex"])

    @pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
    def test_main_prints_one_row_per_task(
        self, loop: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The table has a child row and a parent row for each of the four policies."""
        main(["--loop", loop])
        out = capsys.readouterr().out
        assert f"aiocontext on {loop}" in out
        table = out.split("\n\n", 1)[1]
        rows = [line.split() for line in table.splitlines()[2:]]
        assert 8 == len(rows)
        assert ["Share()", "child", "from", "child", "['from',", "'child']"] == rows[0]
        assert ["parent", "from", "parent", "['from',", "'parent']"] == rows[5]

    def test_run_as_module(self) -> None:
        """``python -m aiocontext`` runs the demo in a fresh interpreter."""
        result = subprocess.run(
            [sys.executable, "-m", "aiocontext"], capture_output=True, text=True, check=True
        )
        assert "" == result.stderr
        assert "ChainMap()" in result.stdout

    def test_uvloop_missing_says_how_to_install_it(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """``--loop uvloop`` without uvloop exits with usage status 2 and the pip command for
        this Python, not a traceback."""
        monkeypatch.setitem(sys.modules, "uvloop", None)  # what import sees when it is absent
        with pytest.raises(SystemExit) as exit_info:
            main(["--loop", "uvloop"])
        assert 2 == exit_info.value.code
        err = capsys.readouterr().err
        assert f"{sys.executable} -m pip install uvloop" in err
        assert "Traceback" not in err

    def test_render_aligns_columns(self) -> None:
        """Columns are padded to the widest cell, with a rule under the header."""
        expected = (
            "policy  task  simple  complex\n------  ----  ------  -------\nx       y     z       w"
        )
        assert expected == render([("x", "y", "z", "w")])
