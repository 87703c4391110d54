"""The BitTorrent run on the same namespaces and shapers: opentracker in the
tracker's namespace, an aria2c seed holding the whole file in the origin's,
and an aria2c peer in every agent's, all released at the same instant."""

import math
import os
import re
import shutil
import subprocess
import time

from procs import Barrier
from shoal import wait_port

TRACKER_PORT = 6969
PEER_PORT = 6881

# What every aria2c gets: no DHT or local discovery (nothing outside the
# swarm to find), no preallocation (the Shoal store does none either), no
# upload cap (tc shapes the links), seed until stopped, and announces as
# often as Shoal's agents do.
COMMON = ("--enable-dht=false --enable-dht6=false --bt-enable-lpd=false "
          "--enable-peer-exchange=true --file-allocation=none --seed-ratio=0.0 "
          "--max-overall-upload-limit=0 --max-upload-limit=0 --bt-max-peers=0 "
          "--allow-overwrite=true --auto-file-renaming=false --summary-interval=0 "
          "--console-log-level=warn --check-certificate=false")


def piece_exponent(size):
    """Piece length 2^n so the torrent has at most about 2,000 pieces,
    between 256 KiB and 16 MiB (what mktorrent and common clients do)."""
    return min(24, max(18, math.ceil(math.log2(max(1, size / 2000)))))


def make_torrent(work, blob_path, size, tracker_ip):
    """mktorrent over a symlink named `blob`, so every peer stores `blob`."""
    seed_dir = os.path.join(work, "bt-seed")
    os.makedirs(seed_dir, exist_ok=True)
    link = os.path.join(seed_dir, "blob")
    if not os.path.islink(link):
        os.symlink(blob_path, link)
    torrent = os.path.join(work, "blob.torrent")
    if os.path.exists(torrent):
        os.remove(torrent)
    subprocess.run(["mktorrent", "-a", f"http://{tracker_ip}:{TRACKER_PORT}/announce",
                    "-l", str(piece_exponent(size)), "-n", "blob", "-o", torrent, "-d", link],
                   check=True, stdout=subprocess.DEVNULL)
    shown = subprocess.run(["aria2c", "-S", torrent], check=True, text=True,
                           stdout=subprocess.PIPE).stdout
    info_hash = re.search(r"Info Hash:\s*([0-9a-fA-F]{40})", shown).group(1).lower()
    return seed_dir, torrent, info_hash


class TorrentSwarm:
    def __init__(self, net, procs, work, agents):
        self.net, self.procs, self.work, self.agents = net, procs, work, agents
        self.names = []

    def start_tracker(self, info_hash):
        """opentracker as packaged by Debian only serves whitelisted
        torrents; as root it chroots to -d and drops to nobody, so the
        whitelist is named relative to that directory."""
        ot_dir = os.path.join(self.work, "opentracker")
        os.makedirs(ot_dir, exist_ok=True)
        with open(os.path.join(ot_dir, "whitelist.txt"), "w") as f:
            f.write(info_hash + "\n")
        os.chmod(ot_dir, 0o755)
        tracker = self.net.hosts["tracker"]
        self._start("opentracker", "tracker",
                    ["opentracker", "-i", tracker.ip, "-p", TRACKER_PORT, "-P", TRACKER_PORT,
                     "-d", ot_dir, "-w", "whitelist.txt"])
        wait_port(tracker.ns, tracker.ip, TRACKER_PORT,
                  alive=lambda: self.procs.check_alive(self.names))

    def start_seed(self, seed_dir, torrent, announce_interval):
        seed = self.net.hosts["origin"]
        command = (f"aria2c {COMMON} --bt-seed-unverified=true --bt-tracker-interval="
                   f"{announce_interval} --listen-port={PEER_PORT} -d {seed_dir} "
                   f"--log={self.work}/bt-seed.aria2.log --log-level=notice {torrent}")
        self._start("bt-seed", "origin", ["sh", "-c", f"exec {command}"])
        wait_port(seed.ns, seed.ip, PEER_PORT, alive=lambda: self.procs.check_alive(self.names))
        # Let the seed announce, so that the first peers find it at once.
        time.sleep(max(2.0, announce_interval + 1.0))

    def _start(self, name, role, argv):
        self.procs.start(name, self.net.hosts[role].ns, argv)
        self.names.append(name)

    def download(self, torrent, announce_interval, timeout):
        """Every peer starts at once; a peer is done when aria2 calls its
        on-bt-download-complete hook (all pieces verified), and keeps
        seeding until every peer is done. Returns (t0 wall clock, {peer:
        seconds after t0})."""
        done_dir = os.path.join(self.work, "bt-done")
        shutil.rmtree(done_dir, ignore_errors=True)
        os.makedirs(done_dir)
        hook = os.path.join(self.work, "bt-done.sh")
        with open(hook, "w") as f:
            f.write('#!/bin/sh\ndate +%s.%N > "$BT_DONE_FILE"\n')
        os.chmod(hook, 0o755)

        barrier = Barrier(self.procs)
        for i in range(self.agents):
            peer_dir = os.path.join(self.work, f"bt-peer-{i}")
            shutil.rmtree(peer_dir, ignore_errors=True)
            os.makedirs(peer_dir)
            command = (f"aria2c {COMMON} --bt-tracker-interval={announce_interval} "
                       f"--listen-port={PEER_PORT} -d {peer_dir} "
                       f"--on-bt-download-complete={hook} "
                       f"--log={self.work}/bt-peer-{i}.aria2.log --log-level=notice {torrent}")
            name = f"bt-a{i}"
            barrier.add(name, self.net.hosts[f"a{i}"].ns, command,
                        env={"BT_DONE_FILE": os.path.join(done_dir, name)}, capture=False)
            self.names.append(name)
        barrier.release()
        wall0 = time.time()  # the release itself took microseconds

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = os.listdir(done_dir)
            if len(done) == self.agents and all(
                    os.path.getsize(os.path.join(done_dir, d)) for d in done):
                break
            self.procs.check_alive([n for n in self.names if n.startswith("bt-a")])
            time.sleep(0.05)
        else:
            raise TimeoutError(f"aria2: {len(os.listdir(done_dir))} of {self.agents} peers "
                               f"done after {timeout} s")
        times = {}
        for name in os.listdir(done_dir):
            with open(os.path.join(done_dir, name)) as f:
                times[name] = float(f.read()) - wall0
        return wall0, times

    def stop(self):
        self.procs.stop(self.names)
        self.names = []
