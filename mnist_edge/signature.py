"""Signed exports: who made an export, not only whether its files match its manifest.

The manifest's sha256 per file proves integrity; anyone who can write the folder can still swap
in another valid model and update the manifest. A signature made with the owner's private key
over every file's hash (OpenSSF model-signing: a Sigstore bundle holding a DSSE envelope, signed
offline with an elliptic-curve key or a certificate chain) proves origin too.

    sign_export("artifacts/cnn/export", private_key="signing.pem")      # writes export/model.sig
    signed = verify_signature("artifacts/cnn/export", public_key="signing.pub.pem")
    manifest = signed.read_manifest()   # the manifest bytes the signature vouches for

`model-signing` (the `signing` extra) is imported only when a signature is made or checked, so
the base runtime stays light. The keyless Sigstore flow (which needs the network) is never used.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from mnist_edge.errors import MissingExtraError, MnistEdgeError
from mnist_edge.manifest import (
    MANIFEST_NAME, Manifest, ManifestError, manifest_from_dict, manifest_path, parse_manifest_json, read_manifest_bytes,
    read_regular_file,
)

SIGNATURE_NAME = "model.sig"  # next to manifest.json; model-signing's own default name
MAX_SIGNATURE_BYTES = 1 << 20  # a bundle is a few KB (one hash per file, a key hint or a certificate chain)
PUBLIC_KEY_ENV = "MNIST_EDGE_PUBLIC_KEY"  # a runtime refuses exports not signed by this key
SIGNING_KEY_ENV = "MNIST_EDGE_SIGNING_KEY"  # export, pipeline and finetune sign with this key
SIGNING_EXTRA = "signing"
# Files model-signing leaves out of every signature (it adds the git files itself).
NOT_SIGNED = (SIGNATURE_NAME,)

# Why a signature check failed; each SignatureError carries one.
UNSIGNED = "unsigned"
WRONG_KEY = "wrong-key"
BAD_SIGNATURE = "bad-signature"
CHANGED = "changed"
ADDED = "added"
REMOVED = "removed"
MALFORMED = "malformed"


class SignatureError(MnistEdgeError):
    """An export is unsigned, signed by another key, or its files differ from what was signed."""

    def __init__(self, reason: str, message: str):
        self.reason = reason
        super().__init__(message)


class SigningFailed(MnistEdgeError):
    """The export could not be signed (unreadable key, wrong password, unsupported curve)."""


def _model_signing():
    """model_signing's signing, verifying and hashing modules, or one line naming the extra."""
    try:
        from model_signing import hashing, signing, verifying  # also imports OpenSSL (pyopenssl)
    except ImportError as exc:
        raise MissingExtraError(
            f"signature checks need model-signing ({exc.name or exc} is not installed); "
            f"install the '{SIGNING_EXTRA}' extra: pip install 'mnist-edge[{SIGNING_EXTRA}]'"
        ) from exc
    return hashing, signing, verifying


# --- signing --------------------------------------------------------------------------------------


def sign_export(
    folder: str | os.PathLike,
    private_key: str | os.PathLike,
    *,
    signing_certificate: str | os.PathLike | None = None,
    certificate_chain: Sequence[str | os.PathLike] = (),
    password: str | None = None,
) -> Path:
    """Sign every file of the export `folder` with an EC private key (or a key and its
    certificate); write the Sigstore bundle to folder/model.sig and return its path."""
    folder = Path(folder)
    if not (folder / MANIFEST_NAME).is_file():
        raise SigningFailed(f"{folder}: no {MANIFEST_NAME} here; sign an export folder (artifacts/<model>/export)")
    return sign_folder(
        folder, private_key, signing_certificate=signing_certificate, certificate_chain=certificate_chain, password=password
    )


