"""A bounded load loop through a Service, from a pod on a lab host, counting every request.

`LoadClient(lc, host_index, url)` runs a busybox `sh` loop in a pod pinned to one lab host
(`nodeSelector: {lab-host: h<i>}`, the label the lab inventory gives each node). Each request
is `timeout -s KILL <timeout_s> wget -O- <url>`: this busybox's wget has no timeout option
(`-T` crashes it), and killing it bounds every phase of a request (name lookup, connect,
response). The loop writes one line per request to the pod's log:

    ok <seq> <start> <end> <body, whitespace collapsed, at most 200 characters>
    fail <seq> <start> <end> rc=<exit code> <wget's error, or "timed out after <n>s">

with `start` and `end` read from /proc/uptime (seconds, two decimals): the machine's uptime,
system-wide, the same clock `uptime()` reads in the test process, so request times line up
with what the test observed. Between requests the loop sleeps to hold about `rate`
requests a second (a request that runs late is not made up for). It stops after
`max_requests`, after `seconds`, or when the file /tmp/stop appears in its container
(`stop()`), then prints `done sent=<n> ok=<n> fail=<n>` and sleeps until the pod is deleted.

The log is read with `docker logs` on the lab host itself (`Lab.exec_in`), so results stay
readable while agents restart or the master is busy; the client's own host must not be
frozen meanwhile (its dockerd would not answer). Traffic goes only to the URL the test
gives, which must name a cluster Service or a private (lab, pod or service) address.

    with LoadClient(lc, 0, "http://web/") as client:   # `with` deletes the pod at the end
        client.start()                                  # Running, and a first request made
        t = uptime()
        ...                                             # what the test does under load
        result = client.finish()                        # stop, wait for `done`, parse the log
    assert result.failures_after(t + 1) == [], result.failure_lines()
    print(result.summary())
"""

from __future__ import annotations

import ipaddress
import re
import subprocess
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from orchestrator.errors import ApiError
from orchestrator.objects.kinds import resolve

if TYPE_CHECKING:
    from tests.lab.conftest import LabCluster

POD = resolve("pods")
NAMESPACE = "default"
IMAGE = "dockyard/busybox:1"
CONTAINER = "load"
STOP_FILE = "/tmp/stop"
BODY_CHARS = 200

# Parameters come in as environment variables, so the URL is never parsed by the shell.
# Times are kept in centiseconds of uptime: `${up%.*}` seconds, `1${up#*.} - 100` the
# hundredths (the leading 1 keeps "08" from being read as octal).
SCRIPT = r"""set -f
mkdir -p /tmp
cs() { echo $(( ${1%.*} * 100 + 1${1#*.} - 100 )); }
read -r up _ < /proc/uptime
now=$(cs "$up"); end=$((now + LOAD_SECONDS * 100)); next=$now
n=0; ok=0; fail=0
while [ "$n" -lt "$LOAD_MAX" ] && [ "$now" -lt "$end" ] && [ ! -e /tmp/stop ]; do
  n=$((n + 1))
  read -r s _ < /proc/uptime
  if body=$(timeout -s KILL "$LOAD_TIMEOUT" wget -O- "$LOAD_URL" 2>/tmp/err); then
    read -r e _ < /proc/uptime
    ok=$((ok + 1))
    echo ok $n $s $e ${body:0:LOAD_BODY}
  else
    rc=$?
    read -r e _ < /proc/uptime
    fail=$((fail + 1))
    msg=""; last=""
    while IFS= read -r l; do
      [ -n "$l" ] && last=$l
      case $l in wget:*) msg=$l ;; esac
    done < /tmp/err
    [ "$rc" -eq 137 ] && msg="timed out after ${LOAD_TIMEOUT}s"
    echo fail $n $s $e rc=$rc ${msg:-$last}
  fi
  now=$(cs "$e"); next=$((next + LOAD_STEP))
  if [ "$now" -lt "$next" ]; then
    d=$((next - now))
    sleep $((d / 100)).$((d % 100 / 10))$((d % 10))
    read -r up _ < /proc/uptime; now=$(cs "$up")
  else
    next=$now
  fi
done
echo "done sent=$n ok=$ok fail=$fail"
exec sleep 1000000
"""


def uptime() -> float:
    """The machine's uptime in seconds: the clock of the load log's request times."""
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])


@dataclass(frozen=True)
class Request:
    seq: int
    start: float  # uptime seconds
    end: float
    ok: bool
    detail: str  # the body (ok) or the error (fail)

    @property
    def duration(self) -> float:
        return self.end - self.start

    def line(self, since: float = 0.0) -> str:
        return f"#{self.seq} {self.start - since:.2f}s +{self.duration:.2f}s {'ok' if self.ok else 'fail'} {self.detail}"


