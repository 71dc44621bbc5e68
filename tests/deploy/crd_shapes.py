"""Structural checks of the custom resources kubernetes-validate has no schema for.

The prometheus-operator (ServiceMonitor, PrometheusRule) and cert-manager (Certificate,
ClusterIssuer) objects are checked against the shape of their v1 APIs: the fields this project
uses and their documented siblings, with types, required fields and enums. An unknown field is an
error (as ``kubernetes-validate --strict`` treats built-in kinds), so a typo cannot slip through.
"""

from __future__ import annotations

from typing import Any

Shape = Any  # a type name, a (type name, options) pair, a dict shape or a one-item list shape

DURATION = ("string", {"pattern": r"^(0|(([0-9]+)(ms|s|m|h|d|w|y))+)$"})
SECRET_KEY_SELECTOR = {"name": "string", "key": "string!", "optional": "boolean"}
LABEL_SELECTOR = {
    "matchLabels": ("map", "string"),
    "matchExpressions": [{"key": "string!", "operator": "string!", "values": ["string"]}],
}
RELABEL_CONFIG = {
    "action": (
        "string",
        {
            "enum": [
                "replace",
                "keep",
                "drop",
                "hashmod",
                "labelmap",
                "labeldrop",
                "labelkeep",
                "lowercase",
                "uppercase",
                "keepequal",
                "dropequal",
            ],
            "case_insensitive": True,
        },
    ),
    "sourceLabels": ["string"],
    "separator": "string",
    "targetLabel": "string",
    "regex": "string",
    "modulus": "integer",
    "replacement": "string",
}
METADATA = {
    "name": "string!",
    "namespace": "string",
    "labels": ("map", "string"),
    "annotations": ("map", "string"),
}

SERVICE_MONITOR = {
    "apiVersion": ("string!", {"enum": ["monitoring.coreos.com/v1"]}),
    "kind": ("string!", {"enum": ["ServiceMonitor"]}),
    "metadata": (METADATA, {"required": True}),
    "spec": (
        {
            "jobLabel": "string",
            "targetLabels": ["string"],
            "podTargetLabels": ["string"],
            "sampleLimit": "integer",
            "selector": (LABEL_SELECTOR, {"required": True}),
            "namespaceSelector": {"any": "boolean", "matchNames": ["string"]},
            "endpoints": (
                [
                    {
                        "port": "string",
                        "targetPort": "integer-or-string",
                        "path": "string",
                        "scheme": ("string", {"enum": ["http", "https", "HTTP", "HTTPS"]}),
                        "params": ("map", ["string"]),
                        "interval": DURATION,
                        "scrapeTimeout": DURATION,
                        "honorLabels": "boolean",
                        "honorTimestamps": "boolean",
                        "followRedirects": "boolean",
                        "enableHttp2": "boolean",
                        "filterRunning": "boolean",
                        "authorization": {"type": "string", "credentials": SECRET_KEY_SELECTOR},
                        "bearerTokenSecret": SECRET_KEY_SELECTOR,
                        "relabelings": [RELABEL_CONFIG],
                        "metricRelabelings": [RELABEL_CONFIG],
                    }
                ],
                {"required": True},
            ),
        },
        {"required": True},
    ),
}

PROMETHEUS_RULE = {
    "apiVersion": ("string!", {"enum": ["monitoring.coreos.com/v1"]}),
    "kind": ("string!", {"enum": ["PrometheusRule"]}),
    "metadata": (METADATA, {"required": True}),
    "spec": (
        {
            "groups": (
                [
                    {
                        "name": "string!",
                        "interval": DURATION,
                        "limit": "integer",
                        "partial_response_strategy": "string",
                        "rules": (
                            [
                                {
                                    "alert": "string",
                                    "record": "string",
                                    "expr": "integer-or-string!",
                                    "for": DURATION,
                                    "keep_firing_for": DURATION,
                                    "labels": ("map", "string"),
                                    "annotations": ("map", "string"),
                                }
                            ],
                            {"required": True},
                        ),
                    }
                ],
                {"required": True},
            ),
        },
        {"required": True},
    ),
}

