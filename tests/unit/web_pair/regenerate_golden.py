"""Rewrite the golden files of test_templates.py from the current templates (review the diff!)."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from web_pair import test_templates

for case in test_templates.CASES:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        test_templates.render(case, out, Path(tmp) / "work")
        shutil.rmtree(test_templates.GOLDEN / case, ignore_errors=True)
        shutil.copytree(out, test_templates.GOLDEN / case)
        print(f"wrote {test_templates.GOLDEN / case}")