@dataclass
class LoadResult:
    sent: int = 0
    ok: int = 0
    failed: int = 0
    done: bool = False  # the loop printed its `done` line: counts are final
    requests: list[Request] = field(default_factory=list)

    @property
    def failures(self) -> list[Request]:
        return [r for r in self.requests if not r.ok]

    def failures_after(self, t: float) -> list[Request]:
        """The requests that started after uptime `t` and failed."""
        return [r for r in self.requests if not r.ok and r.start > t]

    def missing(self) -> list[int]:
        """Sequence numbers up to `sent` without a line in the log (there should be none)."""
        seen = {r.seq for r in self.requests}
        return [n for n in range(1, self.sent + 1) if n not in seen]

    def failure_lines(self, limit: int = 20) -> list[str]:
        return [r.line() for r in self.failures[:limit]]

    def summary(self) -> str:
        """One line: counts, the span of the run, latency and where the failures were."""
        text = f"sent={self.sent} ok={self.ok} failed={self.failed}"
        if not self.done:
            text += " (running)"
        if not self.requests:
            return text
        first, last = self.requests[0], self.requests[-1]
        span = last.end - first.start
        text += f" in {span:.1f}s (uptime {first.start:.2f}-{last.end:.2f}, {len(self.requests) / max(span, 0.01):.1f}/s)"
        times = sorted(r.duration for r in self.requests if r.ok)
        if times:
            text += f" latency p50={times[len(times) // 2]:.2f}s max={times[-1]:.2f}s"
        failures = self.failures
        if failures:
            text += (f" failures at {failures[0].start:.2f}-{failures[-1].end:.2f}"
                     f" (longest run {_longest_run(self.requests)}, first: {failures[0].detail})")
        gaps = self.missing()
        if gaps:
            text += f" missing={len(gaps)}"
        return text


def _longest_run(requests: list[Request]) -> int:
    best = run = 0
    for r in requests:
        run = 0 if r.ok else run + 1
        best = max(best, run)
    return best


_DONE = re.compile(r"done sent=(\d+) ok=(\d+) fail=(\d+)\s*$")
_NUMBER = re.compile(r"\d+(\.\d+)?$")


def parse_log(text: str) -> LoadResult:
    """The load loop's log as a LoadResult. Lines of other shapes are ignored; without the
    `done` line the counts are those of the request lines so far."""
    result = LoadResult()
    for line in text.splitlines():
        parts = line.rstrip("\r").split(" ", 4)
        if (parts[0] in ("ok", "fail") and len(parts) >= 4 and parts[1].isdigit()
                and _NUMBER.match(parts[2]) and _NUMBER.match(parts[3])):
            result.requests.append(Request(int(parts[1]), float(parts[2]), float(parts[3]), parts[0] == "ok",
                                           parts[4].strip() if len(parts) > 4 else ""))
        elif m := _DONE.match(line):
            result.done = True
            result.sent, result.ok, result.failed = int(m[1]), int(m[2]), int(m[3])
    result.requests.sort(key=lambda r: r.seq)
    if not result.done:
        result.sent = len(result.requests)
        result.ok = sum(r.ok for r in result.requests)
        result.failed = result.sent - result.ok
    return result


