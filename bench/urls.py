"""The project's URLs plus the benchmark-only views (one URLconf for every variant of the stack)."""

from django.urls import path

from dotmac.urls import urlpatterns as project_urlpatterns

from . import views

urlpatterns = [
    path("bench/trivial/", views.trivial, name="bench-trivial"),
    path("bench/slow/", views.slow, name="bench-slow"),
    *project_urlpatterns,
]
