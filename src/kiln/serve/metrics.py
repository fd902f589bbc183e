"""Prometheus metrics in the text exposition format (version 0.0.4), kept in plain dicts.

A few counters and histograms need no client library: observing is a dict update and a bisect,
cheap enough for every request, and /metrics renders the text on demand.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable, Iterable

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
ROWS_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Histogram:
    """Counts per bucket (upper bounds), plus sum and count, for one label set."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last bucket is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def lines(self, name: str, labels: str) -> Iterable[str]:
        sep = "," if labels else ""
        total = 0
        for bound, n in zip([*map(_number, self.bounds), "+Inf"], self.counts):
            total += n
            yield f'{name}_bucket{{{labels}{sep}le="{bound}"}} {total}'
        yield f"{name}_sum{{{labels}}} {self.sum!r}" if labels else f"{name}_sum {self.sum!r}"
        yield f"{name}_count{{{labels}}} {self.count}" if labels else f"{name}_count {self.count}"


Gauge = tuple[str, Callable[[], float]]  # (help text, current value)


class Metrics:
    """The server's metrics: requests, errors, latency by route, and micro-batch sizes."""

    def __init__(self, info: dict[str, str], gauges: dict[str, Gauge]) -> None:
        self.info = info
        self.gauges = gauges
        self.requests: defaultdict[tuple[str, str, int], int] = defaultdict(int)
        self.latency: dict[str, Histogram] = {}
        self.batch_rows = Histogram(ROWS_BUCKETS)
        self.batch_requests = Histogram(ROWS_BUCKETS)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests[(route, method, status)] += 1
        hist = self.latency.get(route)
        if hist is None:
            hist = self.latency[route] = Histogram(LATENCY_BUCKETS)
        hist.observe(seconds)

    def observe_batch(self, rows: int, requests: int) -> None:
        self.batch_rows.observe(rows)
        self.batch_requests.observe(requests)

    def render(self) -> str:
        """The exposition text, one metric family after another."""
        out: list[str] = []

        def family(name: str, kind: str, help_text: str) -> None:
            out.extend([f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"])

        family("kiln_model_info", "gauge", "The served model; always 1.")
        out.append(f"kiln_model_info{{{_labels(self.info)}}} 1")
        family("kiln_http_requests_total", "counter", "HTTP requests answered, by route, method and status code.")
        for (route, method, status), n in sorted(self.requests.items()):
            out.append(
                f"kiln_http_requests_total{{{_labels({'route': route, 'method': method, 'status': str(status)})}}} {n}"
            )
        family("kiln_http_errors_total", "counter", "HTTP requests answered with a 4xx or 5xx status, by route.")
        errors: defaultdict[str, int] = defaultdict(int)
        for (route, _, status), n in self.requests.items():
            if status >= 400:
                errors[route] += n
        for route, n in sorted(errors.items()):
            out.append(f"kiln_http_errors_total{{{_labels({'route': route})}}} {n}")
        family("kiln_http_request_duration_seconds", "histogram", "Time from request start to response end.")
        for route, hist in sorted(self.latency.items()):
            out.extend(hist.lines("kiln_http_request_duration_seconds", _labels({"route": route})))
        family("kiln_batch_rows", "histogram", "Rows per model call (micro-batch size).")
        out.extend(self.batch_rows.lines("kiln_batch_rows", ""))
        family("kiln_batch_requests", "histogram", "Requests grouped into one model call.")
        out.extend(self.batch_requests.lines("kiln_batch_requests", ""))
        for name, (help_text, read) in self.gauges.items():
            family(name, "gauge", help_text)
            out.append(f"{name} {_number(read())}")
        return "\n".join(out) + "\n"


def _labels(labels: dict[str, str]) -> str:
    return ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
