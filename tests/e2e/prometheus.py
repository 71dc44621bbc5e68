"""A real Prometheus server (Debian's ``prometheus``) for the end-to-end suite, and its HTTP API.

It listens on 127.0.0.1 on a free port, keeps its TSDB in a temporary directory and loads the
shipped alert rules of ``deploy/prometheus/rules/`` with time compressed: every ``for:`` duration
is divided by :data:`TIME_COMPRESSION` in a generated copy of each rule file, and nothing else of
the file changes (the expressions, labels and annotations are the shipped ones). Scrape and rule
evaluation intervals are one second, i.e. a minute of production time per second.
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from tests.servers import ServerError, free_port, wait_until

PROJECT_DIR = Path(__file__).resolve().parent.parent.parent
RULES_DIR = PROJECT_DIR / "deploy" / "prometheus" / "rules"
SERVICE_MONITOR_FILE = PROJECT_DIR / "deploy" / "kubernetes" / "monitoring.yaml"
# One second here is one minute in production: a rule's "for: 1m" becomes "for: 1s".
TIME_COMPRESSION = 60
SCRAPE_INTERVAL_SECONDS = 1
EVALUATION_INTERVAL_SECONDS = 1
# Prometheus passes discovered targets to its scrapers at most every 5 s (fixed in the server), so
# the first scrape of a new target happens 5 s after start plus up to one scrape interval.
TARGET_UPDATE_SECONDS = 5

_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_FOR_LINE = re.compile(r"^(?P<indent>\s+)for:\s*(?P<duration>\S+)\s*$", re.M)


def prometheus_binary() -> str:
    """Debian's prometheus server, or a failure that says how to get it."""
    binary = shutil.which("prometheus") or "/usr/bin/prometheus"
    if not Path(binary).exists():
        raise ServerError(
            "prometheus not found: apt-get install prometheus (`make test` installs it); "
            "the end-to-end suite needs the real server"
        )
    return binary


def parse_duration(text: str) -> float:
    """A Prometheus duration (``1m``, ``1h30m``, ``500ms``) in seconds."""
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return sum(int(number) * _DURATION_UNITS[unit] for number, unit in parts)


def format_duration(seconds: float) -> str:
    milliseconds = max(1, round(seconds * 1000))
    return f"{milliseconds // 1000}s" if milliseconds % 1000 == 0 else f"{milliseconds}ms"


def compress_for_durations(rules_text: str, factor: int = TIME_COMPRESSION) -> str:
    """The rule file with each ``for:`` divided by ``factor`` (at least 1 s); all else unchanged."""

    def shorter(match: re.Match) -> str:
        seconds = max(1.0, parse_duration(match["duration"]) / factor)
        return f"{match['indent']}for: {format_duration(seconds)}"

    return _FOR_LINE.sub(shorter, rules_text)


def shipped_rule_files() -> list[Path]:
    files = sorted([*RULES_DIR.glob("*.yml"), *RULES_DIR.glob("*.yaml")])
    if not files:
        raise ServerError(f"no rule files in {RULES_DIR}")
    return files


def shipped_alert_names() -> set[str]:
    alert = re.compile(r"^\s*-\s*alert:\s*(\S+)", re.M)
    return {name for path in shipped_rule_files() for name in alert.findall(path.read_text())}


def job_name_from_service_monitor(text: str | None = None) -> str:
    """The ``job`` label Prometheus gives the platform's series in the cluster.

    The prometheus-operator sets ``job`` to the value of the Service label named by the
    ServiceMonitor's ``jobLabel``; the ServiceMonitor selects Services by that same label.
    """
    text = SERVICE_MONITOR_FILE.read_text() if text is None else text
    monitor = text.split("kind: ServiceMonitor", 1)[1].split("\n---", 1)[0]
    job_label = re.search(r"^\s*jobLabel:\s*(\S+)\s*$", monitor, re.M)
    assert job_label, f"{SERVICE_MONITOR_FILE}: the ServiceMonitor has no jobLabel"
    selector = monitor.split("matchLabels:", 1)[1]
    value = re.search(rf"^\s*{re.escape(job_label.group(1))}:\s*(\S+)\s*$", selector, re.M)
    assert value, f"{SERVICE_MONITOR_FILE}: the ServiceMonitor selects no {job_label.group(1)} label"
    return value.group(1).strip("'\"")


class PrometheusAPIError(AssertionError):
    """Prometheus answered a query with an error (bad expression, bad parameters...)."""


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float


