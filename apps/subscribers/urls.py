from django.urls import path

from . import views

app_name = "subscribers"

urlpatterns = [
    path("", views.subscriber_list, name="list"),
    path("new/", views.subscriber_create, name="create"),
    path("<int:pk>/", views.subscriber_detail, name="detail"),
    path("<int:pk>/edit/", views.subscriber_edit, name="edit"),
    path("<int:pk>/suspend/", views.subscriber_suspend, name="suspend"),
    path("<int:pk>/activate/", views.subscriber_activate, name="activate"),
]
