from django.urls import path

from . import views

app_name = "receiver"
urlpatterns = [
    path("<slug:inbox>/", views.receiver_inbox, name="inbox"),
]
