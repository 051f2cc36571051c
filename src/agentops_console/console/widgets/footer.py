"""The key bar, rebuilt only when the keys it shows really change.

Textual's Footer recomposes (unmounts and mounts a widget per key) on every bindings
update, and switching views or moving focus sends several. Under a busy fleet that cost
landed on the key press that switched the view; the keys themselves rarely change.
"""

from __future__ import annotations

from textual.screen import Screen
from textual.widgets import Footer

Shown = tuple[tuple[str, str, str, bool, str], ...]


def _shown(screen: Screen[object]) -> Shown:
    return tuple(
        (binding.key, binding.description, binding.action, enabled, tooltip)
        for _node, binding, enabled, tooltip in screen.active_bindings.values()
        if binding.show or binding.action == "command_palette"
    )


class ConsoleFooter(Footer):
    def __init__(self) -> None:
        super().__init__()
        self._composed: Shown | None = None

    def bindings_changed(self, screen: Screen[object]) -> None:
        will_recompose = screen.app.app_focus and self.is_attached and screen is self.screen
        if will_recompose:
            shown = _shown(screen)
            if shown == self._composed:
                return
            self._composed = shown
        super().bindings_changed(screen)
