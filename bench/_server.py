"""Server processes for the benchmark: start, wait for readiness, account CPU, stop.

Each server runs ``python -m inferd.cli.main serve`` in its own session (process group) on
free ports, with ``INFERD_HOME`` inside the benchmark's temp folder. CPU time is read from
``/proc/<pid>/stat`` for the server process and all its descendants (uvicorn's workers).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_ports(count: int) -> tuple[int, ...]:
    """``count`` distinct free ports (every socket stays bound until all are chosen: asked
    one at a time, the kernel may hand the same port out twice)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return tuple(int(sock.getsockname()[1]) for sock in sockets)
    finally:
        for sock in sockets:
            sock.close()


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, user+system CPU seconds) of a live process, None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as file:
            text = file.read()
    except OSError:
        return None
    # The command name may hold spaces and parentheses; the fields after the last ')' do not.
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has been busy (all cores, everything but idle/iowait)."""
    with open("/proc/stat", encoding="ascii") as file:
        fields = [int(v) for v in file.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / _CLOCK_TICKS


def tree_cpu_seconds(root: int) -> float:
    """User+system CPU seconds of ``root`` and every live descendant."""
    stats: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            stats[int(entry)] = stat
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            total += stats[pid][1]
        todo.extend(children.get(pid, ()))
    return total


class Server:
    """One ``inferd serve`` process tree on 127.0.0.1; use as a context manager.

    Args:
        repository: the model repository to serve.
        workers: ``--workers``.
        home: ``INFERD_HOME`` (registry, metrics files); the log goes to ``home/server.log``.
        ready_timeout_s: how long to wait for ``/v2/health/ready``.
    """

    def __init__(
        self, repository: Path, workers: int, home: Path, ready_timeout_s: float = 120.0
    ) -> None:
        self.repository = repository
        self.workers = workers
        self.home = home
        self.ready_timeout_s = ready_timeout_s
        self.port, self.grpc_port = free_ports(2)
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.extra_args: list[str] = []  # appended to the command line
        self.extra_env: dict[str, str] = {}  # added to the environment
        self.cwd: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("server not started")
        return self._process.pid

    def __enter__(self) -> Server:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start the process and wait until it is ready.

        Raises:
            RuntimeError: the server exited or did not become ready in time.
        """
        self.home.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, INFERD_HOME=str(self.home))
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        env.update(self.extra_env)
        self._log = open(self.home / "server.log", "ab")  # noqa: SIM115 (closed in stop())
        self._process = subprocess.Popen(
            self.command(), stdout=self._log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True, cwd=self.cwd,
        )  # fmt: skip
        self._wait_ready(self._process)

    def command(self) -> list[str]:
        """The server's command line (subclasses serve something else on ``self.port``)."""
        return [
            sys.executable, "-m", "inferd.cli.main", "serve",
            "--model-repository", str(self.repository),
            "--host", "127.0.0.1",
            "--http-port", str(self.port),
            "--grpc-port", str(self.grpc_port),
            "--workers", str(self.workers),
            "--log-level", "warning",
            *self.extra_args,
        ]  # fmt: skip

    def _wait_ready(self, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}:\n{self.log()}")
            try:
                status, _ = self.get("/v2/health/ready")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server not ready after {self.ready_timeout_s:.0f} s:\n{self.log()}")

    def get(self, path: str) -> tuple[int, bytes]:
        """GET ``path``; returns (status, body) for any HTTP status."""
        status, body, _ = self.request("GET", path, None, {})
        return status, body

    def request(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, bytes, dict[str, str]]:
        """One HTTP request; returns (status, body, lower-cased headers) for any status."""
        req = urllib.request.Request(self.base_url + path, body, headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as response:
                got = {k.lower(): v for k, v in response.getheaders()}
                return response.status, response.read(), got
        except urllib.error.HTTPError as err:
            return err.code, err.read(), {k.lower(): v for k, v in err.headers.items()}

    def cpu_seconds(self) -> float:
        """CPU seconds used so far by the server and its worker processes."""
        return tree_cpu_seconds(self.pid)

    def counters(self, model: str) -> dict[str, float]:
        """Counters of ``model`` from ``/metrics``: rows and runtime calls (batch sizes),
        answered requests with a 2xx code and with any other code."""
        _, text = self.get("/metrics")
        out = dict.fromkeys(("rows", "calls", "ok", "non2xx"), 0.0)
        for line in text.decode().splitlines():
            if f'model="{model}"' not in line:
                continue
            value = float(line.rsplit(" ", 1)[1])
            if line.startswith("inferd_batch_size_sum"):
                out["rows"] += value
            elif line.startswith("inferd_batch_size_count"):
                out["calls"] += value
            elif line.startswith("inferd_requests_total"):
                out["ok" if 'code="2' in line else "non2xx"] += value
        return out

    def log(self, tail: int = 4000) -> str:
        path = self.home / "server.log"
        return path.read_text(errors="replace")[-tail:] if path.exists() else ""

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM the server, wait, and SIGKILL its process group if it lingers."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if process is not None:
            # Workers left behind by a crashed parent share its process group.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        if self._log is not None:
            self._log.close()
            self._log = None


def describe(data: bytes) -> str:
    """A short, printable form of a response body for error messages."""
    try:
        return json.dumps(json.loads(data))[:300]
    except ValueError:
        return repr(data[:300])


def pin_apart(server: Server) -> bool:
    """The server's threads on CPU 0, the calling process (and so the load generator it
    starts afterwards) on CPU 1: a load generator on its own core, as on its own machine, so
    that its share of the CPU cannot move with what is measured. False, changing nothing,
    on a machine with fewer than two CPUs available."""
    if len(os.sched_getaffinity(0)) < 2:
        return False
    for thread in os.listdir(f"/proc/{server.pid}/task"):
        os.sched_setaffinity(int(thread), {0})  # threads started later inherit it
    os.sched_setaffinity(0, {1})
    return True
