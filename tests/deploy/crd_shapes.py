"""Structural checks of the custom resources kubernetes-validate has no schema for.

The prometheus-operator (ServiceMonitor, PrometheusRule), cert-manager (Certificate, ClusterIssuer)
and Gateway API (Gateway, HTTPRoute) objects are checked against the shape of their v1 APIs: the
fields this project uses and their documented siblings, with types, required fields, enums, patterns
and limits. An unknown field is an error (as ``kubernetes-validate --strict`` treats built-in kinds),
so a typo cannot slip through.
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

# Gateway API v1 (standard channel): Gateway and HTTPRoute, with the patterns, enums and limits of
# their CRDs' schemas for the fields used here and their documented siblings.
GATEWAY_API = "gateway.networking.k8s.io/v1"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
HOSTNAME = ("string", {"pattern": r"^(\*\.)?" + DNS_SUBDOMAIN.lstrip("^")})
SECTION_NAME = ("string", {"pattern": DNS_SUBDOMAIN})
GATEWAY_DURATION = ("string", {"pattern": r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"})
GROUP = ("string", {"pattern": r"^$|" + DNS_SUBDOMAIN})
KIND = ("string", {"pattern": r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$"})
PORT_NUMBER = ("integer", {"range": (1, 65535)})
PARENT_REFERENCE = {
    "group": GROUP,
    "kind": KIND,
    "namespace": "string",
    "name": "string!",
    "sectionName": SECTION_NAME,
    "port": PORT_NUMBER,
}
BACKEND_REFERENCE = {
    "group": GROUP,
    "kind": KIND,
    "name": "string!",
    "namespace": "string",
    "port": PORT_NUMBER,
}
HEADER_MODIFIER = {
    "set": [{"name": "string!", "value": "string!"}],
    "add": [{"name": "string!", "value": "string!"}],
    "remove": ["string"],
}
PATH_MODIFIER = {
    "type": ("string!", {"enum": ["ReplaceFullPath", "ReplacePrefixMatch"]}),
    "replaceFullPath": "string",
    "replacePrefixMatch": "string",
}
HTTP_ROUTE_FILTER = {
    "type": (
        "string!",
        {
            "enum": [
                "RequestHeaderModifier",
                "ResponseHeaderModifier",
                "RequestMirror",
                "RequestRedirect",
                "URLRewrite",
                "ExtensionRef",
            ]
        },
    ),
    "requestHeaderModifier": HEADER_MODIFIER,
    "responseHeaderModifier": HEADER_MODIFIER,
    "requestMirror": {"backendRef": (BACKEND_REFERENCE, {"required": True})},
    "requestRedirect": {
        "scheme": ("string", {"enum": ["http", "https"]}),
        "hostname": HOSTNAME,
        "path": PATH_MODIFIER,
        "port": PORT_NUMBER,
        "statusCode": ("integer", {"enum": [301, 302]}),
    },
    "urlRewrite": {"hostname": HOSTNAME, "path": PATH_MODIFIER},
    "extensionRef": {"group": "string!", "kind": "string!", "name": "string!"},
}
HTTP_ROUTE_MATCH = {
    "path": {
        "type": ("string", {"enum": ["Exact", "PathPrefix", "RegularExpression"]}),
        "value": ("string", {"pattern": r"^/.*$"}),
    },
    "headers": [
        {"type": ("string", {"enum": ["Exact", "RegularExpression"]}), "name": "string!", "value": "string!"}
    ],
    "queryParams": [
        {"type": ("string", {"enum": ["Exact", "RegularExpression"]}), "name": "string!", "value": "string!"}
    ],
    "method": (
        "string",
        {"enum": ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"]},
    ),
}
GATEWAY = {
    "apiVersion": ("string!", {"enum": [GATEWAY_API]}),
    "kind": ("string!", {"enum": ["Gateway"]}),
    "metadata": (METADATA, {"required": True}),
    "spec": (
        {
            "gatewayClassName": ("string!", {"pattern": DNS_SUBDOMAIN}),
            "addresses": [{"type": "string", "value": "string!"}],
            "infrastructure": {
                "labels": ("map", "string"),
                "annotations": ("map", "string"),
                "parametersRef": {"group": "string!", "kind": "string!", "name": "string!"},
            },
            "listeners": (
                [
                    {
                        "name": ("string!", {"pattern": DNS_SUBDOMAIN}),
                        "hostname": HOSTNAME,
                        "port": ("integer!", {"range": (1, 65535)}),
                        "protocol": ("string!", {"enum": ["HTTP", "HTTPS", "TLS", "TCP", "UDP"]}),
                        "tls": {
                            "mode": ("string", {"enum": ["Terminate", "Passthrough"]}),
                            "certificateRefs": [
                                {"group": GROUP, "kind": KIND, "name": "string!", "namespace": "string"}
                            ],
                            "options": ("map", "string"),
                        },
                        "allowedRoutes": {
                            "namespaces": {
                                "from": ("string", {"enum": ["All", "Selector", "Same"]}),
                                "selector": LABEL_SELECTOR,
                            },
                            "kinds": [{"group": GROUP, "kind": "string!"}],
                        },
                    }
                ],
                {"required": True, "max_items": 64},
            ),
        },
        {"required": True},
    ),
}
HTTP_ROUTE = {
    "apiVersion": ("string!", {"enum": [GATEWAY_API]}),
    "kind": ("string!", {"enum": ["HTTPRoute"]}),
    "metadata": (METADATA, {"required": True}),
    "spec": (
        {
            "parentRefs": ([PARENT_REFERENCE], {"max_items": 32}),
            "hostnames": ([HOSTNAME], {"max_items": 16}),
            "rules": (
                [
                    {
                        "name": SECTION_NAME,
                        "matches": ([HTTP_ROUTE_MATCH], {"max_items": 64}),
                        "filters": ([HTTP_ROUTE_FILTER], {"max_items": 16}),
                        "backendRefs": (
                            [{**BACKEND_REFERENCE, "weight": "integer", "filters": [HTTP_ROUTE_FILTER]}],
                            {"max_items": 16},
                        ),
                        "timeouts": {"request": GATEWAY_DURATION, "backendRequest": GATEWAY_DURATION},
                    }
                ],
                {"max_items": 16},
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
                            },
                            "gatewayHTTPRoute": {
                                "parentRefs": [PARENT_REFERENCE],
                                "labels": ("map", "string"),
                                "serviceType": "string",
                            },
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
    (GATEWAY_API, "Gateway"): GATEWAY,
    (GATEWAY_API, "HTTPRoute"): HTTP_ROUTE,
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
        if "range" in options:
            low, high = options["range"]
            if not low <= value <= high:
                found.append(f"{path}: {value} is not within {low}..{high}")
        return found
    if isinstance(shape, tuple) and shape[0] == "map":
        if not isinstance(value, dict):
            return [f"{path}: expected a map"]
        return [p for key, item in value.items() for p in problems(item, shape[1], f"{path}.{key}")]
    if isinstance(shape, list):
        if not isinstance(value, list):
            return [f"{path}: expected a list"]
        found = [p for i, item in enumerate(value) for p in problems(item, shape[0], f"{path}[{i}]")]
        if "max_items" in options and len(value) > options["max_items"]:
            found.append(f"{path}: {len(value)} items, at most {options['max_items']}")
        return found
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
