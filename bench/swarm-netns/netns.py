"""The shaped network: one namespace per host, all joined by a bridge that
lives in a namespace of its own.

    [tracker]eth0 ==veth== h0 \
    [origin] eth0 ==veth== h1 -- br0   (all in <prefix>-br)
    [a0]     eth0 ==veth== h2 /
    ...

Upload is shaped by a tbf on each host's own eth0 (what the host sends);
download by a tbf on the bridge port facing it (what the bridge sends to
the host). The namespaces get addresses in one /16 and no default route,
so nothing sent inside them can reach another network: a packet for any
other address fails with "network unreachable".

Every name starts with the prefix, so a later run can find and remove the
leftovers of a run that was killed before it could clean up.
"""

import json
import os
import subprocess
import time
from dataclasses import dataclass, field


def sh(*argv, check=True, capture=False):
    """Runs a command; with `capture`, returns its stdout as text."""
    result = subprocess.run(
        [str(a) for a in argv],
        check=False,
        text=True,
        stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"`{' '.join(map(str, argv))}` failed: {result.stderr.strip()}")
    return result.stdout if capture else None


@dataclass
class Host:
    """One namespace on the bridge."""

    ns: str
    ip: str
    # The bridge port facing this host (in the bridge namespace).
    port: str
    up_bps: float  # bytes/s, inf = unshaped
    down_bps: float


@dataclass
class Network:
    prefix: str
    subnet: str  # first two octets, e.g. "10.213"
    tbf_latency_ms: int
    hosts: dict = field(default_factory=dict)  # role -> Host

    @property
    def bridge_ns(self):
        return f"{self.prefix}-br"

    def add_host(self, role, ip, up_bps, down_bps):
        """Creates `<prefix>-<role>`, its veth pair and both shapers."""
        ns = f"{self.prefix}-{role}"
        port = f"h{len(self.hosts)}"
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        # Created from inside the host namespace with the peer end placed
        # straight into the bridge namespace: "eth0" never exists in the
        # root namespace, where it would clash with the real one.
        sh("ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", port,
           "netns", self.bridge_ns)
        sh("ip", "-n", ns, "addr", "add", f"{ip}/16", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        sh("ip", "-n", self.bridge_ns, "link", "set", port, "master", "br0")
        sh("ip", "-n", self.bridge_ns, "link", "set", port, "up")
        host = Host(ns, ip, port, up_bps, down_bps)
        self._shape(ns, "eth0", up_bps)
        self._shape(self.bridge_ns, port, down_bps)
        self.hosts[role] = host
        return host

    def create_bridge(self):
        sh("ip", "netns", "add", self.bridge_ns)
        sh("ip", "-n", self.bridge_ns, "link", "set", "lo", "up")
        sh("ip", "-n", self.bridge_ns, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", self.bridge_ns, "link", "set", "br0", "up")

    def _shape(self, ns, dev, bytes_per_s):
        """A tbf on `dev`'s egress, or nothing for an unshaped link.

        The bucket holds at least 128 KiB so that a 64 KiB GSO segment
        from the veth passes whole (tbf otherwise splits it in software),
        and 5 ms of traffic at high rates so the timer granularity does not
        cost throughput. The queue holds `tbf_latency_ms` of traffic, like
        a modest switch buffer: deep enough for TCP to fill the link, short
        enough that small control messages are not stuck behind seconds of
        data.
        """
        if bytes_per_s == float("inf"):
            return
        burst = max(128 * 1024, int(bytes_per_s / 200))
        sh("tc", "-n", ns, "qdisc", "replace", "dev", dev, "root", "tbf",
           "rate", f"{int(bytes_per_s * 8)}bit", "burst", str(burst),
           "latency", f"{self.tbf_latency_ms}ms")

    def counters(self):
        """Bytes each host sent and received on its eth0, by role."""
        out = {}
        for role, host in self.hosts.items():
            link = json.loads(sh("ip", "-j", "-s", "-n", host.ns, "link", "show", "dev", "eth0",
                                 capture=True))[0]
            stats = link["stats64"]
            out[role] = {"tx": stats["tx"]["bytes"], "rx": stats["rx"]["bytes"]}
        return out

    def shaper_drops(self):
        """Packets the tbf shapers dropped, all hosts together."""
        total = 0
        for host in self.hosts.values():
            for ns, dev in ((host.ns, "eth0"), (self.bridge_ns, host.port)):
                for qdisc in json.loads(sh("tc", "-j", "-s", "-n", ns, "qdisc", "show", "dev",
                                           dev, capture=True)):
                    if qdisc.get("kind") == "tbf":
                        total += qdisc.get("drops", 0)
        return total


def namespaces_with_prefix(prefix):
    listing = sh("ip", "netns", "list", capture=True, check=False) or ""
    names = [line.split()[0] for line in listing.splitlines() if line.strip()]
    return [n for n in names if n.startswith(prefix + "-")]


def remove_namespaces(prefix, log=print):
    """Kills whatever still runs in our namespaces, then deletes them.

    Only processes inside namespaces with our prefix are touched: those
    are the ones this harness (this run or a killed earlier one) started.
    Deleting a namespace removes its veth ends, and so the bridge ports.
    """
    names = namespaces_with_prefix(prefix)
    for signal_name in ("TERM", "KILL"):
        pids = []
        for ns in names:
            out = sh("ip", "netns", "pids", ns, capture=True, check=False) or ""
            pids += [p for p in out.split() if p.isdigit() and int(p) != os.getpid()]
        if not pids:
            break
        log(f"stopping {len(pids)} leftover process(es) in {prefix}-* namespaces")
        sh("kill", f"-{signal_name}", *pids, check=False)
        time.sleep(1.0)
    for ns in names:
        sh("ip", "netns", "del", ns, check=False)


SENDFILE_SERVER = """
import socket, sys
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind((sys.argv[1], int(sys.argv[2])))
listener.listen()
conn, _ = listener.accept()
with open(sys.argv[3], "rb") as f:
    conn.sendfile(f)
conn.close()
"""


def link_check(sender, receiver, path, port=5999):
    """Seconds one TCP stream takes to move the file at `path` from the
    `sender` host to the `receiver` host (sendfile in, discard out): how
    close a single flow gets to the sender's shaped rate once Ethernet,
    IP and TCP headers take their share."""
    server = subprocess.Popen(["ip", "netns", "exec", sender.ns, "python3", "-c",
                               SENDFILE_SERVER, sender.ip, str(port), path])
    try:
        time.sleep(1.5)  # listening (a probe connection would take the one accept)
        start = time.monotonic()
        sh("ip", "netns", "exec", receiver.ns, "bash", "-c",
           f"cat </dev/tcp/{sender.ip}/{port} >/dev/null")
        return time.monotonic() - start
    finally:
        server.kill()
        server.wait()
