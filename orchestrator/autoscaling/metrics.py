"""Where the autoscaler reads metric values: the node agents directly, or a Prometheus server.

Two sources implement the same four asynchronous questions (`MetricsSource`):

* `pod_resource` (Resource / ContainerResource metrics): CPU cores or memory bytes per pod;
* `pods_metric` (Pods metrics): a per-pod value;
* `object_metric` (Object metrics) and `external_metric` (External metrics): one number.

`AgentSource` (the default) answers resource questions the way `metrics.k8s.io` does
(`orchestrator.api.proxy`): it scrapes the plain-HTTP ``/metrics`` of the nodes running the
pods (node InternalIP and the ``dockyard.io/metrics-port`` annotation; `objects.nodeaddr`,
`objects.scrape`) and reads
``dockyard_container_cpu_usage_cores`` (the CPU rate between the agent's last two samples)
and ``container_memory_working_set_bytes``. Nothing else knows custom metrics, so it hands
Pods, Object and External questions to Prometheus when one is configured and fails them
with a clear message otherwise.

`PrometheusSource` (master ``--prometheus-url``) asks Prometheus's HTTP query API
(``GET /api/v1/query``). Resource metrics come from the same agent series, scraped by
Prometheus: ``rate(container_cpu_usage_seconds_total[1m])`` and
``container_memory_working_set_bytes``, summed per pod. For the custom metrics,
``metric.name`` is read in one of two ways:

* a bare series name (``http_requests_per_second``) is selected with the namespace, the
  metric's ``selector`` as label matchers and, for Pods metrics, ``pod=~"<the target's
  pods>"``, then averaged per pod (Pods), or summed (Object: also matched on a label named
  after the described object's kind, e.g. ``service="web"``; External: summed over all
  matching series);
* anything else is a PromQL expression, evaluated as written after replacing
  ``$namespace``, ``$pods`` (a regular expression matching exactly the target's pod names)
  and, for Object metrics, ``$kind``/``$name`` of the described object. A Pods expression
  must return series with a ``pod`` label; Object and External results are summed.

An empty answer is an error (the metric is "missing"), as with the Kubernetes metrics APIs;
write ``... or vector(0)`` for a queue that may have no series when empty.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Sequence
from typing import Any, Protocol

import httpx

from ..objects import Obj
from ..objects.kinds import by_kind
from ..objects.nodeaddr import metrics_port, node_address
from ..objects.scrape import parse_scrape
from .replicas import MetricError, PodMetric

log = logging.getLogger("dockyard.autoscaling")

NODE = by_kind("v1", "Node")
SCRAPE_TIMEOUT = 5.0
AGENT_SAMPLE_WINDOW = 10.0  # seconds an agent CPU rate covers, at most (its sample TTL is shorter)
PROMETHEUS_RATE_WINDOW = "1m"
_SERIES_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_NO_PROMETHEUS = ("no Prometheus server is configured (master --prometheus-url); Pods, Object and External "
                  "metrics are read from Prometheus")


class MetricsSource(Protocol):
    async def pod_resource(self, namespace: str, pods: Sequence[Obj], resource: str,
                           container: str | None = None) -> dict[str, PodMetric]: ...

    async def pods_metric(self, namespace: str, pods: Sequence[Obj], metric: Obj) -> dict[str, PodMetric]: ...

    async def object_metric(self, namespace: str, described: Obj, metric: Obj) -> float: ...

    async def external_metric(self, namespace: str, metric: Obj) -> float: ...


def _pod_name(pod: Obj) -> str:
    return str((pod.get("metadata") or {}).get("name") or "")


def _containers(pod: Obj, container: str | None) -> list[str]:
    names = [str(c.get("name")) for c in (pod.get("spec") or {}).get("containers") or []]
    return [n for n in names if container is None or n == container]


# -- the agents ---------------------------------------------------------------------------------


class AgentSource:
    """Resource usage straight from the agents; custom metrics from `prometheus` if given."""

    def __init__(self, registry: Any, prometheus: PrometheusSource | None = None,
                 http: httpx.AsyncClient | None = None) -> None:
        self.registry = registry
        self.prometheus = prometheus
        self._http = http

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=SCRAPE_TIMEOUT)
        return self._http

    async def _scrape(self, node: Obj) -> dict[str, Any] | None:
        host, port = node_address(node), metrics_port(node)
        if not host or not port:
            return None
        if ":" in host:
            host = f"[{host}]"
        try:
            r = await self.http.get(f"http://{host}:{port}/metrics")
            r.raise_for_status()
        except httpx.HTTPError as e:
            log.info("metrics of node %s unavailable: %s", node["metadata"]["name"], e)
            return None
        return parse_scrape(r.text)

    async def pod_resource(self, namespace: str, pods: Sequence[Obj], resource: str,
                           container: str | None = None) -> dict[str, PodMetric]:
        if resource not in ("cpu", "memory"):
            raise MetricError("FailedGetResourceMetric", f"resource {resource!r} is not measured (only cpu, memory)")
        wanted = {(p.get("spec") or {}).get("nodeName") for p in pods} - {None, ""}
        nodes = [n for n in self.registry.items(NODE) if n["metadata"]["name"] in wanted]
        scraped = dict(zip([n["metadata"]["name"] for n in nodes],
                           await asyncio.gather(*(self._scrape(n) for n in nodes)), strict=True))
        now = time.time()
        out: dict[str, PodMetric] = {}
        for pod in pods:
            data = scraped.get((pod.get("spec") or {}).get("nodeName") or "")
            if data is None:
                continue
            values = [data["containers"].get((namespace, _pod_name(pod), c)) for c in _containers(pod, container)]
            found = [v[resource] for v in values if v is not None and resource in v]
            if found:
                out[_pod_name(pod)] = PodMetric(sum(found), now, AGENT_SAMPLE_WINDOW)
        if not out:
            raise MetricError("FailedGetResourceMetric",
                              f"unable to get metrics for resource {resource}: no metrics returned from the agents")
        return out

    def _custom(self) -> PrometheusSource:
        if self.prometheus is None:
            raise MetricError("FailedGetPodsMetric", _NO_PROMETHEUS)
        return self.prometheus

    async def pods_metric(self, namespace: str, pods: Sequence[Obj], metric: Obj) -> dict[str, PodMetric]:
        return await self._custom().pods_metric(namespace, pods, metric)

    async def object_metric(self, namespace: str, described: Obj, metric: Obj) -> float:
        try:
            return await self._custom().object_metric(namespace, described, metric)
        except MetricError as e:
            raise MetricError("FailedGetObjectMetric", e.message) from None

    async def external_metric(self, namespace: str, metric: Obj) -> float:
        try:
            return await self._custom().external_metric(namespace, metric)
        except MetricError as e:
            raise MetricError("FailedGetExternalMetric", e.message) from None


# -- Prometheus ---------------------------------------------------------------------------------


def promql_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def regex_literal(text: str) -> str:
    """A regular expression matching `text` exactly, with no backslash for a valid object name.

    `re.escape` escapes ``-`` and ``.`` with backslashes: harmless inside `promql_string`,
    but ``$pods`` is pasted into the user's own PromQL string literal, where a backslash
    before ``-`` is an invalid escape. Other characters go in a one-character class
    (``[.]``); the few a class cannot hold that way (never in a name) get a backslash.
    """
    out = []
    for ch in text:
        if (ch.isascii() and ch.isalnum()) or ch in "-_":
            out.append(ch)
        elif ch in "\\]^":
            out.append("\\" + ch)
        else:
            out.append(f"[{ch}]")
    return "".join(out)


def pods_regex(pods: Sequence[Obj]) -> str:
    """Alternatives matching exactly the pods' names (PromQL regex matchers are anchored)."""
    return "|".join(regex_literal(_pod_name(p)) for p in pods) or "^$"


