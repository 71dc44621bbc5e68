"""Benchmark data, created in the benchmark database: ``python -m bench.seed --tenants N``.

With ``--migrate``, applies the migrations first (one Django start instead of two). Creates tenants
``bench-0000`` …, the first with a service plan and subscribers, each with a staff member logged
in through a real session row, and prints one JSON object: the tenant slugs, each tenant's member's
session cookie, the large tenant (``LARGE_SUBSCRIBERS`` subscribers) and its member's cookie, a
sample path for every URL pattern of the benchmark URLconf, hostile requests
(``tests/hostile_traffic.py``), and the settings the figures need (middleware lists, probe
deadline). Run under ``DJANGO_SETTINGS_MODULE=bench.settings`` with the same environment as the
servers.
"""

from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal

import django

from bench.report import JSON_MARK
from tests.hostile_traffic import hostile_requests

STAFF_USERNAME = "bench-staff"
# The Host domain whose subdomains name tenants, on the server of the hostile traffic figure.
HOSTILE_BASE_DOMAIN = "isp.bench"
HOSTILE_REQUESTS = 10_000
# Values for URL parameters when building one sample path per pattern.
_SAMPLE_KWARG = "1"
# Patterns left out of the route mix: the slow view sleeps on purpose.
_EXCLUDED_ROUTES = {"bench-slow"}
# A tenant apart with this many subscribers, on three plans and every status in turn: the list's
# figure at scale (``bench/figures/subscriber_list.py``).
LARGE_TENANT = "bench-large"
LARGE_SUBSCRIBERS = 10_000
LARGE_PLANS = [
    ("Fibre 100", 100, 20, "29.00"),
    ("Fibre 500", 500, 100, "49.00"),
    ("Fibre 1G", 1000, 500, "79.00"),
]


def tenant_slugs(count: int) -> list[str]:
    return [f"bench-{index:04d}" for index in range(count)]


def _seed(tenant_count: int, subscriber_count: int) -> dict:
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import transaction

    from apps.subscribers.models import ServicePlan, Subscriber
    from apps.tenants.models import Membership, Tenant
    from tests.sessions import session_cookie

    slugs = tenant_slugs(tenant_count)
    with transaction.atomic():
        existing = set(Tenant.objects.filter(slug__in=slugs).values_list("slug", flat=True))
        Tenant.objects.bulk_create(
            [Tenant(slug=slug, name=f"Bench ISP {slug}") for slug in slugs if slug not in existing]
        )
        tenant = Tenant.objects.get(slug=slugs[0])
        plan, _ = ServicePlan.objects.get_or_create(
            tenant=tenant,
            name="Fibre 500",
            defaults={"download_mbps": 500, "upload_mbps": 100, "monthly_price": Decimal("49.00")},
        )
        have = Subscriber.objects.filter(tenant=tenant).count()
        Subscriber.objects.bulk_create(
            [
                Subscriber(tenant=tenant, plan=plan, name=f"Subscriber {n}", email=f"sub{n}@example.net")
                for n in range(have, subscriber_count)
            ]
        )
        user, _ = get_user_model().objects.get_or_create(username=STAFF_USERNAME)
        user.set_unusable_password()
        user.save()
        Membership.objects.update_or_create(user=user, defaults={"tenant": tenant})
        # The members of the other tenants: requests count for a tenant only when a member sends them.
        members = {slugs[0]: user}
        for other in Tenant.objects.filter(slug__in=slugs[1:]):
            member, _ = get_user_model().objects.get_or_create(username=f"bench-member-{other.slug}")
            Membership.objects.update_or_create(user=member, defaults={"tenant": other})
            members[other.slug] = member

        cookies = {slug: session_cookie(member) for slug, member in members.items()}
        large_cookie = session_cookie(_seed_large_tenant())
    return {
        "tenants": slugs,
        "staff_tenant": slugs[0],
        "subscribers": Subscriber.objects.filter(tenant=tenant).count(),
        "session_cookie": cookies[slugs[0]],
        "tenant_cookies": cookies,
        "routes": sample_paths(),
        "hostile_base_domain": HOSTILE_BASE_DOMAIN,
        "hostile_requests": hostile_requests(
            HOSTILE_REQUESTS, tenants=slugs[:10], base_domain=HOSTILE_BASE_DOMAIN
        ),
        "large_tenant": LARGE_TENANT,
        "large_tenant_cookie": large_cookie,
        "large_subscribers": Subscriber.objects.filter(tenant__slug=LARGE_TENANT).count(),
        "ops_middleware": list(settings.OPS_MIDDLEWARE),
        "metrics_middleware": list(settings.METRICS_MIDDLEWARE),
        "settings": {
            name: getattr(settings, name)
            for name in dir(settings)
            if name.startswith(("HEALTH_", "DRAIN_", "CIRCUIT_BREAKER", "METRICS_TENANT"))
            and isinstance(getattr(settings, name), (int, float, str, bool))
        },
    }


