"""The Shoal run: the real shoal-tracker, shoal-origin and N shoal-agent
binaries, one per namespace, configured by TOML files as an operator would
(the same keys as e2e/src/cluster.rs), then one blob pulled through every
agent's registry API at the same instant."""

import json
import os
import subprocess
import time

import blob
from procs import Barrier

TRACKER_PORT = 7070
ORIGIN_HTTP_PORT = 8080
ORIGIN_PEER_PORT = 7001
AGENT_API = "127.0.0.1:5050"  # each agent's own loopback, as on a node
AGENT_PEER_PORT = 7002


def _ring(origin_ip):
    return (f'[[origins]]\nname = "origin-0"\nhttp = "http://{origin_ip}:{ORIGIN_HTTP_PORT}"\n'
            f'peer = "{origin_ip}:{ORIGIN_PEER_PORT}"\n')


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def write_configs(work, net, agents, layout, announce_interval):
    """One TOML file per component, in `work`. Upload limits stay 0: the
    links are shaped by tc, as a real network would be."""
    tracker, origin = net.hosts["tracker"], net.hosts["origin"]
    ring = _ring(origin.ip)
    configs = {
        "tracker": _write(os.path.join(work, "tracker.toml"),
                          f'listen = "{tracker.ip}:{TRACKER_PORT}"\n'
                          f"[announce]\ninterval_seconds = {announce_interval}\n"
                          f"[metainfo]\nreplication = 1\n{ring}"),
        "origin": _write(os.path.join(work, "origin.toml"),
                         f'name = "origin-0"\nlisten = "{origin.ip}:{ORIGIN_HTTP_PORT}"\n'
                         f'peer_listen = "{origin.ip}:{ORIGIN_PEER_PORT}"\n'
                         f'data_dir = "{work}/origin-data"\nupload_limit = 0\nreplication = 1\n'
                         f'default_registry = "{blob.NAMESPACE}"\n'
                         f'[upstreams."{blob.NAMESPACE}"]\nlayout = "{layout}"\n{ring}'),
    }
    for i in range(agents):
        host = net.hosts[f"a{i}"]
        configs[f"a{i}"] = _write(
            os.path.join(work, f"agent-{i}.toml"),
            f'listen = "{AGENT_API}"\npeer_listen = "{host.ip}:{AGENT_PEER_PORT}"\n'
            f'data_dir = "{work}/agent-{i}-data"\ncache_bytes = 0\n'
            f'tracker = "http://{tracker.ip}:{TRACKER_PORT}"\n'
            f'default_registry = "{blob.NAMESPACE}"\nupload_limit = 0\nreplication = 1\n{ring}')
    return configs


def curl(ns, url, timeout=5):
    """GET `url` from inside `ns`: (status, body)."""
    result = subprocess.run(
        ["ip", "netns", "exec", ns, "curl", "-s", "--max-time", str(timeout),
         "-w", "\n%{http_code}", url],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=False)
    # Bodies may be binary (metainfo is protobuf): only JSON ones are read.
    body, _, code = result.stdout.decode(errors="replace").rpartition("\n")
    return int(code or 0), body


def wait_port(ns, host, port, timeout=30, alive=lambda: None):
    """Waits until something accepts on host:port in `ns`; `alive` raises
    when the process that should listen has died, so a crash is reported
    at once with its log rather than as a time-out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive()
        probe = subprocess.run(["ip", "netns", "exec", ns, "bash", "-c",
                                f"exec 3<>/dev/tcp/{host}/{port}"],
                               stderr=subprocess.DEVNULL, check=False)
        if probe.returncode == 0:
            return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on {host}:{port} in {ns} after {timeout} s")


class ShoalCluster:
    def __init__(self, net, procs, bins, work, agents):
        self.net, self.procs, self.bins, self.work, self.agents = net, procs, bins, work, agents
        self.names = []

    def start(self, layout, announce_interval, rust_log):
        configs = write_configs(self.work, self.net, self.agents, layout, announce_interval)
        env = {"RUST_LOG": rust_log, "NO_COLOR": "1"}
        hosts = self.net.hosts
        # Origin first: the tracker and agents only name it, but the
        # tracker asks it for metainfo on the first announce.
        alive = lambda: self.procs.check_alive(self.names)  # noqa: E731
        self._start("shoal-origin", "origin", configs["origin"], env)
        wait_port(hosts["origin"].ns, hosts["origin"].ip, ORIGIN_HTTP_PORT, alive=alive)
        self._start("shoal-tracker", "tracker", configs["tracker"], env)
        wait_port(hosts["tracker"].ns, hosts["tracker"].ip, TRACKER_PORT, alive=alive)
        for i in range(self.agents):
            self._start("shoal-agent", f"a{i}", configs[f"a{i}"], env)
        for i in range(self.agents):
            wait_port(hosts[f"a{i}"].ns, "127.0.0.1", AGENT_API.split(":")[1], alive=alive)

    def _start(self, binary, role, config, env):
        name = f"shoal-{role}"
        self.procs.start(name, self.net.hosts[role].ns,
                         [os.path.join(self.bins, binary), "--config", config], env=env)
        self.names.append(name)

    def warm_origin(self, digest, timeout=300):
        """Has the origin fetch the blob from its layout and compute its
        metainfo before the clock starts: the bound assumes the seed holds
        the file, and a registry fetch is not what is being measured."""
        origin = self.net.hosts["origin"]
        url = (f"http://{origin.ip}:{ORIGIN_HTTP_PORT}/internal/v1/metainfo/{digest}"
               f"?repository={blob.REPOSITORY}&namespace={blob.NAMESPACE}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, _ = curl(origin.ns, url)
            if status == 200:
                return
            if status not in (0, 202):
                raise RuntimeError(f"origin answered {status} for the blob's metainfo")
            time.sleep(0.5)
        raise TimeoutError("the origin did not fetch the blob in time")

    def pull(self, digest, timeout):
        """Every agent GETs the blob at once; returns (t0, finished)."""
        barrier = Barrier(self.procs)
        url = f"http://{AGENT_API}/v2/{blob.REPOSITORY}/blobs/{digest}"
        for i in range(self.agents):
            barrier.add(f"pull-a{i}", self.net.hosts[f"a{i}"].ns,
                        f"curl -s -o /dev/null --max-time {max(1, round(timeout))} "
                        f"-w '%{{http_code}} %{{size_download}}' {url}")
        t0 = barrier.release()
        return t0, barrier.wait_all(timeout + 10)

    def origin_stats(self):
        origin = self.net.hosts["origin"]
        status, body = curl(origin.ns, f"http://{origin.ip}:{ORIGIN_HTTP_PORT}/shoal/v1/stats")
        return json.loads(body) if status == 200 else {}

    def agent_stats(self):
        out = {}
        for i in range(self.agents):
            status, body = curl(self.net.hosts[f"a{i}"].ns, f"http://{AGENT_API}/shoal/v1/stats")
            out[f"a{i}"] = json.loads(body) if status == 200 else {}
        return out

    def stop(self):
        # Agents first so that none falls back to an origin that is going.
        self.procs.stop([n for n in self.names if n.startswith("shoal-a")])
        self.procs.stop(self.names)
        self.names = []
