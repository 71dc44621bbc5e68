"""Root URLs: each app's urls module, the login pages and the admin."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView, TemplateView

admin.site.site_header = "DotMac Platform administration"
admin.site.site_title = "DotMac Platform admin"
admin.site.index_title = "Operations and tenants"

# A database outage answers 503 "temporarily unavailable" instead of 500 (apps.ops.errors).
handler500 = "apps.ops.errors.server_error"


class FaviconRedirect(RedirectView):
    permanent = True

    def get_redirect_url(self, *args, **kwargs) -> str:
        return static("favicon.svg")  # at request time: the manifest's name needs collected files


urlpatterns = [
    path("", TemplateView.as_view(template_name="home.html"), name="home"),
    # Browsers ask for /favicon.ico where a page names no icon (files, JSON answers).
    path("favicon.ico", FaviconRedirect.as_view(), name="favicon"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("subscribers/", include("apps.subscribers.urls")),
    path("admin/", admin.site.urls),
    path("", include("apps.ops.urls")),
]
