"""Prometheus metrics for a running tree, served on a loopback address.

Everything is read at scrape time from what the runtime already keeps, so metrics cost
nothing between scrapes: per actor the state, restarts, mailbox depth and handler-latency
histogram; dead letters; and, from any actor's published snapshot that has a
``metrics()`` method returning ``{name: number}``, one gauge per name labelled with the
actor (an application's actors publish their own figures this way). The runtime knows
nothing of what those names mean.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from supervisor.host.session import SessionService
from supervisor.lifecycle import ChildState

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from supervisor.host.session import RunSession
    from supervisor.runtime import Runtime

log = logging.getLogger(__name__)

__all__ = ["LOOPBACK", "MetricsService", "TreeCollector"]

LOOPBACK = ("127.0.0.1", "::1", "localhost")
_NAME = re.compile(r"[^a-zA-Z0-9_]")


class TreeCollector(Collector):
    """Reads one runtime's tree on every scrape; owns no state of its own."""

    def __init__(self, runtime: Runtime, prefix: str = "botvisor") -> None:
        self.runtime = runtime
        self.prefix = prefix

    def collect(self) -> Iterable[Metric]:
        p = self.prefix
        runtime = self.runtime
        up = GaugeMetricFamily(f"{p}_actor_up", "1 if the actor is running", labels=["actor"])
        state = GaugeMetricFamily(f"{p}_actor_state", "the actor's lifecycle state (1 = current)",
                                  labels=["actor", "state"])
        restarts = CounterMetricFamily(f"{p}_actor_restarts", "restarts of the actor",
                                       labels=["actor"])
        mailbox = GaugeMetricFamily(f"{p}_mailbox_depth", "messages waiting for the actor",
                                    labels=["actor"])
        latency = HistogramMetricFamily(f"{p}_handler_seconds",
                                        "time spent in message handlers", labels=["actor"])
        published: dict[str, GaugeMetricFamily] = {}
        for name in runtime.names():
            cell = runtime.cell_or_none(name)
            if cell is None:
                continue
            up.add_metric([name], 1.0 if cell.state is ChildState.RUNNING else 0.0)
            for s in ChildState:
                state.add_metric([name, s.value], 1.0 if cell.state is s else 0.0)
            restarts.add_metric([name], float(cell.restarts))
            mailbox.add_metric([name], float(len(cell.mailbox)))
            lat = cell.latency
            latency.add_metric([name], [(b, float(n)) for b, n in lat.cumulative()],
                               sum_value=lat.total)
            for key, value in _published_metrics(cell.published):
                metric = f"{p}_{_NAME.sub('_', key)}"
                family = published.get(metric)
                if family is None:
                    family = published[metric] = GaugeMetricFamily(
                        metric, f"{key}, as published by the actor", labels=["actor"])
                family.add_metric([name], value)
        dead = CounterMetricFamily(f"{p}_dead_letters", "messages that could not be delivered")
        dead.add_metric([], float(runtime.dead_letters))
        yield from (up, state, restarts, mailbox, latency, dead, *published.values())


def _published_metrics(snapshot: Any) -> list[tuple[str, float]]:
    source = getattr(snapshot, "metrics", None)
    if not callable(source):
        return []
    try:
        values = source()
    except Exception:  # a snapshot's bug must not break the scrape
        log.exception("metrics() of %s failed", type(snapshot).__name__)
        return []
    if not isinstance(values, Mapping):
        return []
    out = []
    for key, value in values.items():
        try:
            out.append((str(key), float(value)))
        except (TypeError, ValueError):
            continue
    return out


class MetricsService(SessionService):
    """Owns the metrics HTTP server of one run (loopback only)."""

    name = "metrics"

    def __init__(self, host: str = "127.0.0.1", port: int = 9464) -> None:
        if host not in LOOPBACK:
            raise ValueError(f"metrics must bind a loopback address ({', '.join(LOOPBACK)}), "
                             f"not {host!r}")
        self.host = host
        self.port = port
        self.registry = CollectorRegistry(auto_describe=False)
        self._server: WSGIServer | None = None

    def start(self, session: RunSession) -> None:
        self.serve(session.runtime)

    def serve(self, runtime: Runtime) -> int:
        """Start serving ``runtime``'s metrics; returns the bound port (useful with port 0)."""
        self.registry.register(TreeCollector(runtime))
        server, _thread = start_http_server(self.port, addr=self.host, registry=self.registry)
        self._server = server
        self.port = int(server.server_port)
        log.info("metrics on http://%s:%d/metrics", self.host, self.port)
        return self.port

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
