"""Reading TOML written by people: a syntax error names the file and the line."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from .errors import BadInput

_AT_LINE = re.compile(r"\(at line (\d+), column (\d+)\)")
_AT_END = "(at end of document)"


def parse_toml(text: str, origin: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = _AT_LINE.search(message)
        if found:
            where = f"{origin}:{found.group(1)}"
        elif _AT_END in message:
            where = f"{origin}:{max(1, len(text.splitlines()))}"
        else:
            where = origin
        reason = _AT_LINE.sub("", message).replace(_AT_END, "").strip() or "syntax error"
        raise BadInput(f"{where}: invalid TOML: {reason}") from None


def load_toml(path: Path) -> dict[str, Any]:
    return parse_toml(read_text(path), str(path))


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput(f"{path}: no such file") from None
    except IsADirectoryError:
        raise BadInput(f"{path}: is a directory, expected a file") from None
    except UnicodeDecodeError:
        raise BadInput(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise BadInput(f"{path}: cannot read: {exc.strerror}") from None