def _seed_large_tenant():
    """The large tenant, its plans and subscribers (created once), and its member; returns the member."""
    from django.contrib.auth import get_user_model

    from apps.subscribers.models import ServicePlan, Subscriber
    from apps.tenants.models import Membership, Tenant

    tenant, _ = Tenant.objects.get_or_create(slug=LARGE_TENANT, defaults={"name": "Bench ISP (large)"})
    plans = [
        ServicePlan.objects.get_or_create(
            tenant=tenant,
            name=name,
            defaults={"download_mbps": down, "upload_mbps": up, "monthly_price": Decimal(price)},
        )[0]
        for name, down, up, price in LARGE_PLANS
    ]
    statuses = [value for value, _label in Subscriber.Status.choices]
    have = Subscriber.objects.filter(tenant=tenant).count()
    Subscriber.objects.bulk_create(
        (
            Subscriber(
                tenant=tenant,
                plan=plans[n % len(plans)],
                status=statuses[n % len(statuses)],
                name=f"Subscriber {n:05d}",
                email=f"large{n}@example.net",
                phone=f"+1 555 {n:07d}",
                account_number=f"L-{n:06d}",
                service_address=f"{n} Fibre Street",
            )
            for n in range(have, LARGE_SUBSCRIBERS)
        ),
        batch_size=2000,
    )
    member, _ = get_user_model().objects.get_or_create(username=f"bench-member-{LARGE_TENANT}")
    Membership.objects.update_or_create(user=member, defaults={"tenant": tenant})
    return member


def sample_paths() -> list[str]:
    """One concrete path per named URL pattern that can be reversed with simple parameters."""
    from django.urls import NoReverseMatch, URLPattern, URLResolver, get_resolver, reverse

    paths: set[str] = set()

    def walk(patterns: list, namespace: str) -> None:
        for entry in patterns:
            if isinstance(entry, URLResolver):
                inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
                walk(entry.url_patterns, inner)
            elif isinstance(entry, URLPattern) and entry.name and entry.name not in _EXCLUDED_ROUTES:
                kwargs = {name: _SAMPLE_KWARG for name in entry.pattern.regex.groupindex}
                try:
                    paths.add(reverse(f"{namespace}{entry.name}", kwargs=kwargs or None))
                except NoReverseMatch:
                    continue  # a regex parameter with fixed choices: no generic sample value

    walk(get_resolver().url_patterns, "")
    return sorted(paths)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, required=True)
    parser.add_argument("--subscribers", type=int, default=50)
    parser.add_argument("--migrate", action="store_true", help="apply the migrations first")
    args = parser.parse_args(argv)
    django.setup()
    if args.migrate:
        from django.core.management import call_command

        call_command("migrate", interactive=False, verbosity=0)
    print(JSON_MARK + json.dumps(_seed(args.tenants, args.subscribers)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
