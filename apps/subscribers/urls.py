from django.urls import path

from . import views

app_name = "subscribers"

urlpatterns = [
    path("", views.subscriber_list, name="list"),
    path("export.csv", views.subscriber_export, name="export"),
    path("bulk/", views.subscriber_bulk, name="bulk"),
    path("plans/", views.plan_list, name="plans"),
    path("new/", views.subscriber_create, name="create"),
    path("<int:pk>/", views.subscriber_detail, name="detail"),
    path("<int:pk>/edit/", views.subscriber_edit, name="edit"),
    path("<int:pk>/suspend/", views.subscriber_suspend, name="suspend"),
    path("<int:pk>/terminate/", views.subscriber_terminate, name="terminate"),
    path("<int:pk>/activate/", views.subscriber_activate, name="activate"),
    path("<int:pk>/reinstate/", views.subscriber_reinstate, name="reinstate"),
]
