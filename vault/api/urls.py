"""Routes of the vault API.

| route | what |
|---|---|
| ``auth/token/`` | POST username + password → API token |
| ``me/`` | the caller |
| ``records/`` ``records/{id}/`` | records (CRUD) |
| ``records/{id}/effective-recording/`` | what the record's sessions will record, and why |
| ``records/{record_id}/shares/`` ``…/shares/{user_id}/`` | direct shares: list, grant, revoke |
| ``configurations/`` ``configurations/{id}/`` | PAM configurations (CRUD) |
| ``folders/`` ``folders/{id}/`` | shared folders (CRUD) |
| ``folders/{folder_id}/members/`` ``…/members/{id}/`` | folder members: list, set, remove |
"""

from django.urls import path
from rest_framework.routers import DefaultRouter

from .views import (
    AuthTokenView,
    FolderMembershipViewSet,
    MeView,
    PamConfigurationViewSet,
    RecordShareViewSet,
    RecordViewSet,
    SharedFolderViewSet,
)

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("records", RecordViewSet, basename="record")
router.register(r"records/(?P<record_id>[0-9]+)/shares", RecordShareViewSet,
                basename="record-share")
router.register("configurations", PamConfigurationViewSet, basename="configuration")
router.register("folders", SharedFolderViewSet, basename="folder")
router.register(r"folders/(?P<folder_id>[0-9]+)/members", FolderMembershipViewSet,
                basename="folder-member")

urlpatterns = [
    path("auth/token/", AuthTokenView.as_view(), name="auth-token"),
    path("me/", MeView.as_view(), name="me"),
    *router.urls,
]
