"""Views of the recordings API."""

from rest_framework import generics
from rest_framework.permissions import IsAuthenticated

from recordings import selectors
from recordings.models import SignerKey

from .serializers import SignerKeySerializer


class SignerKeyListView(generics.ListAPIView):
    """Trusted signer keys, retired ones included, for verifying sealed parts."""

    permission_classes = [IsAuthenticated]
    serializer_class = SignerKeySerializer
    filter_backends: list = []
    queryset = SignerKey.objects.none()

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return selectors.trusted_signer_keys(self.request.user)