ISSUER_REF = {"name": "string!", "kind": "string", "group": "string"}
CERTIFICATE = {
    "apiVersion": ("string!", {"enum": ["cert-manager.io/v1"]}),
    "kind": ("string!", {"enum": ["Certificate"]}),
    "metadata": (METADATA, {"required": True}),
    "spec": (
        {
            "secretName": "string!",
            "issuerRef": (ISSUER_REF, {"required": True}),
            "commonName": "string",
            "dnsNames": ["string"],
            "duration": DURATION,
            "renewBefore": DURATION,
            "usages": ["string"],
            "privateKey": {
                "algorithm": ("string", {"enum": ["RSA", "ECDSA", "Ed25519"]}),
                "encoding": ("string", {"enum": ["PKCS1", "PKCS8"]}),
                "size": "integer",
                "rotationPolicy": ("string", {"enum": ["Never", "Always"]}),
            },
        },
        {"required": True},
    ),
}

CLUSTER_ISSUER = {
    "apiVersion": ("string!", {"enum": ["cert-manager.io/v1"]}),
    "kind": ("string!", {"enum": ["ClusterIssuer"]}),
    "metadata": (METADATA, {"required": True}),
    "spec": (
        {
            "acme": {
                "server": "string!",
                "email": "string",
                "privateKeySecretRef": ({"name": "string!", "key": "string"}, {"required": True}),
                "solvers": [
                    {
                        "selector": {
                            "dnsNames": ["string"],
                            "dnsZones": ["string"],
                            "matchLabels": ("map", "string"),
                        },
                        "http01": {
                            "ingress": {
                                "ingressClassName": "string",
                                "class": "string",
                                "name": "string",
                                "serviceType": "string",
                            }
                        },
                    }
                ],
            },
        },
        {"required": True},
    ),
}

SHAPES = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICE_MONITOR,
    ("monitoring.coreos.com/v1", "PrometheusRule"): PROMETHEUS_RULE,
    ("cert-manager.io/v1", "Certificate"): CERTIFICATE,
    ("cert-manager.io/v1", "ClusterIssuer"): CLUSTER_ISSUER,
}

_SCALARS = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "integer-or-string": lambda v: isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool)),
}


def _split(shape: Shape) -> tuple[Shape, dict]:
    if isinstance(shape, tuple) and len(shape) == 2 and isinstance(shape[1], dict):
        return shape
    return shape, {}


def problems(value: Any, shape: Shape, path: str = "") -> list[str]:
    """Every way ``value`` departs from ``shape`` (empty: it conforms)."""
    shape, options = _split(shape)
    if isinstance(shape, str):
        kind = shape.rstrip("!")
        if kind == "map":
            raise AssertionError("a map shape is written ('map', value shape)")
        if not _SCALARS[kind](value):
            return [f"{path or '.'}: expected {kind}, got {type(value).__name__}"]
        found = []
        if "enum" in options:
            allowed = options["enum"]
            candidate = value.lower() if options.get("case_insensitive") else value
            if candidate not in allowed:
                found.append(f"{path}: {value!r} is not one of {allowed}")
        if "pattern" in options:
            import re

            if not re.fullmatch(options["pattern"], value):
                found.append(f"{path}: {value!r} does not match {options['pattern']}")
        return found
    if isinstance(shape, tuple) and shape[0] == "map":
        if not isinstance(value, dict):
            return [f"{path}: expected a map"]
        return [p for key, item in value.items() for p in problems(item, shape[1], f"{path}.{key}")]
    if isinstance(shape, list):
        if not isinstance(value, list):
            return [f"{path}: expected a list"]
        return [p for i, item in enumerate(value) for p in problems(item, shape[0], f"{path}[{i}]")]
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return [f"{path}: expected an object"]
        found = [f"{path}.{key}: unknown field" for key in value if key not in shape]
        for key, field_shape in shape.items():
            inner, field_options = _split(field_shape)
            required = field_options.get("required") or (isinstance(inner, str) and inner.endswith("!"))
            if key not in value:
                if required:
                    found.append(f"{path}.{key}: required field missing")
                continue
            found += problems(value[key], field_shape, f"{path}.{key}")
        return found
    raise AssertionError(f"bad shape {shape!r}")
