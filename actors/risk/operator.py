"""``botvisor breaker open|close|halt|status``: the circuit breaker by hand, as an operator
command plug-in (entry point ``breaker`` in ``botvisor.operator_commands``), forwarded to
the breaker actor; ``botvisor status`` shows its state and reason."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

from rich.console import Console
from rich.text import Text

from supervisor.host.control_protocol import EXIT_OK
from supervisor.host.operator_plugins import ForwardedCommand
from supervisor.host.operator_render import pairs, styled, when

__all__ = ["BreakerCommand"]


class BreakerCommand(ForwardedCommand):
    """Opens, closes or halts the breaker (``--reason`` is recorded), or shows it."""

    name = "breaker"
    help = "open, close or halt the circuit breaker by hand, or show it"
    target = "breaker"
    status_fields = ("state", "reason")
    state_styles: ClassVar[Mapping[str, str]] = MappingProxyType({
        "closed": "green", "half_open": "yellow", "open": "red", "halted": "bold red"})

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("action", choices=("open", "close", "halt", "status"))
        parser.add_argument("--reason", default="", metavar="TEXT",
                            help="why (recorded with the transition and sent with its alert)")

    def request(self, args: argparse.Namespace) -> dict[str, Any]:
        request: dict[str, Any] = {"command": args.action}
        if args.reason:
            request["reason"] = args.reason
        return request

    def render(self, console: Console, result: Any) -> int:
        r: Mapping[str, Any] = result
        console.print(Text.assemble("breaker ", styled(r["state"], self.state_styles)))
        table = pairs()
        table.add_row("reason", str(r["reason"]))
        table.add_row("by", str(r["by"]))
        table.add_row("since", when(r.get("since")))
        table.add_row("manual", "yes (stays until closed by hand)" if r.get("manual") else "no")
        if r.get("recovery_at"):
            table.add_row("half-open at", when(r["recovery_at"]))
        table.add_row("trips recently", str(r.get("trips_recently", 0)))
        table.add_row("transitions", str(r.get("transitions", 0)))
        for key, value in (r.get("figures") or {}).items():
            table.add_row(f"figure {key}", str(value))
        for key, value in (r.get("measures") or {}).items():
            table.add_row(f"measure {key}", str(value))
        console.print(table)
        return EXIT_OK
