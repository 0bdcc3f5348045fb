"""``botvisor alerts test|status``: a test alert to every channel, or the alert counters, as
an operator command plug-in (entry point ``alerts`` in ``botvisor.operator_commands``),
forwarded to the alerts actor. A test alert a channel did not deliver exits 1."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from supervisor.host.control_protocol import EXIT_ERROR, EXIT_OK
from supervisor.host.operator_plugins import ForwardedCommand
from supervisor.host.operator_render import pairs

__all__ = ["AlertsCommand"]


class AlertsCommand(ForwardedCommand):
    """Sends a test alert (one row per channel: delivered or failed), or shows the counters."""

    name = "alerts"
    help = "send a test alert to every channel, or show the alert counters"
    target = "alerts"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("action", choices=("test", "status"))

    def request(self, args: argparse.Namespace) -> dict[str, Any]:
        return {"command": args.action}

    def exit_status(self, result: Any) -> int:
        if isinstance(result, Mapping) and "received" not in result and any(
                not c.get("ok") for c in result.get("channels") or []):
            return EXIT_ERROR
        return EXIT_OK

    def render(self, console: Console, result: Any) -> int:
        r: Mapping[str, Any] = result
        channels = r.get("channels") or []
        if "received" in r:  # status
            table = pairs("alerts" + ("" if r.get("enabled", True) else " (disabled)"))
            for key in ("received", "sent", "failed", "suppressed", "folded",
                        "fallback_written", "errors"):
                table.add_row(key.replace("_", " "), str(r.get(key, 0)))
            console.print(table)
            for c in channels:
                state = "ready" if c.get("ready") else f"not ready: {c.get('problem')}"
                console.print(f"  {c['name']} {c['url']}: {state}, sent {c['sent']}, "
                              f"failed {c['failed']}")
            return EXIT_OK
        if not channels:
            console.print("no alert channels configured: alerts go to the log and the "
                          "fallback file only")
            return EXIT_OK
        table = Table(title="test alert", title_justify="left")
        for column in ("channel", "result", "url", "error"):
            table.add_column(column, overflow="fold")
        for c in channels:
            table.add_row(c["name"], Text("delivered", style="green") if c["ok"]
                          else Text("failed", style="red"), c["url"], c.get("error") or "")
        console.print(table)
        return self.exit_status(r)
