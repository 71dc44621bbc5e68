"""The fleet's data: ``python -m tests.fleet.seed --staff N --pending N`` with a pod's environment.

One tenant with a service plan, ``--staff`` staff members each logged in through a real session row
(as ``django.contrib.auth.login`` stores it), a few active subscribers for detail pages and
``--pending`` subscribers waiting for activation. Prints one JSON object after ``JSON_MARK``.
"""

from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal

import django

JSON_MARK = "FLEET-SEED "
TENANT = "fleet-isp"


def seed(staff_count: int, pending_count: int) -> dict:
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.contrib.sessions.backends.db import SessionStore
    from django.db import transaction

    from apps.subscribers.models import ServicePlan, Subscriber
    from apps.tenants.models import Membership, Tenant

    with transaction.atomic():
        tenant = Tenant.objects.create(slug=TENANT, name="Fleet ISP")
        plan = ServicePlan.objects.create(
            tenant=tenant,
            name="Fibre 500",
            download_mbps=500,
            upload_mbps=100,
            monthly_price=Decimal("49.00"),
        )
        active = Subscriber.objects.bulk_create(
            Subscriber(
                tenant=tenant, plan=plan, name=f"Active {n}", email=f"active{n}@example.net", status="active"
            )
            for n in range(20)
        )
        Subscriber.objects.filter(pk__in=[subscriber.pk for subscriber in active]).update(status="active")
        pending = Subscriber.objects.bulk_create(
            Subscriber(tenant=tenant, plan=plan, name=f"Pending {n}", email=f"pending{n}@example.net")
            for n in range(pending_count)
        )
        sessions = []
        for n in range(staff_count):
            user = get_user_model().objects.create(username=f"fleet-staff-{n}")
            Membership.objects.create(user=user, tenant=tenant)
            session = SessionStore()
            session[SESSION_KEY] = str(user.pk)
            session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[-1]  # the one checking passwords
            session[HASH_SESSION_KEY] = user.get_session_auth_hash()
            session.create()
            sessions.append(session.session_key)
    return {
        "tenant": TENANT,
        "plan": plan.pk,
        "session_cookie_name": settings.SESSION_COOKIE_NAME,
        "csrf_cookie_name": settings.CSRF_COOKIE_NAME,
        "sessions": sessions,
        "active": [subscriber.pk for subscriber in active],
        "pending": [subscriber.pk for subscriber in pending],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--staff", type=int, required=True)
    parser.add_argument("--pending", type=int, default=0)
    args = parser.parse_args(argv)
    django.setup()
    print(JSON_MARK + json.dumps(seed(args.staff, args.pending)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