def sign_folder(
    folder: str | os.PathLike,
    private_key: str | os.PathLike,
    *,
    signing_certificate: str | os.PathLike | None = None,
    certificate_chain: Sequence[str | os.PathLike] = (),
    password: str | None = None,
    ignore: Sequence[str] = (),
) -> Path:
    """Sign every file of `folder` but model.sig and `ignore` (names recorded in the signature, so
    verification skips them too). Offline: no transparency log. The bundle is written whole
    elsewhere and moved in, so a failure leaves any previous model.sig as it was."""
    hashing, signing, _ = _model_signing()
    folder = Path(folder)
    ignored = hashing.Config().set_ignored_paths(paths=(*NOT_SIGNED, *ignore))
    config = signing.Config().set_hashing_config(ignored)
    try:
        if signing_certificate is not None:
            config.use_certificate_signer(
                private_key=private_key, signing_certificate=signing_certificate, certificate_chain=certificate_chain
            )
        else:
            config.use_elliptic_key_signer(private_key=private_key, password=password)
    except (OSError, ValueError, TypeError) as exc:
        raise SigningFailed(f"cannot sign with {private_key}: {exc}") from exc
    target = folder / SIGNATURE_NAME
    with tempfile.TemporaryDirectory(prefix=".sign-", dir=folder.parent) as scratch:
        written = Path(scratch) / SIGNATURE_NAME
        try:
            config.sign(folder, written)
        except (OSError, ValueError) as exc:
            raise SigningFailed(f"cannot sign {folder}: {exc}") from exc
        os.chmod(written, 0o644)
        os.replace(written, target)
    return target


