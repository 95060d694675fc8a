"""Checking an evidence pack or export offline: chain, inclusion proofs, TSA tokens.

What a third party runs (``optinproof evidence verify FILE``) with the file alone:
neither our table nor AWS. Each check is a :class:`Check` (name, ok, detail), in the
order a reader follows them, so the CLI prints them and a PDF can show them:
1. the chain: every event's hash, ``prev_hash`` link, sequence and IP commitment;
2. per anchor: the head it names is an event of the file, the leaf is
   ``SHA-256(0x00 || subject:head_hash)``, the path leads from the leaf to the root;
3. per anchor's token: its ``messageImprint`` is the root (SHA-256), the CMS signature
   verifies with the certificate in the token (the signed attributes' message digest
   is the TSTInfo's, the ESS signing-certificate attribute names that certificate),
   the certificate is for time stamping, valid at the token's time, and, with trusted
   roots (``--ca``), issued by one of them (through the token's own intermediates).
Events after the last anchor are reported, not failed: they wait for the next anchor.

The signature checks import ``cryptography`` (in requirements-dev, never in the
Lambda, which only stores tokens). Where it is missing (a report rendered by the
Lambda), every other check runs and the signature checks are listed as skipped.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib.proof import chain, merkle, timestamp

_OID_CONTENT_TYPE = bytes.fromhex("2a864886f70d010903")
_OID_MESSAGE_DIGEST = bytes.fromhex("2a864886f70d010904")
_OID_SIGNING_CERT = bytes.fromhex("2a864886f70d010910020c")
_OID_SIGNING_CERT_V2 = bytes.fromhex("2a864886f70d010910022f")
_DIGESTS = {
    bytes.fromhex("608648016503040201"): "sha256",
    bytes.fromhex("608648016503040202"): "sha384",
    bytes.fromhex("608648016503040203"): "sha512",
    bytes.fromhex("2b0e03021a"): "sha1",
}
_OID_TIMESTAMPING = "1.3.6.1.5.5.7.3.8"


@dataclass(frozen=True)
class Check:
    """One verification step: what was checked, whether it held, and why."""

    check: str
    ok: bool
    detail: str
    #: Not checked here (no ``cryptography`` where this runs, e.g. in the Lambda):
    #: ``ok`` is then True and ``detail`` says where it is checked.
    skipped: bool = False

    def as_tuple(self) -> tuple[str, bool, str]:
        return self.check, self.ok, self.detail


def verify_pack(data: dict[str, Any], trusted_pem: bytes | None = None) -> list[Check]:
    """Every check of one evidence pack or export (see the module docstring)."""
    subject = str((data.get("subject") or {}).get("key") or "")
    events = list(data.get("events") or [])
    report = chain.verify_chain(subject, events)
    checks = [
        Check(
            "chain",
            report.ok,
            f"{report.events} events: hashes, prev_hash links, sequence, IP commitments"
            if report.ok
            else f"event {report.broken_seq}: {report.reason}",
        )
    ]
    by_seq = {event.get("seq"): event for event in events}
    anchors = list(data.get("anchors") or [])
    for anchor in anchors:
        checks.extend(_anchor_checks(subject, by_seq, anchor, trusted_pem))
    checks.append(_coverage(events, anchors))
    return checks


def _coverage(events: list[dict[str, Any]], anchors: list[dict[str, Any]]) -> Check:
    last = max((int(a.get("head_seq", 0)) for a in anchors), default=0)
    waiting = [e.get("seq") for e in events if int(e.get("seq") or 0) > last]
    if not events:
        return Check("coverage", True, "no event to anchor")
    if not waiting:
        return Check("coverage", True, f"every event (1 to {last}) is under an anchor")
    others = f"; events 1 to {last} are" if last else ""
    return Check(
        "coverage",
        True,
        f"events {waiting[0]} to {waiting[-1]} are not anchored yet (they wait for the "
        f"next anchor run){others}",
    )


def _anchor_checks(
    subject: str,
    by_seq: dict[Any, dict[str, Any]],
    anchor: dict[str, Any],
    trusted_pem: bytes | None,
) -> list[Check]:
    name = f"anchor {anchor.get('anchor_id')}"
    head = by_seq.get(anchor.get("head_seq"))
    checks = []
    if head is None or head.get("hash") != anchor.get("head_hash"):
        checks.append(
            Check(
                f"{name}: head", False, f"event {anchor.get('head_seq')} is not the head anchored"
            )
        )
    else:
        checks.append(Check(f"{name}: head", True, f"event {head.get('seq')} is the head anchored"))
    leaf = merkle.leaf_hash(subject, str(anchor.get("head_hash")))
    checks.append(
        Check(
            f"{name}: leaf",
            leaf == anchor.get("leaf"),
            "SHA-256(0x00 || subject:head_hash) matches"
            if leaf == anchor.get("leaf")
            else "the leaf does not commit to this subject and head",
        )
    )
    try:
        reached = merkle.root_from_path(leaf, [list(step) for step in anchor.get("path") or []])
    except (ValueError, TypeError) as exc:
        reached = f"unreadable path: {exc}"
    root = str(anchor.get("root"))
    checks.append(
        Check(
            f"{name}: inclusion proof",
            reached == root,
            f"{len(anchor.get('path') or [])} steps lead to root {root[:16]}…"
            if reached == root
            else "the inclusion path does not lead to the anchored root",
        )
    )
    checks.extend(token_checks(name, root, str(anchor.get("token") or ""), trusted_pem))
    return checks


def token_checks(name: str, root: str, token_b64: str, trusted_pem: bytes | None) -> list[Check]:
    """The RFC 3161 token of one anchor: imprint, signature, certificate, trust."""
    try:
        token = base64.b64decode(token_b64, validate=True)
        info = timestamp.token_info(token)
    except (ValueError, IndexError, StopIteration) as exc:
        return [Check(f"{name}: token", False, f"not a time-stamp token: {exc}")]
    imprint_ok = info.hash_oid == timestamp.OID_SHA256 and info.digest.hex() == root
    checks = [
        Check(
            f"{name}: token imprint",
            imprint_ok,
            f"the TSA stamped root {root[:16]}… at {info.gen_time}"
            if imprint_ok
            else "the token stamps another digest than this anchor's root",
        )
    ]
    if not _crypto_available():
        checks.append(
            Check(
                f"{name}: token signature",
                True,
                "not checked here: `optinproof evidence verify` or `openssl ts -verify` checks it",
                skipped=True,
            )
        )
        return checks
    try:
        signer, others = _verify_signature(token)
        checks.append(
            Check(
                f"{name}: token signature",
                True,
                f"signed by {signer.subject.rfc4514_string()}",
            )
        )
        checks.append(_certificate_check(name, signer, info.gen_time))
        if trusted_pem is not None:
            checks.append(_trust_check(name, signer, others, trusted_pem))
    except ValueError as exc:
        checks.append(Check(f"{name}: token signature", False, str(exc)))
    return checks


def _crypto_available() -> bool:
    try:
        import cryptography  # noqa: F401
    except ImportError:
        return False
    return True


def _verify_signature(token: bytes) -> tuple[Any, list[Any]]:
    """The CMS signature of the token; the signer's certificate and the other ones.
    ValueError when anything does not hold."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature

    parts = timestamp.signed_data(token)
    certs = [
        x509.load_der_x509_certificate(c.encoded)
        for p in parts[3:]
        if p.tag == 0xA0
        for c in p.children()
    ]
    signer_info = parts[-1].children()[0].children()
    sid, digest_alg = signer_info[1], signer_info[2].children()[0].content
    signed_attrs = signer_info[3]
    if signed_attrs.tag != 0xA0:
        raise ValueError("the token's signature has no signed attributes")
    algorithm = _DIGESTS.get(digest_alg)
    if algorithm is None or algorithm == "sha1":
        raise ValueError("the token's digest algorithm is not accepted (SHA-2 only)")
    attrs = {a.children()[0].content: a.children()[1].children() for a in signed_attrs.children()}
    tst = timestamp.tst_info_bytes(token)
    if attrs.get(_OID_CONTENT_TYPE, [None])[0] is None or (
        attrs[_OID_CONTENT_TYPE][0].content != timestamp.OID_TST_INFO
    ):
        raise ValueError("the signed content type is not a TSTInfo")
    digest = attrs.get(_OID_MESSAGE_DIGEST, [None])[0]
    if digest is None or digest.content != hashlib.new(algorithm, tst).digest():
        raise ValueError("the signed message digest does not match the TSTInfo (altered)")
    signer = _signer(certs, sid)
    _check_signing_certificate(attrs, signer)
    to_verify = b"\x31" + signed_attrs.encoded[1:]
    signature = signer_info[5].content
    try:
        _verify_with_key(signer.public_key(), signature, to_verify, algorithm)
    except InvalidSignature as exc:
        raise ValueError("the TSA's signature does not verify (altered token)") from exc
    return signer, [c for c in certs if c is not signer]


