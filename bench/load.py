"""Load generation with ``wrk`` on loopback, and single timed HTTP requests.

``wrk`` runs a generated Lua script that cycles through a plan of (path x tenant member) requests, stops
after a request budget when one is given, and prints its summary (throughput, latency
percentiles, errors) as one JSON line that :func:`run_wrk` parses.
"""

from __future__ import annotations

import http.client
import json
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from .report import JSON_MARK, BenchError

_LUA = r"""
local paths = {%(paths)s}
local cookies = {%(cookies)s}
local limit = %(limit)d
local per_tenant = %(per_tenant)d
local thread_count = 0

setup = function(thread)
  thread:set("offset", thread_count)
  thread_count = thread_count + 1
end

init = function(args)
  prepared = {}
  local base = {}
  for name, value in pairs(wrk.headers) do base[name] = value end
  local function with_base(extra)
    local headers = {}
    for name, value in pairs(base) do headers[name] = value end
    for name, value in pairs(extra) do headers[name] = value end
    return headers
  end
  if #cookies == 0 then
    for _, path in ipairs(paths) do prepared[#prepared + 1] = wrk.format(nil, path, base) end
  else
    -- Each tenant's member gets per_tenant paths (all when 0), consecutive ones the next ones along.
    local count = #paths
    if per_tenant > 0 and per_tenant < count then count = per_tenant end
    for index, cookie in ipairs(cookies) do
      local headers = with_base({Cookie = cookie})
      for step = 0, count - 1 do
        local path = paths[((index - 1) * count + step) %% #paths + 1]
        prepared[#prepared + 1] = wrk.format(nil, path, headers)
      end
    end
  end
  -- Threads start at evenly spaced points of the plan, so together they cover all of it.
  position = math.floor((offset or 0) * #prepared / %(threads)d)
  answered = 0
end

request = function()
  position = position %% #prepared + 1
  return prepared[position]
end

response = function(status, headers, body)
  if limit > 0 then
    answered = answered + 1
    if answered == limit then
      -- wrk's main thread sleeps for the whole duration regardless: tell the caller, who
      -- interrupts it (SIGINT makes wrk stop and print its summary).
      io.write("%(thread_done)s\n")
      io.flush()
      wrk.thread:stop()
    end
  end
end

done = function(summary, latency, requests)
  io.write(string.format(
    '%(mark)s{"requests": %%d, "duration_us": %%d, "connect": %%d, "read": %%d, "write": %%d, ' ..
    '"status": %%d, "timeout": %%d, "p50_us": %%d, "p90_us": %%d, "p99_us": %%d, "max_us": %%d}\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


_THREAD_DONE = "BENCH_THREAD_DONE"


@dataclass(frozen=True)
class LoadResult:
    """What one ``wrk`` run saw. Latencies in milliseconds."""

    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    socket_errors: int
    http_errors: int  # responses with status >= 400
    timeouts: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def wrk_binary() -> str:
    binary = shutil.which("wrk")
    if not binary:
        raise BenchError("wrk not found (apt-get install wrk); `make bench` installs it")
    return binary


def _run(command: list[str], threads_to_finish: int, timeout: float) -> tuple[str, str, int]:
    """Run wrk; when ``threads_to_finish`` > 0, interrupt it as soon as that many threads
    reported they sent their share. Returns (stdout, stderr, exit code)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    timer = threading.Timer(timeout, process.kill)
    timer.start()
    try:
        lines = []
        finished = 0
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if threads_to_finish and line.strip() == _THREAD_DONE:
                finished += 1
                if finished == threads_to_finish:
                    process.send_signal(signal.SIGINT)
        errors = process.stderr.read() if process.stderr else ""
        code = process.wait()
    finally:
        timer.cancel()
    return "".join(lines), errors, code


def _lua_string(value: str) -> str:
    # A JSON string is a valid Lua string, except that Lua reads a \u escape differently.
    if not value.isascii():
        raise BenchError(f"wrk plans take ASCII only: {value!r}")
    return json.dumps(value)


def _lua_strings(values: Sequence[str]) -> str:
    return ", ".join(_lua_string(value) for value in values)


def run_wrk(
    base_url: str,
    *,
    paths: Sequence[str] = ("/",),
    cookies: Sequence[str] = (),
    paths_per_tenant: int = 0,
    seconds: int = 3,
    connections: int = 16,
    threads: int = 2,
    headers: dict[str, str] | None = None,
    total_requests: int = 0,
    timeout_seconds: int = 5,
) -> LoadResult:
    """Drive ``base_url`` with the plan ``paths`` x ``cookies`` (a session cookie per tenant's
    member; each gets ``paths_per_tenant`` of the paths, all when 0), for ``seconds`` or, when
    ``total_requests`` is set, until about that many responses arrived (``seconds`` caps it)."""
    threads = max(1, min(threads, connections))
    limit = -(-total_requests // threads) if total_requests else 0
    script = _LUA % {
        "paths": _lua_strings(paths),
        "cookies": _lua_strings(cookies),
        "limit": limit,
        "per_tenant": paths_per_tenant,
        "threads": threads,
        "mark": JSON_MARK,
        "thread_done": _THREAD_DONE,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="bench-wrk-") as lua:
        lua.write(script)
        lua.flush()
        command = [
            wrk_binary(), f"-t{threads}", f"-c{connections}", f"-d{max(1, int(seconds))}s",
            "--timeout", f"{timeout_seconds}s", "-s", lua.name,
        ]  # fmt: skip
        for name, value in (headers or {}).items():
            command += ["-H", f"{name}: {value}"]
        command.append(base_url)
        output, errors, code = _run(command, threads if total_requests else 0, seconds + 60)
    for line in output.splitlines():
        if line.startswith(JSON_MARK):
            raw = json.loads(line[len(JSON_MARK) :])
            break
    else:
        raise BenchError(f"wrk produced no summary (exit {code}): {errors.strip()}")
    return LoadResult(
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        socket_errors=raw["connect"] + raw["read"] + raw["write"],
        http_errors=raw["status"],
        timeouts=raw["timeout"],
    )


def require_clean(result: LoadResult, what: str, *, allow_http_errors: bool = False) -> LoadResult:
    """Refuse a measurement that included failed requests: its speed would be meaningless."""
    if result.requests == 0:
        raise BenchError(f"{what}: no request completed")
    if result.socket_errors or result.timeouts or (result.http_errors and not allow_http_errors):
        raise BenchError(
            f"{what}: {result.socket_errors} socket errors, {result.timeouts} timeouts, "
            f"{result.http_errors} responses >= 400 out of {result.requests}"
        )
    return result


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float


def http_get(
    port: int, path: str, *, headers: dict[str, str] | None = None, timeout: float = 10.0
) -> Response:
    """One GET on a fresh connection to 127.0.0.1:``port``, timed from connect to the last byte."""
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        body = response.read()
        return Response(
            response.status,
            {name.lower(): value for name, value in response.getheaders()},
            body,
            time.perf_counter() - started,
        )
    finally:
        connection.close()


def try_get(port: int, path: str, **kwargs: object) -> Response | None:
    """Like :func:`http_get`, or None when the server is not answering (yet)."""
    try:
        return http_get(port, path, **kwargs)  # type: ignore[arg-type]
    except (OSError, http.client.HTTPException):
        return None
