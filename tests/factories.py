"""factory_boy factories shared by the suite."""

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from policies.models import Role
from vault.choices import Protocol, RecordType
from vault.models import PamConfiguration, Record, SharedFolder

DEFAULT_PROTOCOL = {
    RecordType.MACHINE: Protocol.SSH,
    RecordType.DATABASE: Protocol.POSTGRESQL,
    RecordType.DIRECTORY: Protocol.RDP,
    RecordType.REMOTE_BROWSING: Protocol.RBI,
}


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.test")
    password = factory.PostGenerationMethodCall("set_password", "correct horse battery")

    @factory.post_generation
    def save_password(self, create, extracted, **kwargs):
        if create:
            self.save()


class GroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Group

    name = factory.Sequence(lambda n: f"group{n}")


class PamConfigurationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PamConfiguration

    name = factory.Sequence(lambda n: f"Configuration {n}")
    allow_graphical_recording = True
    allow_text_recording = True


class SharedFolderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SharedFolder

    name = factory.Sequence(lambda n: f"Folder {n}")


class RecordFactory(factory.django.DjangoModelFactory):
    """A valid record of any type; rights come only through services."""

    class Meta:
        model = Record

    name = factory.Sequence(lambda n: f"record-{n}")
    record_type = RecordType.MACHINE
    protocol = factory.LazyAttribute(lambda r: DEFAULT_PROTOCOL[r.record_type])
    host = factory.LazyAttribute(
        lambda r: "" if r.record_type == RecordType.REMOTE_BROWSING else f"{r.name}.internal"
    )
    url = factory.LazyAttribute(
        lambda r: "https://intranet.example.test/" if r.record_type == RecordType.REMOTE_BROWSING
        else ""
    )
    configuration = factory.SubFactory(PamConfigurationFactory)


class RoleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Role

    name = factory.Sequence(lambda n: f"Role {n}")