def _signer(certs: list[Any], sid: timestamp.Element) -> Any:
    from cryptography import x509

    for cert in certs:
        if sid.tag == 0x30:  # IssuerAndSerialNumber
            issuer, serial = sid.children()
            if issuer.encoded == cert.issuer.public_bytes() and (
                int.from_bytes(serial.content, "big", signed=True) == cert.serial_number
            ):
                return cert
        elif sid.tag == 0x80:  # subjectKeyIdentifier
            try:
                ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
            except x509.ExtensionNotFound:
                continue
            if ski.value.digest == sid.content:
                return cert
    raise ValueError("the token does not carry its signer's certificate")


def _check_signing_certificate(attrs: dict[bytes, Any], signer: Any) -> None:
    """ESS: the signed attributes name the certificate by hash (no substitution)."""
    from cryptography.hazmat.primitives.serialization import Encoding

    der = signer.public_bytes(Encoding.DER)
    if _OID_SIGNING_CERT_V2 in attrs:
        ess_id = attrs[_OID_SIGNING_CERT_V2][0].children()[0].children()[0].children()
        algorithm = "sha256"
        if ess_id[0].tag == 0x30:
            algorithm = _DIGESTS.get(ess_id[0].children()[0].content, "")
            ess_id = ess_id[1:]
        if not algorithm or ess_id[0].content != hashlib.new(algorithm, der).digest():
            raise ValueError("the signing-certificate attribute names another certificate")
    elif _OID_SIGNING_CERT in attrs:
        ess_id = attrs[_OID_SIGNING_CERT][0].children()[0].children()[0].children()
        if ess_id[0].content != hashlib.sha1(der).digest():  # noqa: S324 - RFC 2634's hash
            raise ValueError("the signing-certificate attribute names another certificate")
    else:
        raise ValueError("the token does not name its signing certificate (ESS attribute)")


