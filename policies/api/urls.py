"""Routes of the roles and policies API.

| route | what |
|---|---|
| ``roles/`` ``roles/{id}/`` | roles: read by holders, changed by superusers |
| ``policies/`` | the enforcement policies a role can carry |
"""

from rest_framework.routers import DefaultRouter

from .views import PolicyViewSet, RoleViewSet

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("roles", RoleViewSet, basename="role")
router.register("policies", PolicyViewSet, basename="policy")

urlpatterns = [*router.urls]
