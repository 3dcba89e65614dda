"""Pod network attachment: the agent's own bridge plugin, like CNI's ``bridge`` + ``host-local``.

A pod's sandbox container is created by Docker with ``network_mode=none``: Docker makes an
empty network namespace (loopback only) and nothing else. The agent then attaches it to the
node's pod bridge itself, as kubelet's CNI bridge plugin does:

* **addresses** (``PodIPAM``) come from the node's pod CIDR, minus the network, gateway and
  broadcast addresses. The address is chosen *before* the sandbox is created and written
  into its labels (``dockyard.io/pod-ip``), so a restarted agent rebuilds the allocation
  from ``docker ps`` like everything else it knows. Allocation goes round-robin from the
  last address handed out (after a restart: from the highest address in use), so a freed
  address is not reused at once (a stale conntrack entry or Endpoint then points at nobody
  rather than at a new pod), like host-local; when an address is reused all the same, the
  host's neighbour entry for it is flushed as the new pod is attached;
* **the link** (``attach``) is a veth pair created with its peer directly inside the
  sandbox's namespace as ``eth0`` (``ip link add dy<id> type veth peer name eth0 netns
  <pid>``); the host end joins the bridge with hairpin mode on, then ``eth0`` gets the
  address and a default route via the bridge's gateway. Two ``ip -batch`` runs, a few
  milliseconds in all. When the sandbox's process exits its namespace goes, and the veth
  pair with it: there is nothing to tear down.

Why not let Docker attach the sandbox to the bridge network: a container start on a
user-defined Docker network also sets up Docker's embedded DNS and its per-container
iptables rules, which costs about 70 ms of the ~220 ms a sandbox start takes on a small
host, for a resolver pods do not use (they get the cluster DNS). The bridge itself is still
a Docker network, so Docker keeps owning the bridge, its gateway address and the masquerade
of traffic leaving the node.

``render_*`` and ``PodIPAM`` are pure (tested with tables); ``attach`` runs ``ip`` and
``nsenter`` and raises ``AttachError`` with their stderr.
"""

from __future__ import annotations

import ipaddress
import subprocess
import threading
from collections.abc import Iterable
from dataclasses import dataclass

PENDING = "pending"


class AttachError(Exception):
    """The pod's network could not be set up (message says which step and why)."""


class PoolExhausted(AttachError):
    """Every address of the pod CIDR is in use."""


@dataclass(frozen=True)
class Bridge:
    """The node's pod bridge: Linux bridge name, gateway address and subnet."""

    name: str
    gateway: str
    subnet: str

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_network(self.subnet, strict=False).prefixlen


def host_ifname(container_id: str) -> str:
    """The host end of a sandbox's veth: ``dy`` + 12 hex of the container id (≤ 15 chars)."""
    return f"dy{container_id[:12]}"


def render_host(ifname: str, pid: int, bridge: str, ip: str | None = None) -> str:
    """``ip -batch`` lines run on the host: the pair, the bridge port, hairpin, up, and
    the host's neighbour entry for the pod's address flushed: an address that an earlier
    pod had may still map to that pod's MAC, and the kernel would keep sending there for
    the seconds its stale-entry probing takes (probes and Service traffic would time out)."""
    return (
        f"link add {ifname} type veth peer name eth0 netns {pid}\n"
        f"link set dev {ifname} master {bridge}\n"
        f"link set dev {ifname} type bridge_slave hairpin on\n"
        f"link set dev {ifname} up\n"
    ) + (f"neigh flush to {ip} dev {bridge}\n" if ip else "")


def render_pod(ip: str, bridge: Bridge) -> str:
    """``ip -batch`` lines run inside the sandbox's namespace: address, up, default route."""
    return (
        f"addr add {ip}/{bridge.prefixlen} dev eth0\n"
        "link set dev lo up\n"
        "link set dev eth0 up\n"
        f"route add default via {bridge.gateway} dev eth0\n"
    )


