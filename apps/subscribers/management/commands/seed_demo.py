"""Create a demo tenant, plans, subscribers and logins (idempotent; development only)."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from apps.subscribers.models import ServicePlan, Subscriber
from apps.tenants.models import Membership, Tenant

DEMO_TENANT = ("demo", "Demo Fibre ISP")
DEMO_PLANS = [
    ("Home 100", 100, 20, Decimal("29.00")),
    ("Home 500", 500, 100, Decimal("49.00")),
    ("Business 1000", 1000, 1000, Decimal("129.00")),
]
DEMO_SUBSCRIBERS = [
    ("Ada Lovelace", "ada@example.net", "Home 500", Subscriber.Status.ACTIVE, "+44 20 7946 0001", "D-1001"),
    (
        "Grace Hopper",
        "grace@example.net",
        "Business 1000",
        Subscriber.Status.ACTIVE,
        "+1 202 555 0102",
        "D-1002",
    ),
    ("Alan Turing", "alan@example.net", "Home 100", Subscriber.Status.PENDING, "+44 161 496 0003", "D-1003"),
    ("Katherine Johnson", "katherine@example.net", "Home 500", Subscriber.Status.SUSPENDED, "", "D-1004"),
]
STAFF_LOGIN = ("demo", "demo-password")
ADMIN_LOGIN = ("admin", "admin-password")


class Command(BaseCommand):
    help = "Create demo data and logins for local development (safe to run repeatedly)."

    def handle(self, *args, **options) -> None:
        if settings.IS_PRODUCTION:
            raise CommandError("seed_demo is for development only (DJANGO_ENV=production refuses it).")
        with transaction.atomic():
            tenant, _ = Tenant.objects.update_or_create(
                slug=DEMO_TENANT[0], defaults={"name": DEMO_TENANT[1]}
            )
            plans = {}
            for name, down, up, price in DEMO_PLANS:
                plans[name], _ = ServicePlan.objects.update_or_create(
                    tenant=tenant,
                    name=name,
                    defaults={"download_mbps": down, "upload_mbps": up, "monthly_price": price},
                )
            for name, email, plan, status, phone, account in DEMO_SUBSCRIBERS:
                Subscriber.objects.get_or_create(
                    tenant=tenant,
                    email=email,
                    defaults={
                        "name": name,
                        "plan": plans[plan],
                        "status": status,
                        "phone": phone,
                        "account_number": account,
                    },
                )
            User = get_user_model()
            staff, _ = User.objects.get_or_create(username=STAFF_LOGIN[0])
            staff.set_password(STAFF_LOGIN[1])
            staff.save()
            Membership.objects.update_or_create(user=staff, defaults={"tenant": tenant})
            admin, _ = User.objects.get_or_create(username=ADMIN_LOGIN[0])
            admin.is_staff = admin.is_superuser = True
            admin.set_password(ADMIN_LOGIN[1])
            admin.save()
        self.stdout.write(f"Demo tenant: {tenant.slug} ({tenant.name})")
        self.stdout.write(f"Tenant staff login: {STAFF_LOGIN[0]} / {STAFF_LOGIN[1]}")
        self.stdout.write(f"Platform admin login: {ADMIN_LOGIN[0]} / {ADMIN_LOGIN[1]}")
