"""Vault web UI routes."""

from django.contrib.auth import views as auth_views
from django.urls import path

from . import views
from .player_views import session_play

app_name = "vault"

urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    # Named explicitly: the admin's registration/logged_out.html would win the lookup.
    path("accounts/logout/", auth_views.LogoutView.as_view(template_name="vault/signed_out.html"),
         name="logout"),
    path("", views.home, name="home"),
    path("enrol/", views.enrol, name="enrol"),
    path("unlock/", views.unlock, name="unlock"),
    path("records/<int:record_id>/sessions/", views.session_activity, name="session-activity"),
    # The players' page (vault/player_views.py) is routed below.
    path("records/<int:record_id>/sessions/<uuid:session_id>/play/", session_play,
         name="session-play"),
]
