"""Show or rotate this worker's sealer signing key."""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from recordings import services


class Command(BaseCommand):
    help = (
        "Show this worker's Ed25519 signing key (creating and registering it if missing), "
        "or rotate it: a new key is made and the old public key is kept, retired, for "
        "verifying parts it signed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        action = parser.add_mutually_exclusive_group(required=True)
        action.add_argument("--show", action="store_true", help="Print the key id and public key.")
        action.add_argument("--rotate", action="store_true", help="Replace the signing key.")

    def handle(self, *args, show: bool, rotate: bool, **options) -> None:
        try:
            _, signer = services.signer_key_rotate() if rotate else services.signer_key_ensure()
        except services.SignerKeyRetired as exc:
            raise CommandError(str(exc)) from exc
        if rotate:
            self.stdout.write(self.style.SUCCESS("Signer key rotated."))
        self.stdout.write(f"id:         {signer.key_id}")
        self.stdout.write(f"public key: {signer.public_key}")
