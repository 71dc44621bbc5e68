from django.apps import AppConfig


class SubscribersConfig(AppConfig):
    name = "apps.subscribers"
    label = "subscribers"
    verbose_name = "Subscribers"
