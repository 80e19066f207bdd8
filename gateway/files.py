"""Writing Envoy's watched config files: atomically, and only when the content changes.

Envoy notices a watched file only when it is replaced by a rename (see
../shared/PITFALLS.md), and an unchanged rewrite would still make it reload.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def write_json(path: Path, content: dict) -> bool:
    """Replace `path` with `content` by an atomic rename; False if it already held it."""
    text = json.dumps(content, indent=1, sort_keys=True)
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(temp, 0o644)
    os.replace(temp, path)
    return True