@dataclass
class PrometheusServer:
    """``prometheus`` on 127.0.0.1 scraping one target; stopped by :meth:`stop`."""

    root: Path
    job: str
    target: str
    bearer_token: str
    target_labels: dict[str, str]
    port: int = 0
    process: subprocess.Popen | None = None
    started_at: float = 0.0  # wall clock, as Prometheus timestamps are

    def write_config(self) -> Path:
        rules_dir = self.root / "rules"
        rules_dir.mkdir(parents=True, exist_ok=True)
        rule_files = []
        for source in shipped_rule_files():
            generated = rules_dir / source.name
            generated.write_text(compress_for_durations(source.read_text()))
            rule_files.append(str(generated))
        token_file = self.root / "bearer-token"
        token_file.write_text(self.bearer_token)
        token_file.chmod(0o600)
        # JSON is YAML: no YAML writer needed.
        config = {
            "global": {
                "scrape_interval": f"{SCRAPE_INTERVAL_SECONDS}s",
                "scrape_timeout": f"{SCRAPE_INTERVAL_SECONDS}s",
                "evaluation_interval": f"{EVALUATION_INTERVAL_SECONDS}s",
            },
            "rule_files": rule_files,
            "scrape_configs": [
                {
                    "job_name": self.job,
                    "metrics_path": "/metrics",
                    "scheme": "http",
                    "authorization": {"type": "Bearer", "credentials_file": str(token_file)},
                    "static_configs": [{"targets": [self.target], "labels": self.target_labels}],
                }
            ],
        }
        path = self.root / "prometheus.yml"
        path.write_text(json.dumps(config, indent=2))
        return path

    def start(self) -> PrometheusServer:
        binary = prometheus_binary()
        config = self.write_config()
        self.port = free_port()
        log = open(self.root / "prometheus.log", "ab")
        self.started_at = time.time()
        self.process = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={self.root / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1h",
             "--log.level=info"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()

        def ready() -> bool:
            if self.process.poll() is not None:
                raise ServerError(f"prometheus exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                return self._get("/-/ready")[0] == 200
            except OSError:
                return False

        try:
            wait_until(ready, timeout=30, interval=0.1, message=f"prometheus on {self.port} to be ready")
        except TimeoutError as exc:
            self.stop()
            raise ServerError(f"prometheus did not become ready: {exc}\n{self.log_tail()}") from exc
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def log_tail(self, characters: int = 4000) -> str:
        path = self.root / "prometheus.log"
        return path.read_text(errors="replace")[-characters:] if path.exists() else ""

    # --- HTTP API ------------------------------------------------------------------------------

    def _get(self, path: str, params: Iterable[tuple[str, str]] = ()) -> tuple[int, bytes]:
        query = urlencode(list(params))
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request("GET", f"{path}?{query}" if query else path)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def api(self, path: str, **params: Any) -> Any:
        """``/api/v1/<path>``'s ``data``; :class:`PrometheusAPIError` for an error answer.

        A list value repeats the parameter; ``**{"match[]": ...}`` passes names Python can't spell.
        """
        pairs = []
        for key, value in params.items():
            for item in value if isinstance(value, list | tuple) else [value]:
                pairs.append((key, str(item)))
        status, body = self._get(f"/api/v1/{path}", pairs)
        try:
            answer = json.loads(body)
        except ValueError:
            raise PrometheusAPIError(f"/api/v1/{path} {params}: HTTP {status}: {body[:300]!r}") from None
        if status != 200 or answer.get("status") != "success":
            raise PrometheusAPIError(
                f"/api/v1/{path} {params}: HTTP {status}: {answer.get('errorType')}: {answer.get('error')}"
            )
        return answer["data"]

    def query(self, expr: str) -> list[Sample]:
        """An instant query's vector (a scalar comes back as one unlabelled sample)."""
        data = self.api("query", query=expr)
        if data["resultType"] == "vector":
            return [Sample(item["metric"], float(item["value"][1])) for item in data["result"]]
        if data["resultType"] == "scalar":
            return [Sample({}, float(data["result"][1]))]
        raise PrometheusAPIError(f"{expr}: unexpected result type {data['resultType']}")

    def query_range(self, expr: str, *, start: float, end: float, step: float) -> list[dict]:
        data = self.api("query_range", query=expr, start=f"{start:.3f}", end=f"{end:.3f}", step=f"{step:g}")
        return data["result"]

    def active_alerts(self, name: str | None = None) -> list[dict]:
        """Alerts pending or firing (resolved ones are not listed), of one alert name if given."""
        alerts = self.api("alerts")["alerts"]
        return [alert for alert in alerts if name is None or alert["labels"].get("alertname") == name]

    def alerting_rules(self) -> dict[str, dict]:
        """The loaded alerting rules by name (with their expression, ``duration`` and health)."""
        rules = {}
        for group in self.api("rules", type="alert")["groups"]:
            for rule in group["rules"]:
                rules[rule["name"]] = rule
        return rules

    def wait_for(
        self, predicate: Callable[[], Any], *, timeout: float, message: str, last: Callable[[], Any]
    ) -> None:
        """Poll ``predicate`` (queries) until true; on timeout show what ``last()`` returns now."""
        try:
            wait_until(predicate, timeout=timeout, interval=0.25, message=message)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}; now: {last()!r}") from None