def _verify_with_key(key: Any, signature: bytes, data: bytes, algorithm: str) -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

    digest = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}[
        algorithm
    ]
    if isinstance(key, rsa.RSAPublicKey):
        key.verify(signature, data, padding.PKCS1v15(), digest)
    elif isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signature, data, ec.ECDSA(digest))
    else:
        raise ValueError(f"unsupported TSA key type {type(key).__name__}")


def _certificate_check(name: str, cert: Any, gen_time: str) -> Check:
    from cryptography import x509

    try:
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
        eku_ok = usage.critical and any(o.dotted_string == _OID_TIMESTAMPING for o in usage.value)
    except x509.ExtensionNotFound:
        eku_ok = False
    at = datetime.fromisoformat(gen_time.replace("Z", "+00:00"))
    valid = cert.not_valid_before_utc <= at <= cert.not_valid_after_utc
    if not eku_ok:
        return Check(f"{name}: TSA certificate", False, "not a time-stamping certificate")
    if not valid:
        return Check(f"{name}: TSA certificate", False, f"not valid at {gen_time}")
    return Check(
        f"{name}: TSA certificate",
        True,
        f"time stamping (critical), valid at {gen_time}, serial {cert.serial_number:x}",
    )


def _trust_check(name: str, signer: Any, others: list[Any], trusted_pem: bytes) -> Check:
    """Walk from the signer to a trusted root through the token's own certificates."""
    from cryptography import x509

    try:
        roots = x509.load_pem_x509_certificates(trusted_pem)
    except ValueError as exc:
        return Check(f"{name}: trusted root", False, f"the --ca file cannot be read: {exc}")
    current = signer
    for _ in range(6):
        for candidate in roots:
            if candidate.subject == current.issuer and _issued_by(current, candidate):
                return Check(
                    f"{name}: trusted root",
                    True,
                    f"issued under {candidate.subject.rfc4514_string()}",
                )
        parent = next(
            (c for c in others if c.subject == current.issuer and _issued_by(current, c)), None
        )
        if parent is None or parent is current:
            break
        current = parent
    return Check(f"{name}: trusted root", False, "no trusted root issued the TSA certificate")


def _issued_by(cert: Any, issuer: Any) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, Exception):  # noqa: BLE001 - any failure: not issued by it
        return False
    return True


def token_files(anchor: dict[str, Any]) -> tuple[bytes, bytes]:
    """``(<id>.tsr, certificates PEM)`` of one anchor, for ``openssl ts -verify``."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    token = base64.b64decode(str(anchor.get("token") or ""), validate=True)
    certs = [
        x509.load_der_x509_certificate(c.encoded).public_bytes(Encoding.PEM)
        for p in timestamp.signed_data(token)[3:]
        if p.tag == 0xA0
        for c in p.children()
    ]
    return timestamp.granted_response(token), b"".join(certs)
