"""Rule folders for tests: the bundled pack (its rules, not its tests) with more beside it."""

from __future__ import annotations

import shutil
from pathlib import Path

PACK = Path(__file__).resolve().parents[2] / "rules"


def pack_with(folder: Path, **files: str) -> Path:
    """``folder`` holding the bundled pack's rule files and ``files`` (name -> YAML text)."""
    folder.mkdir(parents=True, exist_ok=True)
    for f in PACK.glob("*.yaml"):
        if not f.name.endswith(".test.yaml"):
            shutil.copy(f, folder / f.name)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder
