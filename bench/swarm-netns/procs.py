"""Processes started inside namespaces, each with a log file, all stopped
by pid at the end (never by name: other people's processes share the
machine)."""

import os
import signal
import subprocess
import threading
import time


class Processes:
    def __init__(self, log_dir):
        self.log_dir = log_dir
        self.running = []  # (name, Popen)

    def start(self, name, ns, argv, env=None, stdin=None, stdout=None):
        """Starts `argv` in namespace `ns`; stderr (and stdout unless
        captured) go to `<log_dir>/<name>.log`. `ip netns exec` execs the
        command, so the pid is the command's own."""
        log = open(os.path.join(self.log_dir, f"{name}.log"), "ab")
        process = subprocess.Popen(
            ["ip", "netns", "exec", ns, *map(str, argv)],
            stdin=stdin if stdin is not None else subprocess.DEVNULL,
            stdout=stdout if stdout is not None else log,
            stderr=log,
            env={**os.environ, **(env or {})},
        )
        log.close()
        self.running.append((name, process))
        return process

    def stop(self, names=None, grace=5.0):
        """SIGTERM, then SIGKILL after `grace` seconds, for the named
        processes (all when None)."""
        chosen = [(n, p) for n, p in self.running if names is None or n in names]
        for _, process in chosen:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for _, process in chosen:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.running = [(n, p) for n, p in self.running if (n, p) not in chosen]

    def check_alive(self, names):
        for name, process in self.running:
            if name in names and process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}: see "
                                   f"{self.log_dir}/{name}.log")

    def cpu_seconds(self, names):
        """[user, system] CPU seconds each named process used so far."""
        tick = os.sysconf("SC_CLK_TCK")
        out = {}
        for name, process in self.running:
            if name not in names:
                continue
            try:
                with open(f"/proc/{process.pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                out[name] = [int(fields[11]) / tick, int(fields[12]) / tick]
            except (OSError, IndexError, ValueError):
                pass
        return out


class Barrier:
    """Starts many commands at one instant.

    Each command runs as `sh -c 'read go; exec CMD'` with a pipe on stdin,
    so it is spawned (the slow part: `ip netns exec` and a shell) ahead of
    time and then released by one newline: the starts are microseconds
    apart instead of the milliseconds a fork-exec each would spread them.
    Completion times are taken when each process exits.
    """

    def __init__(self, processes):
        self.processes = processes
        self.waiting = []  # (name, Popen)
        self.finished = {}  # name -> (monotonic time, Popen)
        self._lock = threading.Lock()

    def add(self, name, ns, command, env=None, capture=True):
        process = self.processes.start(
            name, ns, ["sh", "-c", f"read go; exec {command}"], env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE if capture else None)
        self.waiting.append((name, process))

    def release(self):
        """Lets every command go; returns the start instant (monotonic)."""
        # Time for every shell to reach its `read`. One that is still
        # starting finds the newline waiting and starts late: counted
        # against the system measured, never in its favour.
        time.sleep(0.5)
        t0 = time.monotonic()
        for _, process in self.waiting:
            process.stdin.write(b"go\n")
            process.stdin.close()
        for name, process in self.waiting:
            threading.Thread(target=self._watch, args=(name, process), daemon=True).start()
        return t0

    def _watch(self, name, process):
        out = process.stdout.read() if process.stdout else b""
        process.wait()
        with self._lock:
            self.finished[name] = (time.monotonic(), process.returncode, out.decode())

    def wait_all(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.finished) == len(self.waiting):
                    return dict(self.finished)
            time.sleep(0.02)
        raise TimeoutError(f"{len(self.waiting) - len(self.finished)} of "
                           f"{len(self.waiting)} still running after {timeout:.0f} s")


CPU_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def machine_cpu():
    """Jiffies of all CPUs together by kind, from /proc/stat's first line."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    return dict(zip(CPU_FIELDS, values))


def cpu_shares(before, after):
    """Share of all CPU time each kind took between two snapshots, plus
    `busy`: everything but idle and iowait."""
    delta = {k: after[k] - before[k] for k in CPU_FIELDS}
    total = max(1, sum(delta.values()))
    shares = {k: v / total for k, v in delta.items()}
    shares["busy"] = 1 - shares["idle"] - shares["iowait"]
    return shares
