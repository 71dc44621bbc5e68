"""The list's cached counts are forgotten when a tenant's subscribers change: every change is a
subscriber saved or deleted, or a line of its history (status changes are saved with ``update()``,
which sends no signal, next to their history line). After the commit, so that the next count sees it."""

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .models import ActivityEntry, Subscriber
from .selectors import forget_counts


@receiver([post_save, post_delete], sender=Subscriber)
def _subscriber_changed(sender, instance: Subscriber, **kwargs) -> None:
    transaction.on_commit(lambda: forget_counts(instance.tenant_id))


@receiver(post_save, sender=ActivityEntry)
def _history_written(sender, instance: ActivityEntry, **kwargs) -> None:
    tenant_id = instance.subscriber.tenant_id
    transaction.on_commit(lambda: forget_counts(tenant_id))
