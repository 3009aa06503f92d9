"""The ``python`` blocks of docs/detectors.md run, in order, in one namespace.

Markdown is not collected by ``pytest --doctest-modules``; this test is what keeps the page's
examples (the interface tour and "add your own detector in 30 lines") working.
"""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "detectors.md"


def _blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_blocks_are_found():
    blocks = _blocks(DOC.read_text())
    assert len(blocks) == 2
    assert "class RobustZDetector(BaseDetector)" in blocks[1]


def test_detectors_doc_examples_run():
    namespace: dict = {"__name__": "docs_detectors"}
    for i, block in enumerate(_blocks(DOC.read_text())):
        exec(compile(block, f"{DOC.name}[python block {i}]", "exec"), namespace)
    assert namespace["back"].median_.shape == (2,)
