"""Drop cached tenant resolutions in this process whenever tenants or memberships change."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .models import Membership, Tenant
from .resolution import reset_cache


@receiver([post_save, post_delete], sender=Tenant)
@receiver([post_save, post_delete], sender=Membership)
def _forget_cached_tenants(**kwargs) -> None:
    reset_cache()
