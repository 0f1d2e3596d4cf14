"""Routes of the key-management API (user keys, record key shares, pending grants)."""

urlpatterns: list = []
