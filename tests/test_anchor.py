"""Anchoring chain heads in trusted time, end to end, against a real RFC 3161 TSA.

The TSA is ``openssl ts -reply`` behind a loopback HTTP server (devstack/tsa.py) with
a CA generated for the run; the chain heads reach the queue through DynamoDB Local's
real stream and the app's ``on_table_change``; the schedule runs through Chalice's
test client; the pack is checked by ``optinproof evidence verify`` and by
``openssl ts -verify`` alone.
"""
from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from jsonschema import Draft202012Validator

from chalicelib.cli.main import main
from chalicelib.core.errors import ConfigError, TimestampFailed
from chalicelib.core.services import get_catalogue
from chalicelib.core.settings import AnchorSettings, get_settings
from chalicelib.proof import anchor, anchor_verify, evidence, merkle, timestamp
from chalicelib.store import infra, keys, stream
from devstack.dynamodb_local import free_port
from tests.support.consent import decide
from tests.support.signup import decide as post_decision
from tests.support.stream import stream_records

ROOT = Path(__file__).resolve().parent.parent


def _scheduled(client: Any, name: str) -> dict[str, Any]:
    event = client.events.generate_cw_event(
        source="aws.events", detail_type="Scheduled Event", detail={}, resources=[])
    return client.lambda_.invoke(name, event).payload


def _queue(ledger: Any) -> list[tuple[str, str]]:
    return anchor.queued(ledger)[1]


def _pack_file(ledger: Any, subject: str, folder: Path) -> Path:
    data = evidence.pack(ledger, get_settings(), get_catalogue(), subject)
    path = folder / "evidence.json"
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
    return path


def _verify(path: Path, *extra: str, capsys: Any) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["evidence", "verify", str(path), *extra])
    return code, capsys.readouterr().out


# -- the Merkle tree ------------------------------------------------------------------------

@pytest.mark.parametrize("count", [1, 2, 3, 5, 8, 13, 17])
def test_every_leaf_path_leads_to_the_root_and_a_changed_step_does_not(count: int):
    leaves = [merkle.leaf_hash(f"{i:064x}", f"{i * 7:064x}") for i in range(count)]
    tree = merkle.build(leaves)
    for index, leaf in enumerate(leaves):
        path = tree.path(index)
        assert merkle.root_from_path(leaf, path) == tree.root
        assert len(path) <= max(1, (count - 1).bit_length())
        if path:
            side, sibling = path[0]
            forged = [["R" if side == "L" else "L", sibling], *path[1:]]
            assert merkle.root_from_path(leaf, forged) != tree.root
    # A leaf cannot pass for an inner node: the prefixes differ.
    if count >= 2:
        assert merkle.leaf_hash("a", "b") != merkle.node_hash(leaves[0], leaves[1])


def test_an_empty_tree_is_refused():
    with pytest.raises(ValueError):
        merkle.build([])


# -- the RFC 3161 client -----------------------------------------------------------------------

def test_the_tsa_answer_is_checked_for_our_digest_and_nonce(tsa_server):
    digest = bytes(range(32))
    answer = tsa_server.reply(timestamp.request(digest, 42))
    token, info = timestamp.parse_response(answer, digest, 42)
    assert info.digest == digest and info.nonce == 42 and info.gen_time.endswith("Z")
    assert timestamp.token_info(token).serial == info.serial
    with pytest.raises(TimestampFailed, match="nonce"):
        timestamp.parse_response(answer, digest, 43)
    with pytest.raises(TimestampFailed, match="another digest"):
        timestamp.parse_response(answer, bytes(32), 42)
    with pytest.raises(TimestampFailed, match="not a TimeStampResp"):
        timestamp.parse_response(b"<html>proxy error</html>", digest, 42)


def test_a_tsa_that_refuses_the_request_is_a_failure_not_a_token(tsa_server):
    # openssl answers a request for a digest it does not accept with a rejection status.
    query = timestamp.request(bytes(32), 7).replace(timestamp.OID_SHA256, bytes.fromhex(
        "608648016503040204"))  # sha224: not in the TSA's digests
    with pytest.raises(TimestampFailed, match="refused"):
        timestamp.parse_response(tsa_server.reply(query), bytes(32), 7)