def check_url(url: str) -> None:
    """Refuse a URL that could leave the lab: its host must be a cluster name (`web`,
    `web.ns.svc[.cluster.local]`) or a private address (lab hosts, pods, services)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme != "http" or not host:
        raise ValueError(f"load URL {url!r}: an http:// URL with a host is needed")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None:
        if not address.is_private:
            raise ValueError(f"load URL {url!r}: {host} is not a private (lab) address")
        return
    if "." not in host or host.endswith((".svc", ".svc.cluster.local")):
        return
    raise ValueError(f"load URL {url!r}: {host} is neither a cluster Service name nor a private address")


class LoadClient:
    """A load loop in a pod on lab host `host_index` (see the module's docstring)."""

    def __init__(self, lc: LabCluster, host_index: int, url: str, rate: float = 20.0, timeout_s: int = 1,
                 max_requests: int = 6000, seconds: int = 300, name: str = "load") -> None:
        if not 0 <= host_index < len(lc.lab.hosts):
            raise ValueError(f"no lab host {host_index}: the lab has {len(lc.lab.hosts)}")
        if not 0 < rate <= 100:
            raise ValueError(f"rate {rate}: between 0 and 100 requests a second")
        if timeout_s < 1 or max_requests < 1 or seconds < 1:
            raise ValueError("timeout_s, max_requests and seconds must be at least 1")
        check_url(url)
        self.lc = lc
        self.host = lc.lab.hosts[host_index]
        self.url = url
        self.rate = rate
        self.timeout_s = int(timeout_s)
        self.max_requests = int(max_requests)
        self.seconds = int(seconds)
        self.name = name
        self.uid = ""  # of the pod this client created
        self._final: LoadResult | None = None

    # -- the pod -----------------------------------------------------------------------------

    def manifest(self) -> dict[str, Any]:
        env = {
            "LOAD_URL": self.url,
            "LOAD_TIMEOUT": str(self.timeout_s),
            "LOAD_MAX": str(self.max_requests),
            "LOAD_SECONDS": str(self.seconds),
            "LOAD_STEP": str(max(1, round(100 / self.rate))),  # centiseconds between request starts
            "LOAD_BODY": str(BODY_CHARS),
        }
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": self.name, "namespace": NAMESPACE, "labels": {"role": "lab-load"}},
            "spec": {
                "nodeSelector": {"lab-host": f"h{self.host.index}"},
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 1,
                "containers": [{
                    "name": CONTAINER,
                    "image": IMAGE,
                    "imagePullPolicy": "Never",
                    "command": ["sh", "-c", SCRIPT],
                    "env": [{"name": k, "value": v} for k, v in env.items()],
                }],
            },
        }

    def start(self, timeout: float = 90) -> LoadClient:
        """Create the pod and wait until it runs and has logged its first request. Once."""
        if self.uid:
            return self
        created = self.lc.client.create(self.manifest(), NAMESPACE)
        self.uid = created["metadata"]["uid"]
        deadline = time.monotonic() + timeout
        last = "no status yet"
        while time.monotonic() < deadline:
            try:
                pod = self.lc.client.get(POD, self.name, NAMESPACE)
                phase = (pod.get("status") or {}).get("phase") or "Pending"
                last = f"phase {phase}"
                if phase in ("Failed", "Succeeded"):
                    break
                if phase == "Running" and self.results().requests:
                    return self
            except (ApiError, RuntimeError, subprocess.TimeoutExpired) as e:
                last = str(e)
            time.sleep(0.3)
        raise AssertionError(f"load pod {self.name} on {self.host.name} made no request within {timeout:.0f}s "
                             f"({last}); its log: {self._log_tail()}")

    def container_id(self) -> str:
        """The load container on the client's host (also once it has exited)."""
        r = self._docker("ps", "-aq", "--filter", f"label=dockyard.io/pod-uid={self.uid}",
                         "--filter", f"label=dockyard.io/container-name={CONTAINER}")
        ids = r.stdout.split()
        if not ids:
            raise RuntimeError(f"no container of load pod {self.name} on {self.host.name}")
        return ids[0]  # the newest

    # -- results -----------------------------------------------------------------------------

    def log(self) -> str:
        return self._docker("logs", self.container_id()).stdout

    def results(self) -> LoadResult:
        """The requests so far (final once `done` is set)."""
        if self._final is not None:
            return self._final
        result = parse_log(self.log())
        if result.done:
            self._final = result
        return result

    def stop(self) -> None:
        """Ask the loop to stop after the request under way."""
        self._docker("exec", self.container_id(), "touch", STOP_FILE)

    def finish(self, timeout: float | None = None) -> LoadResult:
        """Stop the loop and return its final result."""
        self.stop()
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout_s + 15)
        while True:
            result = self.results()
            if result.done:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"load pod {self.name} did not finish: {result.summary()}")
            time.sleep(0.2)

    def delete(self, timeout: float = 30) -> None:
        """Delete the pod and wait until it is gone; its container is removed on the host
        directly if the API cannot do it (the master or the agent down)."""
        if not self.uid:
            return
        try:
            self.lc.client.delete(POD, self.name, NAMESPACE)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    pod = self.lc.client.get(POD, self.name, NAMESPACE)
                except ApiError as e:
                    if e.code == 404:
                        return
                    raise
                if pod["metadata"]["uid"] != self.uid:
                    return
                time.sleep(0.3)
        except ApiError as e:
            if e.code == 404:
                return
        ids = self._docker("ps", "-aq", "--filter", f"label=dockyard.io/pod-uid={self.uid}", check=False).stdout.split()
        if ids:
            self._docker("rm", "-f", *ids, check=False)

    def __enter__(self) -> LoadClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self.delete()
        except Exception:
            if exc is None:
                raise

    # -- helpers -----------------------------------------------------------------------------

    def _docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.lc.lab.exec_in(self.host, "docker", *args, check=check, timeout=30)

    def _log_tail(self, lines: int = 5) -> str:
        try:
            return " | ".join(self.log().splitlines()[-lines:]) or "(empty)"
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            return f"(unreadable: {e})"
