"""manifest.json of a capture directory (`cniscope.ingest.manifest_inputs` reads the inputs it names)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cniscope.errors import InputError

MANIFEST = "manifest.json"


def write_manifest(outdir: Path, manifest: dict[str, Any]) -> None:
    path = outdir / MANIFEST
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def load(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise InputError(f"{directory}: not a capture directory (no {MANIFEST})") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: line {exc.lineno}: not JSON: {exc.msg}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != "cniscope-capture" or not isinstance(manifest.get("nodes"), list):
        raise InputError(f"{path}: not a cniscope capture manifest (expected format 'cniscope-capture' and a list of nodes)")
    return manifest


def is_capture_dir(path: str | Path) -> bool:
    return (Path(path) / MANIFEST).is_file()
