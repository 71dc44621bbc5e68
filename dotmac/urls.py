"""Root URLs: each app's urls module, the login pages and the admin."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import TemplateView

admin.site.site_header = "DotMac Platform administration"
admin.site.site_title = "DotMac Platform admin"
admin.site.index_title = "Operations and tenants"

# A database outage answers 503 "temporarily unavailable" instead of 500 (apps.ops.errors).
handler500 = "apps.ops.errors.server_error"

urlpatterns = [
    path("", TemplateView.as_view(template_name="home.html"), name="home"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("subscribers/", include("apps.subscribers.urls")),
    path("admin/", admin.site.urls),
    path("", include("apps.ops.urls")),
]