def _ip_batch(script: str, pid: int | None = None) -> None:
    argv = ["ip", "-batch", "-"]
    if pid is not None:
        argv = ["nsenter", f"--net=/proc/{pid}/ns/net", *argv]
    try:
        r = subprocess.run(argv, input=script, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise AttachError(f"running {argv[0]}: {e}") from None
    if r.returncode != 0:
        where = "in the pod's network namespace" if pid is not None else "on the host"
        raise AttachError(f"ip {where} failed: {(r.stderr or r.stdout).strip()}")


def attach(container_id: str, pid: int, ip: str, bridge: Bridge) -> None:
    """Give the sandbox (main process `pid`) its eth0 on `bridge` with address `ip`."""
    ifname = host_ifname(container_id)
    _ip_batch(render_host(ifname, pid, bridge.name, ip))
    _ip_batch(render_pod(ip, bridge), pid)


def attached_links() -> set[str]:
    """Names of the veth host ends present in this namespace (``ip -o link show type veth``)."""
    r = subprocess.run(["ip", "-o", "link", "show", "type", "veth"], capture_output=True, text=True, check=False)
    names: set[str] = set()
    for line in r.stdout.splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            names.add(parts[1].strip().split("@", 1)[0])
    return names


class PodIPAM:
    """Pod addresses of one node's CIDR, held by sandbox container id (or ``pending``).

    Thread-safe. ``load`` replaces the table with what the engine listed (sandbox id → its
    address label); entries allocated or bound after ``mark()`` was taken (so possibly
    after the listing) are kept.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[str, tuple[str, int]] = {}  # ip -> (container id or PENDING, change seq)
        self._seq = 0
        self._last: int | None = None
        self.loaded = False

    def mark(self) -> int:
        with self._lock:
            return self._seq

    def _set(self, ip: str, who: str) -> None:
        self._seq += 1
        self._held[ip] = (who, self._seq)

    def load(self, held: Iterable[tuple[str, str]], since: int | None = None) -> None:
        with self._lock:
            fresh = {ip: v for ip, v in self._held.items() if since is not None and v[1] > since}
            self._held = {ip: (cid, 0) for cid, ip in held if ip}
            self._held.update(fresh)
            if self._last is None and self._held:
                # a restarted agent goes on after the highest address in use rather than
                # from the bottom, where the addresses freed just before it started are
                self._last = max(int(ipaddress.ip_address(ip)) for ip in self._held)
            self.loaded = True

    def allocate(self, subnet: str, reserved: Iterable[str] = ()) -> str:
        """The next free address after the last one handed out; it stays pending until
        `bind` (or `release`)."""
        net = ipaddress.ip_network(subnet, strict=False)
        skip = {str(x) for x in reserved}
        with self._lock:
            hosts = net.num_addresses - 2 if net.num_addresses > 2 else net.num_addresses
            first = int(net.network_address) + (1 if net.num_addresses > 2 else 0)
            start = 0 if self._last is None or not first <= self._last < first + hosts else self._last - first + 1
            for k in range(hosts):
                addr = first + (start + k) % hosts
                ip = str(ipaddress.ip_address(addr))
                if ip in skip or ip in self._held:
                    continue
                self._set(ip, PENDING)
                self._last = addr
                return ip
        raise PoolExhausted(f"no free pod address left in {subnet}")

    def bind(self, ip: str, container_id: str) -> None:
        with self._lock:
            self._set(ip, container_id)

    def release(self, ip: str | None = None, container_id: str | None = None) -> None:
        """Free `ip` (if `container_id` is given, only while it holds it or is pending), or
        every address `container_id` holds."""
        with self._lock:
            if ip is not None:
                who = self._held.get(ip, ("", 0))[0]
                if container_id is None or who in (container_id, PENDING):
                    self._held.pop(ip, None)
                    self._seq += 1
            elif container_id is not None:
                for held_ip in [k for k, v in self._held.items() if v[0] == container_id]:
                    del self._held[held_ip]
                    self._seq += 1

    def held(self) -> dict[str, str]:
        with self._lock:
            return {ip: v[0] for ip, v in self._held.items()}
