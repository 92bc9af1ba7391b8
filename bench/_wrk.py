"""Request bodies for each (model, protocol) cell and one wrk run per cell.

Each cell gets a Lua script that sends one fixed request (wrk's static request path, no
``request()`` hook, so wrk spends as little of the shared CPU as it can) and prints one
``BENCH_JSON {...}`` line from ``done()``: completed requests, duration, latency percentiles
in microseconds, error statuses and socket errors (connect, read, write, timeout).
The server's own count of non-2xx answers (from ``/metrics``) is added by the caller.
"""

from __future__ import annotations

import json
import resource
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MLP_FEATURES = 256
MARKER = "BENCH_JSON "

_LUA = """\
local file = assert(io.open([[{body}]], "rb"))
local body = file:read("*a")
file:close()
wrk.method = "POST"
wrk.body = body
{headers}
local threads = {{}}
function setup(thread) table.insert(threads, thread) end
{hook}
function done(summary, latency, requests)
  local e = summary.errors
  -- wrk itself counts responses with a status > 399; the hook, when present, every non-2xx.
  local non2xx = e.status
  if response ~= nil then
    non2xx = 0
    for _, thread in ipairs(threads) do non2xx = non2xx + thread:get("bad") end
  end
  io.write(string.format(
    '{marker}{{"requests":%d,"duration_us":%d,"non2xx":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}}\\n',
    summary.requests, summary.duration, non2xx, e.connect, e.read, e.write, e.timeout,
    math.floor(latency:percentile(50)), math.floor(latency:percentile(90)),
    math.floor(latency:percentile(99)), math.floor(latency.max)))
end
"""
# Defining response() makes wrk hand every response's headers and body to Lua, which costs
# wrk ~10 µs of the CPU it shares with the server; hence off unless asked for.
_STATUS_HOOK = """\
function init(args) bad = 0 end
function response(status, headers, body)
  if status < 200 or status > 299 then bad = bad + 1 end
end
"""


@dataclass(frozen=True, slots=True)
class Payload:
    """One request of a cell: body bytes, headers, and the rows (samples) it carries."""

    body: bytes
    headers: dict[str, str]
    rows: int


@dataclass(frozen=True, slots=True)
class WrkResult:
    """What wrk measured in one run."""

    requests: int
    duration_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    non2xx: int
    socket_errors: int
    cpu_s: float  # wrk's own user+system CPU time

    @property
    def errors(self) -> int:
        return self.non2xx + self.socket_errors

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0


def model_input(model: str, seed: int = 0) -> np.ndarray:
    """The single-row input of a model: ``linear`` x=[1.5], ``mlp`` 256 random floats."""
    if model == "linear":
        return np.array([1.5], dtype=np.float32)
    rng = np.random.default_rng(seed)
    return rng.standard_normal((1, MLP_FEATURES)).astype(np.float32)


def payload(model: str, protocol: str, x: np.ndarray | None = None) -> Payload:
    """The V2 JSON or V2 binary-extension request for one row of ``model``.

    Args:
        model: ``linear`` or ``mlp``, whose input is :func:`model_input`.
        protocol: ``json`` or ``binary``.
        x: the FP32 input ``x`` instead (another model), first dimension the rows.
    """
    x = model_input(model) if x is None else x
    shape = list(x.shape)
    if protocol == "json":
        # str(np.float32) is the shortest text that round-trips, as a float32 client sends it.
        data = "[" + ",".join(str(v) for v in x.ravel()) + "]"
        text = (
            f'{{"inputs":[{{"name":"x","shape":{json.dumps(shape)},'
            f'"datatype":"FP32","data":{data}}}]}}'
        )
        return Payload(text.encode(), {"Content-Type": "application/json"}, shape[0])
    raw = x.astype("<f4").tobytes()
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": shape,
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "outputs": [{"name": "y", "parameters": {"binary_data": True}}],
        },
        separators=(",", ":"),
    ).encode()
    headers = {
        "Content-Type": "application/octet-stream",
        "Inference-Header-Content-Length": str(len(header)),
    }
    return Payload(header + raw, headers, shape[0])


def write_script(folder: Path, name: str, request: Payload, count_all_status: bool) -> Path:
    """Write the body file and the Lua script of one cell; returns the script's path.

    Args:
        folder: where to write ``<name>.body`` and ``<name>.lua``.
        name: file stem.
        request: the request wrk repeats.
        count_all_status: count every non-2xx response in Lua (1xx and 3xx too), not only
            the status > 399 that wrk counts itself.
    """
    body_path = folder / f"{name}.body"
    body_path.write_bytes(request.body)
    headers = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in request.headers.items())
    script = folder / f"{name}.lua"
    hook = _STATUS_HOOK if count_all_status else ""
    script.write_text(_LUA.format(body=body_path, headers=headers, hook=hook, marker=MARKER))
    return script


def run_wrk(
    url: str, script: Path, connections: int, duration_s: int, threads: int, timeout_s: int = 5
) -> WrkResult:
    """Run wrk once and parse the JSON line its ``done()`` prints.

    Raises:
        RuntimeError: wrk failed or printed no result line.
    """
    threads = max(1, min(threads, connections))
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration_s}s",
        f"--timeout={timeout_s}s",
        "-s",
        str(script),
        url,
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=duration_s + 60, check=False
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARKER)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    data = json.loads(lines[-1][len(MARKER) :])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return WrkResult(
        requests=data["requests"],
        duration_s=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        non2xx=data["non2xx"],
        socket_errors=data["connect"] + data["read"] + data["write"] + data["timeout"],
        cpu_s=cpu,
    )