# -- from a decision to a verified pack --------------------------------------------------------

@pytest.mark.stream
def test_decisions_are_anchored_and_the_pack_verifies_offline(
        client, env, tsa, ledger, tmp_path, capsys):
    people = [decide(f"p{i}@example.eu", newsletter="accept") for i in range(3)]
    seen = stream_records(env)
    result = client.lambda_.invoke("on_table_change", {"Records": seen})
    assert "heads_to_anchor" not in result.payload
    assert {keys.anchor_queue_subject(sk) for _, sk in _queue(ledger)} == {
        p.subject for p in people}

    outcome = _scheduled(client, "anchor_sweep")
    assert outcome["leaves"] == 3 and outcome["tsa_calls"] == 1 and outcome["anchor_id"]
    assert _queue(ledger) == []  # what was anchored left the queue
    root = ledger.get(*keys.anchor(outcome["anchor_id"]))
    assert root["root"] == outcome["root"] and root["leaf_count"] == 3
    assert root["tsa_url"] == tsa.url
    stored = json.dumps(root) + json.dumps(list(ledger.query(
        keys.subject_pk(people[0].subject), keys.ANCHOR_PREFIX)))
    assert "@example.eu" not in stored and "192.0.2.10" not in stored  # hashes only

    # The anchored reference is not an event: the head did not move, nothing re-queues.
    head = ledger.get(*keys.chain(people[0].subject))
    client.lambda_.invoke("on_table_change", {"Records": stream_records(env)[len(seen):]})
    assert ledger.get(*keys.chain(people[0].subject)) == head
    assert _queue(ledger) == []
    assert _scheduled(client, "anchor_sweep")["skipped"]

    pack = _pack_file(ledger, people[0].subject, tmp_path)
    data = json.loads(pack.read_text())
    (only,) = data["anchors"]
    assert only["first_seq"] == 1 and only["head_seq"] == len(data["events"])
    assert only["head_hash"] == data["events"][-1]["hash"]
    schema = json.loads((ROOT / "schemas" / "subject-export.v1.json").read_text())
    Draft202012Validator(schema).validate(data)

    code, out = _verify(pack, "--ca", str(tsa.ca_pem), capsys=capsys)
    assert code == 0, out
    for check in ("chain", "head", "leaf", "inclusion proof", "token imprint",
                  "token signature", "TSA certificate", "trusted root", "coverage"):
        assert check in out, (check, out)
    assert "FAIL" not in out
    results = anchor_verify.verify_pack(data, tsa.ca_pem.read_bytes())
    assert all(ok for _, ok, _ in (c.as_tuple() for c in results))


@pytest.mark.stream
def test_openssl_alone_verifies_the_exported_token(client, env, tsa, ledger, tmp_path, capsys):
    issued = decide("olga@example.eu", newsletter="accept")
    client.lambda_.invoke("on_table_change", {"Records": stream_records(env)})
    _scheduled(client, "anchor_sweep")
    pack = _pack_file(ledger, issued.subject, tmp_path)
    code, _ = _verify(pack, "--write-token", str(tmp_path / "tokens"), capsys=capsys)
    assert code == 0
    (anchored,) = json.loads(pack.read_text())["anchors"]
    tsr = tmp_path / "tokens" / f"{anchored['anchor_id']}.tsr"
    root = (tmp_path / "tokens" / f"{anchored['anchor_id']}.root").read_text().strip()
    ok = subprocess.run(["openssl", "ts", "-verify", "-digest", root, "-in", str(tsr),
                         "-CAfile", str(tsa.ca_pem)], capture_output=True, text=True)
    assert ok.returncode == 0 and "Verification: OK" in ok.stdout, ok.stderr
    other = subprocess.run(["openssl", "ts", "-verify", "-digest", "00" * 32, "-in", str(tsr),
                            "-CAfile", str(tsa.ca_pem)], capture_output=True, text=True)
    assert other.returncode != 0  # the token stamps this root and no other
    certs = (tmp_path / "tokens" / f"{anchored['anchor_id']}-certs.pem").read_text()
    assert "BEGIN CERTIFICATE" in certs