def generate_key_pair(private_key: str | os.PathLike, public_key: str | os.PathLike) -> None:
    """An EC P-256 key pair as PEM files (the private key readable by its owner only)."""
    _model_signing()  # cryptography comes with the signing extra
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private_key, public_key = Path(private_key), Path(public_key)
    for path in (private_key, public_key):
        if path.exists():
            raise SigningFailed(f"{path} already exists; not overwriting a key")
    key = ec.generate_private_key(ec.SECP256R1())
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    descriptor = os.open(private_key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(private_pem)
    public_key.write_bytes(public_pem)


# --- checking ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedExport:
    """An export whose signature checked out: the sha256 of every file the signer vouched for."""

    folder: Path
    digests: dict[str, str]  # file name -> sha256
    signer: str  # the key's fingerprint, or "certificate chain"

    def check(self, name: str, content: bytes) -> None:
        """Raise SignatureError unless `content` is exactly what was signed as `name`."""
        expected = self.digests.get(name)
        if expected is None:
            raise SignatureError(ADDED, f"{self.folder / name}: not covered by the signature; refusing to load it")
        if hashlib.sha256(content).hexdigest() != expected:
            raise SignatureError(
                CHANGED, f"{self.folder / name}: changed since the export was signed; refusing to load it"
            )

    def read_manifest(self) -> Manifest:
        """The manifest parsed from the very bytes checked against the signature (no second read)."""
        path = self.folder / MANIFEST_NAME
        content = read_manifest_bytes(path)  # a regular file of at most 1 MiB, as every manifest read
        self.check(MANIFEST_NAME, content)
        return manifest_from_dict(parse_manifest_json(content, path), root=self.folder)


def export_folder(path: str | os.PathLike) -> Path:
    """An export folder from the folder itself or its manifest.json."""
    return manifest_path(path).parent


def verify_signature(
    path: str | os.PathLike,
    *,
    public_key: str | os.PathLike | None = None,
    certificate_chain: Sequence[str | os.PathLike] = (),
) -> SignedExport:
    """Check the export's model.sig against `public_key` (or a certificate chain) and every file
    of the folder against the hashes it signs: none changed, added or removed. Raises
    SignatureError with a `reason` (unsigned, wrong-key, bad-signature, changed, added, removed,
    malformed)."""
    if not public_key and not certificate_chain:
        raise MnistEdgeError("a signature check needs a public key or a certificate chain")
    folder = export_folder(path)
    trusted = f"public key {public_key}" if public_key else "the certificate chain " + ", ".join(map(str, certificate_chain))
    signature = folder / SIGNATURE_NAME
    if not signature.is_file():
        raise SignatureError(
            UNSIGNED, f"{folder}: unsigned export (no {SIGNATURE_NAME}) but {trusted} is required; "
            "sign it with `mnist-edge sign`"
        )
    bundle = _read_bundle(signature)
    digests, hint, certified = _signed_digests(bundle, signature)
    _check_signer_kind(signature, trusted, by_key=bool(public_key), hint=hint, certified=certified)
    config = _verifier(public_key, certificate_chain)
    if os.path.lexists(folder / MANIFEST_NAME):  # a signed model folder (finetune --signing-key) has none
        read_manifest_bytes(folder / MANIFEST_NAME)  # a FIFO, device or oversized manifest: its own line, before hashing
    with tempfile.TemporaryDirectory(prefix="mnist-edge-signature-") as scratch:
        checked = Path(scratch) / SIGNATURE_NAME  # the bytes verified are the bytes parsed above
        checked.write_bytes(bundle)
        _run_verifier(config, folder, checked, trusted)
    return SignedExport(folder, digests, f"key {hint[:16]}" if public_key else "certificate chain")


def _read_bundle(signature: Path) -> bytes:
    """model.sig's bytes: a regular file of at most MAX_SIGNATURE_BYTES (a few KB in practice)."""
    try:
        return read_regular_file(signature, MAX_SIGNATURE_BYTES, what="a signature")
    except ManifestError as exc:
        raise SignatureError(MALFORMED, str(exc)) from exc
    except OSError as exc:
        raise SignatureError(MALFORMED, f"{signature}: cannot read ({exc.strerror or exc})") from exc


def _check_signer_kind(signature: Path, trusted: str, *, by_key: bool, hint: str, certified: bool) -> None:
    """A bundle signed the other way (a bare key vs a certificate) than the one trusted is refused."""
    if by_key and certified:
        raise SignatureError(WRONG_KEY, f"{signature}: signed with a certificate, not by {trusted}; check it with --certificate-chain")
    if not by_key and not certified:
        raise SignatureError(WRONG_KEY, f"{signature}: signed with a bare key, not a certificate of {trusted}")
    if by_key and not hint:  # model-signing < 1.0 bundles; model-signing would only print a warning
        raise SignatureError(MALFORMED, f"{signature}: names no signing key (an old model-signing format); sign it again")


def _verifier(public_key, certificate_chain):
    _, _, verifying = _model_signing()
    try:
        if public_key:
            return verifying.Config().use_elliptic_key_verifier(public_key=public_key)
        return verifying.Config().use_certificate_verifier(certificate_chain=certificate_chain)
    except (OSError, ValueError, TypeError) as exc:
        source = public_key or ", ".join(map(str, certificate_chain))
        raise MnistEdgeError(f"cannot use {source} to check signatures: {exc}") from exc


def _run_verifier(config, folder: Path, signature: Path, trusted: str) -> None:
    """model-signing's check, its failures turned into a SignatureError with a reason."""
    from cryptography.exceptions import InvalidSignature

    where = folder / SIGNATURE_NAME
    try:
        config.verify(folder, signature)
    except InvalidSignature as exc:
        raise SignatureError(
            BAD_SIGNATURE, f"{where}: the signature does not verify with {trusted} (signed by another key, "
            "or the signature was altered); refusing the export"
        ) from exc
    except ValueError as exc:
        text = str(exc)
        if text.startswith("Key mismatch"):
            raise SignatureError(
                WRONG_KEY, f"{where}: signed by another key than {trusted}; refusing the export"
            ) from exc
        if text.startswith("Signature mismatch"):
            digests = _signed_digests(_read_bundle(signature), where)[0]
            raise _difference(folder, digests) from exc
        raise SignatureError(MALFORMED, f"{where}: not a valid signature ({text})") from exc
    except Exception as exc:  # a bundle model-signing cannot parse, a certificate the chain does not trust
        if type(exc).__name__ == "X509StoreContextError":
            raise SignatureError(WRONG_KEY, f"{where}: its certificate is not trusted by {trusted} ({exc})") from exc
        raise SignatureError(MALFORMED, f"{where}: refused by {trusted} ({type(exc).__name__}: {exc})") from exc


def _signed_digests(bundle: bytes, where: Path) -> tuple[dict[str, str], str, bool]:
    """{file: sha256} from the bundle's in-toto statement, the signing key's fingerprint (sha256
    of its PEM; empty for a certificate), and whether it was signed with a certificate."""
    try:
        data = json.loads(bundle)
        statement = json.loads(base64.b64decode(data["dsseEnvelope"]["payload"]))
        resources = statement["predicate"]["resources"]
        if statement["predicate"]["serialization"]["hash_type"] != "sha256":
            raise ValueError("only sha256 signatures are read")
        digests = {r["name"]: r["digest"] for r in resources}
        material = data["verificationMaterial"]
        hint = str((material.get("publicKey") or {}).get("hint") or "")
        certified = bool(material.get("x509CertificateChain"))
    except (ValueError, KeyError, TypeError) as exc:
        raise SignatureError(MALFORMED, f"{where}: not a model-signing bundle of sha256 file hashes ({exc})") from exc
    return digests, hint, certified


def _difference(folder: Path, digests: dict[str, str]) -> SignatureError:
    """One SignatureError naming every file removed, added or changed since signing."""
    present = {
        p.relative_to(folder).as_posix(): p
        for p in folder.rglob("*")
        if p.is_file() and p.name not in NOT_SIGNED and not p.name.startswith(".git")
    }
    removed = sorted(set(digests) - set(present))
    added = sorted(set(present) - set(digests))
    changed = sorted(n for n in set(digests) & set(present) if _sha256(present[n]) != digests[n])
    parts = [(REMOVED, "removed", removed), (ADDED, "added", added), (CHANGED, "changed", changed)]
    found = [(reason, f"{what}: {', '.join(names)}") for reason, what, names in parts if names]
    reason = found[0][0] if found else CHANGED
    text = "; ".join(line for _, line in found) or "its files differ from what was signed"
    return SignatureError(reason, f"{folder}: files differ from the signed export ({text}); refusing the export")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- what a runtime is configured with ------------------------------------------------------------


def configured_public_key(public_key: str | os.PathLike | None = None) -> Path | None:
    """The public key to require: the argument, else $MNIST_EDGE_PUBLIC_KEY, else none."""
    chosen = public_key or os.environ.get(PUBLIC_KEY_ENV) or None
    return Path(chosen) if chosen else None


def check_public_key(public_key: str | os.PathLike) -> None:
    """Fail early, in one line, on a public key that cannot check signatures (or a missing extra)."""
    _, _, verifying = _model_signing()
    try:
        verifying.Config().use_elliptic_key_verifier(public_key=public_key)
    except (OSError, ValueError, TypeError) as exc:
        raise MnistEdgeError(f"cannot use {public_key} to check signatures: {exc}") from exc


def configured_signing_key(private_key: str | os.PathLike | None = None) -> Path | None:
    """The private key to sign published exports with: the argument, else $MNIST_EDGE_SIGNING_KEY."""
    chosen = private_key or os.environ.get(SIGNING_KEY_ENV) or None
    return Path(chosen) if chosen else None


def load_signing_key(private_key: str | os.PathLike):
    """The EC private key, or one SigningFailed line (checked before any long job starts)."""
    _model_signing()  # cryptography comes with the signing extra
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        key = serialization.load_pem_private_key(Path(private_key).read_bytes(), None)
    except (OSError, ValueError, TypeError) as exc:
        raise SigningFailed(f"cannot read the signing key {private_key}: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise SigningFailed(f"{private_key}: expected an elliptic-curve (P-256) private key, found {type(key).__name__}")
    return key


def signed_with(folder: str | os.PathLike, private_key: str | os.PathLike) -> bool:
    """Whether `folder` holds a valid signature, over its current files, by this private key."""
    if not (Path(folder) / SIGNATURE_NAME).is_file():
        return False
    from cryptography.hazmat.primitives import serialization

    public_pem = load_signing_key(private_key).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with tempfile.TemporaryDirectory(prefix="mnist-edge-key-") as scratch:
        public_key = Path(scratch) / "public.pem"
        public_key.write_bytes(public_pem)
        try:
            verify_signature(folder, public_key=public_key)
        except SignatureError:
            return False
    return True


def unchecked_status(path: str | os.PathLike) -> str:
    """What can be said about an export's signature when no key is configured."""
    folder = export_folder(path)
    if (folder / SIGNATURE_NAME).is_file():
        return f"signed, signature not checked (no public key configured; set {PUBLIC_KEY_ENV})"
    return "unsigned (no public key configured, so not required)"
