"""Routes of the key-management API (user keys, record key shares, pending grants)."""

from django.urls import path

from .keys import GrantCreateView, MyKeyView, PendingGrantListView, RecordKeyShareListView

urlpatterns = [
    path("me/key/", MyKeyView.as_view(), name="me-key"),
    path("records/<int:pk>/key-shares/", RecordKeyShareListView.as_view(),
         name="record-key-shares"),
    path("grants/pending/", PendingGrantListView.as_view(), name="grants-pending"),
    path("grants/", GrantCreateView.as_view(), name="grants"),
]