# -- tampering -----------------------------------------------------------------------------------

@pytest.fixture
def two_packs(env, tsa, ledger, tmp_path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two people, each anchored by its own run (so two tokens of two roots)."""
    settings = get_settings().anchor
    first = decide("ann@example.eu", newsletter="accept", events="refuse")
    assert anchor.run(ledger, settings, catch_up=True).anchor_id
    second = decide("bob@example.eu", newsletter="accept")
    assert anchor.run(ledger, settings, catch_up=True).leaves == 1
    one = json.loads(_pack_file(ledger, first.subject, tmp_path).read_text())
    two = json.loads(_pack_file(ledger, second.subject, tmp_path).read_text())
    return one, two


def _failed(data: dict[str, Any], ca: Path | None = None) -> list[str]:
    return [c.check for c in anchor_verify.verify_pack(data, ca.read_bytes() if ca else None)
            if not c.ok]


def test_an_altered_event_fails_the_chain(two_packs, tsa, tmp_path, capsys):
    data, _ = two_packs
    data["events"][0]["channel"] = "forged"
    assert _failed(data) == ["chain"]
    path = tmp_path / "altered.json"
    path.write_text(json.dumps(data))
    code, out = _verify(path, capsys=capsys)
    assert code == 1 and "FAIL  chain: event 1" in out


def test_an_altered_head_or_path_fails_the_inclusion_proof(two_packs):
    data, _ = two_packs
    data["anchors"][0]["path"] = [["L", "0" * 64]]
    assert any(name.endswith("inclusion proof") for name in _failed(data))
    data, _ = two_packs
    data["anchors"][0]["head_hash"] = "1" * 64
    failed = _failed(data)
    assert any(name.endswith(": head") for name in failed)
    assert any(name.endswith(": leaf") for name in failed)


def test_the_token_of_another_root_is_refused(two_packs):
    one, two = two_packs
    one["anchors"][0]["token"] = two["anchors"][0]["token"]
    assert [n for n in _failed(one)] == [f"anchor {one['anchors'][0]['anchor_id']}: token imprint"]


def test_a_token_with_an_altered_signature_or_time_is_refused(two_packs):
    data, _ = two_packs
    raw = bytearray(base64.b64decode(data["anchors"][0]["token"]))
    raw[-5] ^= 0x01  # inside the signature value, the last element of the token
    data["anchors"][0]["token"] = base64.b64encode(bytes(raw)).decode()
    assert any(n.endswith("token signature") for n in _failed(data))
    data, _ = two_packs
    raw = bytearray(base64.b64decode(data["anchors"][0]["token"]))
    at = raw.find(b"Z", raw.find(bytes([0x18, 0x0F])))  # genTime: a second later
    raw[at - 1] = ord("0") + (raw[at - 1] - ord("0") + 1) % 10
    data["anchors"][0]["token"] = base64.b64encode(bytes(raw)).decode()
    assert any(n.endswith("token signature") for n in _failed(data))


def test_a_tsa_under_another_root_is_not_trusted(two_packs, tmp_path):
    from devstack.tsa import make_authority

    make_authority(tmp_path / "other")
    data, _ = two_packs
    assert [n.rsplit(": ", 1)[1] for n in _failed(data, tmp_path / "other" / "ca.pem")] == [
        "trusted root"]


# -- a TSA that is down ------------------------------------------------------------------------

@pytest.mark.stream
def test_a_tsa_that_is_down_delays_anchoring_raises_an_alarm_and_blocks_no_decision(
        client, env, tsa, ledger, capsys, mint):
    first = decide("cleo@example.eu", newsletter="accept")
    client.lambda_.invoke("on_table_change", {"Records": stream_records(env)})
    tsa.fail = True
    capsys.readouterr()
    outcome = _scheduled(client, "anchor_sweep")
    assert outcome["anchor_id"] is None and outcome["failures"]
    assert "503" in outcome["failures"][0]
    alarms = [json.loads(line) for line in capsys.readouterr().out.splitlines()
              if '"anchor_alarm"' in line]
    assert alarms and alarms[0]["level"] == "error" and alarms[0]["waiting"] == 1
    assert alarms[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"] == "AnchorFailures"
    assert len(_queue(ledger)) >= 1  # kept for the next run

    # A decision made meanwhile goes through as always (the TSA is never on its path).
    issued = mint("dan@example.eu", "newsletter")
    answer = post_decision(client, f"/c/{issued.token}", newsletter="accept")
    assert answer.status_code == 200
    assert ledger.snapshot(issued.subject).states["newsletter"]["state"] == "accepted"
    tsa.fail = False
    client.lambda_.invoke("on_table_change", {"Records": stream_records(env)})
    retried = _scheduled(client, "anchor_sweep")
    assert retried["anchor_id"] and retried["leaves"] >= 2
    assert any(a["head_seq"] for a in anchor.subject_anchors(ledger, first.subject))


def test_the_next_tsa_of_the_list_is_asked_when_the_first_is_unreachable(env, tsa, ledger):
    decide("eve@example.eu", newsletter="accept")
    dead = f"http://127.0.0.1:{free_port()}/tsa"
    settings = AnchorSettings((dead, tsa.url), 5.0)
    outcome = anchor.run(ledger, settings, catch_up=True)
    assert outcome.anchor_id and outcome.tsa_calls == 2 and outcome.tsa_url == tsa.url
    assert "cannot be reached" in outcome.failures[0]


def test_without_tsa_urls_anchoring_is_off_and_says_so(env, ledger):
    decide("fay@example.eu", newsletter="accept")
    outcome = anchor.run(ledger, get_settings().anchor, catch_up=True)
    assert outcome.anchor_id is None and "TSA_URLS" in (outcome.skipped or "")


def test_catch_up_anchors_heads_no_anchor_covers_and_only_those(env, tsa, ledger):
    ann = decide("gus@example.eu", newsletter="accept")
    settings = get_settings().anchor
    assert anchor.run(ledger, settings, catch_up=True).leaves == 1
    assert anchor.run(ledger, settings, catch_up=True).skipped
    decide("gus@example.eu", events="accept")  # the head moves: a new anchor is due
    again = anchor.run(ledger, settings, catch_up=True)
    assert again.leaves == 1
    covered = anchor.subject_anchors(ledger, ann.subject)
    assert [a["first_seq"] for a in covered] == [1, covered[0]["head_seq"] + 1]


def test_only_a_moved_head_is_queued_by_the_stream():
    def change(old: str | None, new: str) -> stream.Change:
        return stream.Change("MODIFY", "SUBJ#ab", keys.CHAIN,
                             {"head_hash": new, "seq": 3}, {"head_hash": old} if old else None)

    assert stream.route([change(None, "h1")]).heads == [("ab", 3, "h1")]
    assert stream.route([change("h1", "h1")]).heads == []


def test_the_cli_runs_an_anchor_and_fails_when_no_tsa_grants(env, tsa, capsys):
    decide("hal@example.eu", newsletter="accept")
    tsa.fail = True
    assert main(["anchor", "run", "--catch-up"]) == 1
    tsa.fail = False
    capsys.readouterr()
    assert main(["anchor", "run", "--catch-up"]) == 0
    assert json.loads(capsys.readouterr().out)["leaves"] == 1


def test_a_bad_tsa_url_is_a_configuration_error(monkeypatch):
    from chalicelib.core.settings import anchor_settings

    with pytest.raises(ConfigError, match="TSA_URLS"):
        anchor_settings({"TSA_URLS": "ftp://tsa.example"})
    assert anchor_settings({"TSA_URLS": "https://a.example/tsa, https://b.example"}).tsa_urls == (
        "https://a.example/tsa", "https://b.example")


# -- the S3 Object Lock copy ------------------------------------------------------------------------

def _s3() -> Any:
    return boto3.session.Session().client("s3", region_name="eu-west-1",
                                          aws_access_key_id="x", aws_secret_access_key="x")


def test_each_anchor_is_also_written_to_the_object_lock_bucket(env, tsa, ledger):
    decide("ida@example.eu", newsletter="accept")
    s3 = _s3()
    with Stubber(s3) as stub:
        stub.add_response("put_object", {}, {
            "Bucket": "optinproof-test-anchors-x", "Key": ANY,
            "Body": ANY, "ContentType": "application/json",
            "ChecksumAlgorithm": "SHA256"})
        settings = AnchorSettings((tsa.url,), 5.0, "optinproof-test-anchors-x")
        outcome = anchor.run(ledger, settings, catch_up=True, s3=s3)
        stub.assert_no_pending_responses()
    assert outcome.anchor_id


def test_a_failed_bucket_copy_is_an_alarm_and_the_anchor_stands(env, tsa, ledger, capsys):
    decide("jon@example.eu", newsletter="accept")
    s3 = _s3()
    with Stubber(s3) as stub:
        stub.add_client_error("put_object", "AccessDenied", http_status_code=403)
        settings = AnchorSettings((tsa.url,), 5.0, "optinproof-test-anchors-x")
        outcome = anchor.run(ledger, settings, catch_up=True, s3=s3)
    assert outcome.anchor_id and ledger.get(*keys.anchor(outcome.anchor_id))
    assert '"anchor_alarm"' in capsys.readouterr().out


def test_infra_creates_the_anchor_bucket_locked_in_compliance_mode():
    s3 = _s3()
    name = "optinproof-prod-anchors-example"
    with Stubber(s3) as stub:
        stub.add_response("create_bucket", {}, {
            "Bucket": name, "ObjectLockEnabledForBucket": True,
            "CreateBucketConfiguration": {"LocationConstraint": "eu-west-1"}})
        stub.add_response("put_object_lock_configuration", {}, {
            "Bucket": name, "ObjectLockConfiguration": {
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Years": 6}}}})
        stub.add_response("put_public_access_block", {}, {
            "Bucket": name, "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True, "IgnorePublicAcls": True,
                "BlockPublicPolicy": True, "RestrictPublicBuckets": True}})
        done = infra.create_anchor_bucket(s3, "prod", name, "eu-west-1")
        stub.assert_no_pending_responses()
    assert done[0] == f"created bucket {name} with Object Lock"
    with pytest.raises(ConfigError, match="optinproof-prod-anchors"):
        infra.create_anchor_bucket(s3, "prod", "someone-elses-bucket", "eu-west-1")
    statement = next(s for s in infra.policy("prod", "example-outdoor.eu")["Statement"]
                     if s["Sid"] == "AnchorCopies")
    assert statement["Action"] == ["s3:PutObject"]
    assert statement["Resource"] == "arn:aws:s3:::optinproof-prod-anchors*/anchors/*"



def test_tsa_credentials_go_in_a_header_and_are_never_stored(env, tsa, ledger):
    target, headers = timestamp._target("https://acme:s%40cret@tsa.example:8443/tsa")
    assert target == "https://tsa.example:8443/tsa"
    assert base64.b64decode(headers["Authorization"].removeprefix("Basic ")) == b"acme:s@cret"
    decide("kim@example.eu", newsletter="accept")
    with_account = tsa.url.replace("http://", "http://acme:secret@")
    outcome = anchor.run(ledger, AnchorSettings((with_account,), 5.0), catch_up=True)
    stored = ledger.get(*keys.anchor(outcome.anchor_id or ""))
    assert stored["tsa_url"] == tsa.url and "secret" not in json.dumps(stored)


def test_without_cryptography_the_signature_checks_are_listed_as_skipped(two_packs, tmp_path):
    """Where the Lambda renders a report it has no ``cryptography``: every hash check
    still runs, and the signature says where it is checked instead of passing. Run in
    a Python where importing cryptography fails, as it does in the Lambda."""
    import sys

    data, _ = two_packs
    forged = json.loads(json.dumps(data))
    forged["anchors"][0]["path"] = [["R", "0" * 64]]
    (tmp_path / "packs.json").write_text(json.dumps([data, forged]))
    program = (
        "import json, sys; sys.modules['cryptography'] = None\n"
        "from chalicelib.proof import anchor_verify\n"
        f"packs = json.load(open({str(tmp_path / 'packs.json')!r}))\n"
        "print(json.dumps([[c.as_tuple() + (c.skipped,) for c in anchor_verify.verify_pack(p)]"
        " for p in packs]))\n"
    )
    done = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    intact, altered = json.loads(done.stdout)
    skipped = [c for c in intact if c[3]]
    assert [c[0].rsplit(": ", 1)[1] for c in skipped] == ["token signature"]
    assert "evidence verify" in skipped[0][2]
    assert all(c[1] for c in intact)
    assert not all(c[1] for c in altered)


def test_the_pack_says_how_far_the_anchors_reach(env, tsa, ledger):
    issued = decide("lea@example.eu", newsletter="accept")
    before = evidence.pack(ledger, get_settings(), get_catalogue(), issued.subject)
    assert before["anchors"] == []
    assert before["evidence"]["anchoring"]["anchored_through_seq"] == 0
    anchor.run(ledger, get_settings().anchor, catch_up=True)
    after = evidence.pack(ledger, get_settings(), get_catalogue(), issued.subject)
    summary = after["evidence"]["anchoring"]
    assert summary["anchors"] == 1 and summary["waiting"] == 0
    assert summary["anchored_through_seq"] == len(after["events"])


def test_a_run_over_its_limit_anchors_the_queue_first_and_leaves_the_rest(env, tsa, ledger):
    """What is read from the queue is deleted: so it must all be in the tree, and the
    catch-up scan only fills the room left; the rest waits for the next run."""
    people = [decide(f"m{i}@example.eu", newsletter="accept") for i in range(3)]
    queued_one = people[0]
    head = ledger.get(*keys.chain(queued_one.subject))
    anchor.enqueue(ledger, [anchor.Head(queued_one.subject, int(head["seq"]), head["head_hash"])])
    settings = get_settings().anchor
    first = anchor.run(ledger, settings, catch_up=True, limit=2)
    assert first.leaves == 2 and _queue(ledger) == []
    assert anchor.subject_anchors(ledger, queued_one.subject)
    second = anchor.run(ledger, settings, catch_up=True, limit=2)
    assert second.leaves == 1
    assert all(anchor.subject_anchors(ledger, p.subject) for p in people)


def test_the_dossier_lists_the_anchor_checks_beside_the_chain(env, tsa, ledger):
    """The PDF dossier a regulator reads shows each anchor's checks as rows of its
    verification table; the token's signature, which needs ``cryptography``, is
    checked where it is available and otherwise printed as not checked, never passed."""
    from chalicelib.proof import dossier
    from tests.support import pdf

    issued = decide("noe@example.eu", newsletter="accept")
    anchor.run(ledger, get_settings().anchor, catch_up=True)
    data = evidence.pack(ledger, get_settings(), get_catalogue(), issued.subject)
    rows = dossier.verification_rows(data, {})
    names = [check for check, _, _ in rows]
    for wanted in ("head", "leaf", "inclusion proof", "token imprint", "coverage"):
        assert any(name.endswith(wanted) for name in names), (wanted, names)
    assert all(ok is not False for _, ok, _ in rows), rows
    text = pdf.squeezed(dossier.dossier(ledger, get_settings(), get_catalogue(),
                                        issued.subject, "en"))
    assert "inclusionproof" in text and "tokenimprint" in text and "FAILED" not in text
    from chalicelib.core.i18n import translations

    french = [c for c, _, _ in dossier.verification_rows(data, {}, translations("fr").gettext)]
    assert any(c.startswith("ancrage ") and c.endswith(": preuve d'inclusion") for c in french)
    page = evidence.html(data, "fr")  # the printable pack names the same anchors
    assert "Ancrages dans un temps de confiance" in page
    assert all(a["anchor_id"] in page for a in data["anchors"])
    unanchored = decide("zoe@example.eu", newsletter="accept")
    fresh = evidence.pack(ledger, get_settings(), get_catalogue(), unanchored.subject)
    assert "No anchor covers this chain yet" in evidence.html(fresh, "en")
