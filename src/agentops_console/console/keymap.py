"""Key remapping from a config file: binding id → keys, as Textual's keymap wants.

```toml
# ~/.config/agentops/console.toml
[keys]
"session.kill" = "K"
"app.pause" = "space"
```
"""

from __future__ import annotations

import tomllib
from pathlib import Path


class KeymapError(ValueError):
    """The keymap file exists but cannot be used."""


def default_path() -> Path:
    from platformdirs import user_config_dir

    return Path(user_config_dir("agentops")) / "console.toml"


def load_keymap(path: Path | None = None) -> dict[str, str]:
    """{} when the file does not exist; KeymapError (one line) when it is malformed."""
    path = path or default_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise KeymapError(f"{path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise KeymapError(f"{path}: invalid TOML: {exc}") from None
    keys = data.get("keys", {})
    if not isinstance(keys, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in keys.items()
    ):
        raise KeymapError(f"{path}: [keys] must map binding ids to key names (strings)")
    return {k: v.strip() for k, v in keys.items()}
