"""The key bar: one line that always fits, with `?` help and `q` quit always on it.

Textual's Footer lays the keys out left to right and cuts what does not fit, so at 80
columns it ended mid-word (`e Enabl`) with `b`, `?` and `q` gone. Here the keys are
dropped by priority until the line fits (the view's actions before navigation, help and
quit never), and shown in the view's order. It is one line of Text redrawn only when the
keys or the width change: no widget per key to mount on every bindings update.
"""

from __future__ import annotations

from typing import ClassVar

from rich.cells import cell_len
from rich.text import Text
from textual.app import RenderResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widget import Widget

#: Always shown, whatever the width.
ESSENTIAL = ("app.help", "app.quit")
#: Dropped last to first when the line is too long; ids not listed go before these.
PRIORITY = (
    "app.help",
    "app.quit",
    "session.kill",
    "approval.approve",
    "approval.deny",
    "incident.open",
    "workflow.disable",
    "budget.set",
    "workflow.enable",
    "runbook.show",
    "filter",
    "sessions.open",
    "fleet.open",
    "alerts.open",
    "approvals.open",
    "back",
    "app.pause",
    "sessions.sort",
    "app.jump",
)

Key = tuple[str, str, str]  # (binding id, key as shown, description)


def fit(keys: list[Key], width: int) -> list[Key]:
    """`keys` in their order, the least needed dropped until the line fits `width`."""
    kept = list(keys)

    def rank(key: Key) -> int:
        return PRIORITY.index(key[0]) if key[0] in PRIORITY else len(PRIORITY)

    while kept and sum(_width(k) for k in kept) > width:
        droppable = [k for k in kept if k[0] not in ESSENTIAL]
        if not droppable:
            break
        kept.remove(max(droppable, key=lambda k: (rank(k), kept.index(k))))
    return kept


def _width(key: Key) -> int:
    return cell_len(f" {key[1]} {key[2]} ")


class ConsoleFooter(Widget):
    COMPONENT_CLASSES: ClassVar[set[str]] = {"console-footer--key"}
    DEFAULT_CSS = """
    ConsoleFooter {
        dock: bottom;
        height: 1;
        background: $footer-background;
        color: $footer-foreground;
        & > .console-footer--key {
            color: $footer-key-foreground;
            background: $footer-key-background;
            text-style: bold;
        }
    }
    """

    def __init__(self) -> None:
        super().__init__()
        self._keys: list[Key] = []

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self.bindings_changed)
        self.bindings_changed(self.screen)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def bindings_changed(self, screen: Screen[object]) -> None:
        keys = self.keys(screen)
        if keys != self._keys:
            self._keys = keys
            self.refresh()

    def keys(self, screen: Screen[object]) -> list[Key]:
        """The shown, enabled bindings once per id (app ones last), as the keymap has
        them; help and quit are put last so they sit at the right end of the line."""
        seen: dict[str, Key] = {}
        last: dict[str, Key] = {}
        for _node, binding, enabled, _tooltip in screen.active_bindings.values():
            if not (binding.show and enabled and isinstance(binding, Binding)):
                continue
            ident = binding.id or binding.action
            if ident in seen or ident in last:
                continue
            key = (ident, self.app.get_key_display(binding), binding.description)
            (last if ident in ESSENTIAL else seen)[ident] = key
        return list(seen.values()) + [last[i] for i in ESSENTIAL if i in last]

    def shown(self) -> list[Key]:
        """What the line holds at the current width (for tests)."""
        return fit(self._keys, self.size.width)

    def render(self) -> RenderResult:
        key_style = self.get_component_rich_style("console-footer--key")
        line = Text(no_wrap=True, end="", overflow="crop")
        for _ident, key, description in self.shown():
            line.append(f" {key} ", style=key_style)
            line.append(f"{description} ")
        return line
