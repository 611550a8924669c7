"""Prometheus metrics in the text exposition format, hand-written (no client library to install).

Only what the server needs: counters, gauges read at scrape time, and cumulative histograms, each with
a fixed, small set of label values (route names and status codes, never user input), so the number of
series stays bounded. Updates come from the event loop and the inference threads, hence the lock.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence

__all__ = ["Registry", "Counter", "Gauge", "Histogram", "LATENCY_BUCKETS", "SIZE_BUCKETS", "TOKEN_BUCKETS"]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)
TOKEN_BUCKETS = (16, 64, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)

Labels = tuple[tuple[str, str], ...]


def _labels(values: dict[str, str] | None) -> Labels:
    return tuple(sorted((values or {}).items()))


def _fmt_labels(labels: Labels, extra: tuple[str, str] | None = None) -> str:
    items = list(labels) + ([extra] if extra else [])
    if not items:
        return ""
    body = ",".join(f'{k}="{_escape(v)}"' for k, v in items)
    return "{" + body + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(x: float) -> str:
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    if float(x).is_integer():
        return str(int(x))
    return repr(float(x))


class _Metric:
    kind = ""

    def __init__(self, name: str, help_text: str, lock: threading.Lock) -> None:
        self.name, self.help, self._lock = name, help_text, lock

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]

    def render(self) -> list[str]:
        raise NotImplementedError


class Counter(_Metric):
    """A monotonically increasing count per label set."""

    kind = "counter"

    def __init__(self, name: str, help_text: str, lock: threading.Lock, *, labelled: bool = False) -> None:
        super().__init__(name, help_text, lock)
        # An unlabelled series exists from the start (0), so a scrape before any traffic shows it.
        self._values: dict[Labels, float] = {} if labelled else {(): 0.0}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = _labels(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        with self._lock:
            return self._values.get(_labels(labels), 0.0)

    def render(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        return self.header() + [f"{self.name}{_fmt_labels(k)} {_num(v)}" for k, v in items]


class Gauge(_Metric):
    """A value read when scraped, from a callable (queue depth, readiness)."""

    kind = "gauge"

    def __init__(self, name: str, help_text: str, lock: threading.Lock, read: Callable[[], float]) -> None:
        super().__init__(name, help_text, lock)
        self._read = read

    def render(self) -> list[str]:
        return self.header() + [f"{self.name} {_num(float(self._read()))}"]


class Histogram(_Metric):
    """Cumulative buckets, ``_sum`` and ``_count`` per label set."""

    kind = "histogram"

    def __init__(
        self, name: str, help_text: str, lock: threading.Lock, buckets: Sequence[float], *, labelled: bool = False
    ) -> None:
        super().__init__(name, help_text, lock)
        self.buckets = tuple(sorted(buckets)) + (math.inf,)
        # Per label set: per-bucket counts (not cumulative), then the sum.
        self._series: dict[Labels, list[float]] = {} if labelled else {(): [0.0] * (len(self.buckets) + 1)}

    def observe(self, value: float, **labels: str) -> None:
        key = _labels(labels)
        with self._lock:
            series = self._series.setdefault(key, [0.0] * (len(self.buckets) + 1))
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    series[i] += 1
                    break
            series[-1] += value

    def count(self, **labels: str) -> int:
        with self._lock:
            series = self._series.get(_labels(labels))
            return int(sum(series[:-1])) if series else 0

    def total(self, **labels: str) -> float:
        with self._lock:
            series = self._series.get(_labels(labels))
            return series[-1] if series else 0.0

    def render(self) -> list[str]:
        with self._lock:
            items = sorted((k, list(v)) for k, v in self._series.items())
        lines = self.header()
        for key, series in items:
            running = 0.0
            for bound, n in zip(self.buckets, series):
                running += n
                lines.append(f"{self.name}_bucket{_fmt_labels(key, ('le', _num(bound)))} {_num(running)}")
            lines.append(f"{self.name}_sum{_fmt_labels(key)} {_num(series[-1])}")
            lines.append(f"{self.name}_count{_fmt_labels(key)} {_num(running)}")
        return lines


class Registry:
    """Creates metrics and renders them all for ``GET /metrics``."""

    CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._metrics: list[_Metric] = []

    def counter(self, name: str, help_text: str, *, labelled: bool = False) -> Counter:
        return self._add(Counter(name, help_text, self._lock, labelled=labelled))

    def gauge(self, name: str, help_text: str, read: Callable[[], float]) -> Gauge:
        return self._add(Gauge(name, help_text, self._lock, read))

    def histogram(self, name: str, help_text: str, buckets: Sequence[float], *, labelled: bool = False) -> Histogram:
        return self._add(Histogram(name, help_text, self._lock, buckets, labelled=labelled))

    def _add(self, metric):
        if any(m.name == metric.name for m in self._metrics):
            raise ValueError(f"metric {metric.name!r} is registered twice")
        self._metrics.append(metric)
        return metric

    def render(self) -> str:
        lines: list[str] = []
        for m in self._metrics:
            lines.extend(m.render())
        return "\n".join(lines) + "\n"
