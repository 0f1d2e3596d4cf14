"""URL map: the admin console, the API and its schema, the vault UI."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

admin.site.site_header = "keeperpam Admin Console"
admin.site.site_title = "keeperpam"
admin.site.index_title = "Admin Console"

api_v1 = [
    path("", include("vault.api.urls")),
    path("", include("vault.api.key_urls")),
    path("", include("policies.api.urls")),
    path("", include("recordings.api.urls")),
    path("", include("recordings.api.playback_urls")),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("", include("vault.urls")),
]
