"""Every write to zero-knowledge key material: user keys, record keys and their shares.

The server only ever holds public keys and wrapped private keys (FORMAT.md §6).
The one place a private key exists here is :func:`record_key_for_sealing`,
for the instant between generating a record key pair and wrapping it to its
recipients; it is never stored, logged or cached.

Who may receive a share is the recordings rule of :mod:`policies.selectors`
(reached through :func:`vault.access.rules`): the view policy for the record's
type and view access to the record.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max, QuerySet
from django.utils import timezone

from keeperpam.crypto import keys as crypto_keys
from keeperpam.crypto.errors import MalformedKey

from .access import rules
from .choices import AuditAction
from .models import Record, RecordKey, RecordKeyShare, RecoveryKey, UserKey
from .services import audit_event_write

#: The user id a recovery-key share is wrapped for (FORMAT.md §6 ``user id``).
RECOVERY_USER_ID = "recovery"

#: HPKE ``enc`` for DHKEM(P-256) is an uncompressed point.
HPKE_ENC_SIZE = 65
#: A share is enc ‖ AES-GCM(PKCS#8 DER of a P-256 key); that DER is 67 to 138
#: bytes depending on whether the encoder includes the public point, plus a
#: 16-byte tag. Anything far outside cannot be a record key share.
SHARE_CIPHERTEXT_MIN = 16 + 64
SHARE_CIPHERTEXT_MAX = 16 + 512
PROTECTED_KEY_FIELDS = frozenset({"kdf", "iterations", "salt", "nonce", "ct"})
PROTECTED_CT_MIN = 16 + 64
PROTECTED_CT_MAX = 16 + 512


class NoKeyRecipients(Exception):
    """Nobody could receive a new record key: sealing must fail closed."""

    def __init__(self, record: Record) -> None:
        self.record = record
        super().__init__(
            f"Nobody can receive the record key for {record}: no user who may view its "
            "recordings has enrolled a key, and no recovery key is enrolled."
        )


class UserKeyChangeRefused(Exception):
    """A different user key was uploaded while record key shares are wrapped to the old one."""


# ------------------------------------------------------------------ validation


def public_key_parse(encoded: str, *, field: str = "public_key") -> tuple[str, str]:
    """Validate a b64u DER SubjectPublicKeyInfo P-256 key; return ``(b64u, key_id)``.

    The DER must be canonical (what WebCrypto and ``cryptography`` export), so
    that the key id the client computes is the one the server stores.
    """
    try:
        der = crypto_keys.b64u_decode(encoded)
    except ValueError as exc:
        raise ValidationError({field: "Not canonical base64url (no padding)."}) from exc
    try:
        key = crypto_keys.require_p256_public(serialization.load_der_public_key(der))
    except (ValueError, TypeError, MalformedKey) as exc:
        raise ValidationError(
            {field: "Not a P-256 public key in DER SubjectPublicKeyInfo form."}
        ) from exc
    if crypto_keys.public_key_der(key) != der:
        raise ValidationError({field: "Use the uncompressed DER SubjectPublicKeyInfo encoding."})
    return encoded, crypto_keys.record_key_id(key)


def public_key_parse_any(text: str, *, field: str = "public_key") -> tuple[str, str]:
    """Like :func:`public_key_parse`, but also accept a PEM ``PUBLIC KEY`` block."""
    text = text.strip()
    if not text.startswith("-----BEGIN"):
        return public_key_parse(text, field=field)
    try:
        key = crypto_keys.require_p256_public(
            serialization.load_pem_public_key(text.encode("ascii"))
        )
    except (ValueError, TypeError, UnicodeEncodeError, MalformedKey) as exc:
        raise ValidationError({field: "Not a P-256 public key (PEM)."}) from exc
    return crypto_keys.b64u_encode(crypto_keys.public_key_der(key)), crypto_keys.record_key_id(key)


def _b64u_field(data: Mapping[str, Any], name: str, sizes: range) -> None:
    try:
        raw = crypto_keys.b64u_decode(data[name])
    except (ValueError, KeyError) as exc:
        raise ValidationError(
            {"protected_private_key": f"“{name}” must be canonical base64url."}
        ) from exc
    if len(raw) not in sizes:
        raise ValidationError(
            {"protected_private_key": f"“{name}” has an impossible length ({len(raw)} bytes)."}
        )


def protected_private_key_validate(data: object) -> dict[str, Any]:
    """Check the shape of a protected user key (FORMAT.md §6); return a clean copy.

    Only the shape can be checked: the server cannot, and must not be able
    to, open it.
    """
    if not isinstance(data, Mapping):
        raise ValidationError({"protected_private_key": "Must be a JSON object."})
    if set(data) != PROTECTED_KEY_FIELDS:
        raise ValidationError(
            {"protected_private_key": "Expected exactly the keys "
             + ", ".join(sorted(PROTECTED_KEY_FIELDS)) + "."}
        )
    if data["kdf"] != "pbkdf2-sha256":
        raise ValidationError({"protected_private_key": "“kdf” must be “pbkdf2-sha256”."})
    iterations = data["iterations"]
    if type(iterations) is not int or not (
        crypto_keys.MIN_PBKDF2_ITERATIONS <= iterations <= crypto_keys.MAX_PBKDF2_ITERATIONS
    ):
        raise ValidationError(
            {"protected_private_key": "“iterations” must be an integer from "
             f"{crypto_keys.MIN_PBKDF2_ITERATIONS:,} to {crypto_keys.MAX_PBKDF2_ITERATIONS:,}."}
        )
    _b64u_field(data, "salt", range(16, 17))
    _b64u_field(data, "nonce", range(12, 13))
    _b64u_field(data, "ct", range(PROTECTED_CT_MIN, PROTECTED_CT_MAX + 1))
    return {name: data[name] for name in sorted(PROTECTED_KEY_FIELDS)}


def share_validate(share: object, *, field: str = "share") -> str:
    """Check that ``share`` is plausibly a record key share: b64u, a P-256 enc, a sane length."""
    if not isinstance(share, str):
        raise ValidationError({field: "Must be a base64url string."})
    try:
        raw = crypto_keys.b64u_decode(share)
    except ValueError as exc:
        raise ValidationError({field: "Not canonical base64url (no padding)."}) from exc
    size = len(raw) - HPKE_ENC_SIZE
    if not SHARE_CIPHERTEXT_MIN <= size <= SHARE_CIPHERTEXT_MAX:
        raise ValidationError(
            {field: f"A record key share is 65 bytes of HPKE enc and {SHARE_CIPHERTEXT_MIN} "
             f"to {SHARE_CIPHERTEXT_MAX} bytes of ciphertext; this one is {len(raw)} bytes."}
        )
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw[:HPKE_ENC_SIZE])
    except ValueError as exc:
        raise ValidationError({field: "The HPKE enc is not a P-256 point."}) from exc
    return share


# ------------------------------------------------------------------- user keys


@transaction.atomic
def user_key_set(
    *, user, public_key: str, protected_private_key: Mapping[str, Any], reset: bool = False
) -> tuple[UserKey, bool]:
    """Enrol ``user``'s key, or re-protect it (passphrase change); return ``(key, created)``.

    The same public key with a new protected blob is a passphrase change. A
    different public key while record key shares are wrapped to the old one
    would make them unopenable, so it is refused with
    :class:`UserKeyChangeRefused` unless ``reset``: then the user's shares are
    deleted and their grants become pending again.
    """
    encoded, key_id = public_key_parse(public_key)
    protected = protected_private_key_validate(protected_private_key)
    existing = UserKey.objects.select_for_update().filter(user=user).first()
    if existing is None:
        user_key = UserKey.objects.create(
            user=user, public_key=encoded, key_id=key_id, protected_private_key=protected
        )
        audit_event_write(actor=user, action=AuditAction.CREATE, instance=user_key,
                          after={"key_id": key_id})
        return user_key, True
    if existing.key_id != key_id:
        shares = RecordKeyShare.objects.filter(user=user)
        if shares.exists():
            if not reset:
                raise UserKeyChangeRefused(
                    "This is a different key from the one enrolled, and record keys are "
                    "shared with the enrolled one. To change only your passphrase, upload "
                    "the same public key with the newly protected private key. To replace "
                    "the key and lose your record key shares until someone grants them "
                    "again, repeat the request with \"reset\": true."
                )
            count, _ = shares.delete()
            audit_event_write(
                actor=user, action=AuditAction.REVOKE, object_type="vault.recordkeyshare",
                object_repr=f"{count} record key share(s) of {user} (user key reset)",
                before={"user": user.pk, "key_id": existing.key_id, "shares": count},
            )
    before_key_id = existing.key_id
    existing.public_key, existing.key_id = encoded, key_id
    existing.protected_private_key = protected
    existing.save()
    audit_event_write(
        actor=user, action=AuditAction.UPDATE, instance=existing,
        # The protected blob is ciphertext, but it has no business in the audit trail.
        before={"key_id": before_key_id},
        after={"key_id": key_id, "reprotected": before_key_id == key_id},
    )
    return existing, False


# ----------------------------------------------------------------- recovery key


@transaction.atomic
def recovery_key_enrol(*, public_key: str, label: str, acting_user) -> RecoveryKey:
    """Enrol the organisation recovery public key (b64u DER SPKI or PEM); retire the old one.

    Record keys created from now on are also wrapped to it; existing shares
    of the retired one are kept.
    """
    encoded, key_id = public_key_parse_any(public_key)
    if not label.strip():
        raise ValidationError({"label": "Give the recovery key a label."})
    if RecoveryKey.objects.filter(key_id=key_id).exists():
        raise ValidationError({"public_key": "This recovery key is already enrolled."})
    now = timezone.now()
    RecoveryKey.objects.filter(retired_at__isnull=True).update(retired_at=now)
    recovery = RecoveryKey.objects.create(
        label=label.strip(), public_key=encoded, key_id=key_id,
        created_by=acting_user if acting_user is not None and acting_user.pk else None,
    )
    audit_event_write(actor=acting_user, action=AuditAction.CREATE, instance=recovery,
                      after={"label": recovery.label, "key_id": key_id})
    return recovery


# ------------------------------------------------------------------ record keys


def _load_public(encoded: str) -> ec.EllipticCurvePublicKey:
    return crypto_keys.require_p256_public(
        serialization.load_der_public_key(crypto_keys.b64u_decode(encoded))
    )


@transaction.atomic
def record_key_for_sealing(*, record: Record) -> RecordKey:
    """The record key a new session of ``record`` is sealed to, created on first use.

    Returns the current (latest, unretired) :class:`RecordKey`. If there is
    none, generates a P-256 pair, wraps the private key (FORMAT.md §6) to
    every user who may view the record's recordings and has enrolled a key
    (user id = ``str(user.pk)``), and to the active organisation
    :class:`RecoveryKey` if any (user id ``"recovery"``, see
    :data:`RECOVERY_USER_ID`); stores only those shares and the public key,
    then drops the private key.

    Raises :class:`NoKeyRecipients`, storing nothing, when there is nobody
    to wrap to: a recording nobody could ever open must not be made.
    """
    # Serialise concurrent sealers of the same record so only one creates a version.
    list(Record.objects.select_for_update().filter(pk=record.pk).values_list("pk", flat=True))
    current = (
        RecordKey.objects.filter(record=record, retired_at__isnull=True)
        .order_by("-version")
        .first()
    )
    if current is not None:
        return current

    recipients = list(
        UserKey.objects.filter(
            user__in=rules().users_who_may_view_recordings(record)
        ).select_related("user")
    )
    recovery = RecoveryKey.objects.filter(retired_at__isnull=True).order_by("-id").first()
    if not recipients and recovery is None:
        raise NoKeyRecipients(record)

    last = RecordKey.objects.filter(record=record).aggregate(v=Max("version"))["v"] or 0
    private_key = crypto_keys.record_key_generate()
    try:
        public_der = crypto_keys.public_key_der(private_key.public_key())
        record_key = RecordKey.objects.create(
            record=record,
            version=last + 1,
            public_key=crypto_keys.b64u_encode(public_der),
            key_id=crypto_keys.record_key_id(private_key),
        )
        shares = [
            RecordKeyShare(
                record_key=record_key,
                user=user_key.user,
                share=crypto_keys.record_key_share_wrap(
                    record_private_key=private_key,
                    user_public_key=_load_public(user_key.public_key),
                    user_id=str(user_key.user_id),
                ),
            )
            for user_key in recipients
        ]
        if recovery is not None:
            shares.append(
                RecordKeyShare(
                    record_key=record_key,
                    recovery=recovery,
                    share=crypto_keys.record_key_share_wrap(
                        record_private_key=private_key,
                        user_public_key=_load_public(recovery.public_key),
                        user_id=RECOVERY_USER_ID,
                    ),
                )
            )
    finally:
        # Forget the private key as soon as it is wrapped (or the wrapping failed).
        del private_key
    RecordKeyShare.objects.bulk_create(shares)
    audit_event_write(
        actor=None, action=AuditAction.CREATE, instance=record_key,
        after={"record": record.pk, "version": record_key.version,
               "key_id": record_key.key_id,
               "users": sorted(user_key.user_id for user_key in recipients),
               "recovery": recovery.key_id if recovery is not None else None},
    )
    return record_key


# -------------------------------------------------------------- granting later


@dataclass(frozen=True)
class GrantResult:
    """What happened to one requested share."""

    record_key_id: str
    user: int
    status: str  # "granted" or "already granted"


@transaction.atomic
def record_key_shares_grant(
    *, acting_user, shares: Sequence[Mapping[str, Any]]
) -> list[GrantResult]:
    """Store record key shares that ``acting_user``'s client re-wrapped for other users.

    Each item is ``{"record_key_id", "user", "share"}``. The caller must hold
    a share of that record key and may view the record's recordings; the
    target must be allowed to view them too and have enrolled a key. The
    server never sees the record private key: it can only check the share is
    plausible. An existing share is left alone ("already granted"). All or
    nothing: any invalid item raises ``ValidationError`` keyed by its index.
    A fixed number of queries whatever the number of items.
    """
    errors: dict[str, list[str]] = {}
    wanted_kids = {str(item.get("record_key_id", "")) for item in shares}
    caller_keys = {
        record_key.key_id: record_key
        for record_key in RecordKey.objects.filter(
            key_id__in=wanted_kids,
            shares__user=acting_user,
            record__in=rules().records_with_viewable_recordings(acting_user),
        ).select_related("record")
    }
    viewers = rules().recording_viewers({rk.record_id for rk in caller_keys.values()})
    target_ids = {item.get("user") for item in shares if isinstance(item.get("user"), int)}
    enrolled = set(
        UserKey.objects.filter(user_id__in=target_ids).values_list("user_id", flat=True)
    )
    existing = set(
        RecordKeyShare.objects.filter(
            record_key__in=list(caller_keys.values()), user_id__in=target_ids
        ).values_list("record_key_id", "user_id")
    )

    results: list[GrantResult] = []
    to_create: list[RecordKeyShare] = []
    for index, item in enumerate(shares):
        kid, target = str(item.get("record_key_id", "")), item.get("user")
        record_key = caller_keys.get(kid)
        problem = None
        if record_key is None:
            # Same answer whether the key does not exist or the caller cannot act on it.
            problem = f"No record key {kid!r} that you hold a share of."
        elif not isinstance(target, int) or target not in viewers.get(record_key.record_id, ()):
            problem = f"User {target} may not view recordings of “{record_key.record}”."
        elif target not in enrolled:
            problem = f"User {target} has not enrolled a key yet."
        else:
            try:
                share_validate(item.get("share"))
            except ValidationError as exc:
                problem = exc.message_dict["share"][0]
        if problem:
            errors[str(index)] = [problem]
            continue
        if (record_key.pk, target) in existing:
            results.append(GrantResult(kid, target, "already granted"))
            continue
        existing.add((record_key.pk, target))
        to_create.append(RecordKeyShare(record_key=record_key, user_id=target,
                                        share=item["share"], created_by=acting_user))
        results.append(GrantResult(kid, target, "granted"))
    if errors:
        raise ValidationError(errors)
    RecordKeyShare.objects.bulk_create(to_create)
    if to_create:
        audit_event_write(
            actor=acting_user, action=AuditAction.GRANT, object_type="vault.recordkeyshare",
            object_repr=f"{len(to_create)} record key share(s)",
            after={"shares": [{"record_key": s.record_key.key_id, "version": s.record_key.version,
                               "record": s.record_key.record_id, "user": s.user_id}
                              for s in to_create]},
        )
    return results


# ------------------------------------------------------------------- revocation


@transaction.atomic
def user_key_shares_reconcile(*, user, acting_user=None) -> int:
    """Drop the record key shares ``user`` may no longer hold.

    For changes made outside our services — group membership or the active
    flag edited in Django's user admin — which cannot reconcile as they happen.
    """
    held = Record.objects.filter(keys__shares__user=user).distinct()
    return record_key_shares_reconcile(records=held, acting_user=acting_user)


@transaction.atomic
def key_shares_reconcile_all() -> int:
    """Reconcile every record that has keys: the periodic safety net (Celery beat)."""
    return record_key_shares_reconcile(records=Record.objects.filter(keys__isnull=False).distinct())


def record_key_shares_reconcile(
    *, records: QuerySet[Record] | Iterable[Record | int], acting_user=None
) -> int:
    """Delete the shares of users who may no longer view these records' recordings.

    Every record key that lost a share is retired (if it was not already), so
    the next sealed session of its record gets a new version the revoked user
    never held. Recovery shares are never touched. Returns the number of
    shares deleted; audits each batch. A fixed number of queries per call.
    Call it inside the transaction of the change that may have revoked access.
    """
    if isinstance(records, QuerySet):
        scope = {"record_key__record__in": records.values("pk")}
    else:
        ids = [r if isinstance(r, int) else r.pk for r in records]
        if not ids:
            return 0
        scope = {"record_key__record_id__in": ids}
    held = list(
        RecordKeyShare.objects.filter(user__isnull=False, **scope).values_list(
            "pk", "record_key_id", "record_key__record_id", "user_id",
            "record_key__key_id", "record_key__version", "record_key__retired_at",
        )
    )
    if not held:
        return 0
    viewers = rules().recording_viewers({row[2] for row in held})
    stale = [row for row in held if row[3] not in viewers.get(row[2], ())]
    if not stale:
        return 0
    RecordKeyShare.objects.filter(pk__in=[row[0] for row in stale]).delete()
    to_retire = sorted({row[1] for row in stale if row[6] is None})
    if to_retire:
        RecordKey.objects.filter(pk__in=to_retire, retired_at__isnull=True).update(
            retired_at=timezone.now()
        )
    audit_event_write(
        actor=acting_user, action=AuditAction.REVOKE, object_type="vault.recordkeyshare",
        object_repr=f"{len(stale)} record key share(s) of users who lost access",
        before={"shares": [{"record_key": row[4], "version": row[5], "record": row[2],
                            "user": row[3]} for row in stale]},
        after={"retired_record_keys": sorted({row[4] for row in stale if row[6] is None})},
    )
    return len(stale)