def selector_matchers(selector: Obj | None) -> list[str]:
    """PromQL label matchers for a LabelSelector (matchLabels, In/NotIn/Exists/DoesNotExist)."""
    out = [f"{k}={promql_string(str(v))}" for k, v in ((selector or {}).get("matchLabels") or {}).items()]
    for expr in (selector or {}).get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        alternatives = "|".join(re.escape(str(v)) for v in values)
        if op == "In":
            out.append(f"{key}=~{promql_string(alternatives)}")
        elif op == "NotIn":
            out.append(f"{key}!~{promql_string(alternatives)}")
        elif op == "Exists":
            out.append(f'{key}!=""')
        elif op == "DoesNotExist":
            out.append(f'{key}=""')
    return out


def series(name: str, matchers: list[str]) -> str:
    return f"{name}{{{','.join(matchers)}}}"


def substitute(expr: str, **values: str) -> str:
    for key in sorted(values, key=len, reverse=True):
        expr = expr.replace(f"${key}", values[key])
    return expr


class PrometheusSource:
    """Reads metric values from a Prometheus server's HTTP query API."""

    def __init__(self, url: str, http: httpx.AsyncClient | None = None, token: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self._http = http

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
            self._http = httpx.AsyncClient(timeout=SCRAPE_TIMEOUT, headers=headers)
        return self._http

    async def query(self, expr: str, reason: str = "FailedGetPodsMetric") -> list[tuple[dict[str, str], float, float]]:
        """Instant query: [(labels, value, timestamp)] of a vector or scalar result."""
        try:
            r = await self.http.get(f"{self.url}/api/v1/query", params={"query": expr})
            body = r.json()
        except (httpx.HTTPError, ValueError) as e:
            raise MetricError(reason, f"unable to query Prometheus at {self.url}: {e}") from None
        if body.get("status") != "success":
            raise MetricError(reason, f"Prometheus rejected {expr!r}: {body.get('error', r.status_code)}")
        data = body.get("data") or {}
        if data.get("resultType") == "scalar":
            ts, value = data["result"]
            return [({}, float(value), float(ts))]
        if data.get("resultType") != "vector":
            raise MetricError(reason, f"{expr!r} returned a {data.get('resultType')}, not an instant vector")
        return [(item.get("metric") or {}, float(item["value"][1]), float(item["value"][0]))
                for item in data.get("result") or []]

    async def _per_pod(self, expr: str, pods: Sequence[Obj], window: float, reason: str) -> dict[str, PodMetric]:
        names = {_pod_name(p) for p in pods}
        out: dict[str, PodMetric] = {}
        for labels, value, ts in await self.query(expr, reason):
            pod = labels.get("pod")
            if pod in names:
                out[pod] = PodMetric(value, ts, window)
        if not out:
            raise MetricError(reason, f"no metrics returned for the target's pods from {expr!r}")
        return out

    async def pod_resource(self, namespace: str, pods: Sequence[Obj], resource: str,
                           container: str | None = None) -> dict[str, PodMetric]:
        matchers = [f"namespace={promql_string(namespace)}", f"pod=~{promql_string(pods_regex(pods))}"]
        if container:
            matchers.append(f"container={promql_string(container)}")
        if resource == "cpu":
            expr = f"sum by (pod) (rate({series('container_cpu_usage_seconds_total', matchers)}" \
                   f"[{PROMETHEUS_RATE_WINDOW}]))"
            window = 60.0
        elif resource == "memory":
            expr = f"sum by (pod) ({series('container_memory_working_set_bytes', matchers)})"
            window = 0.0
        else:
            raise MetricError("FailedGetResourceMetric", f"resource {resource!r} is not measured (only cpu, memory)")
        return await self._per_pod(expr, pods, window, "FailedGetResourceMetric")

    async def pods_metric(self, namespace: str, pods: Sequence[Obj], metric: Obj) -> dict[str, PodMetric]:
        name = str(metric.get("name") or "")
        if _SERIES_NAME.match(name):
            matchers = [f"namespace={promql_string(namespace)}", f"pod=~{promql_string(pods_regex(pods))}",
                        *selector_matchers(metric.get("selector"))]
            expr = f"avg by (pod) ({series(name, matchers)})"
        else:
            expr = substitute(name, namespace=namespace, pods=pods_regex(pods))
        return await self._per_pod(expr, pods, 0.0, "FailedGetPodsMetric")

    async def _total(self, expr: str, reason: str) -> float:
        result = await self.query(expr, reason)
        if not result:
            raise MetricError(reason, f"no metrics returned from {expr!r}")
        return sum(value for _, value, _ in result)

    async def object_metric(self, namespace: str, described: Obj, metric: Obj) -> float:
        name = str(metric.get("name") or "")
        kind, obj_name = str(described.get("kind") or ""), str(described.get("name") or "")
        if _SERIES_NAME.match(name):
            matchers = [f"namespace={promql_string(namespace)}", f"{kind.lower()}={promql_string(obj_name)}",
                        *selector_matchers(metric.get("selector"))]
            expr = f"sum({series(name, matchers)})"
        else:
            expr = substitute(name, namespace=namespace, kind=kind, name=obj_name)
        return await self._total(expr, "FailedGetObjectMetric")

    async def external_metric(self, namespace: str, metric: Obj) -> float:
        name = str(metric.get("name") or "")
        if _SERIES_NAME.match(name):
            expr = f"sum({series(name, selector_matchers(metric.get('selector')))})"
        else:
            expr = substitute(name, namespace=namespace)
        return await self._total(expr, "FailedGetExternalMetric")


def make_source(registry: Any, prometheus_url: str | None) -> MetricsSource:
    """The default source: agents for resources (Prometheus for everything when a URL is given)."""
    if prometheus_url:
        return PrometheusSource(prometheus_url)
    return AgentSource(registry)
