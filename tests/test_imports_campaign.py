"""Re-permission campaigns aimed by the proof held: grade B and C, or no proof at all."""
from __future__ import annotations

import json

import pytest

from chalicelib.campaigns import define, proof
from chalicelib.consent import imports
from chalicelib.consent.imports.writer import Importer
from chalicelib.core.errors import BadInput
from chalicelib.core.services import get_catalogue, get_ledger
from chalicelib.core.settings import get_settings
from tests.support import imports as samples
from tests.support.admin import auth, call
from tests.support.campaigns import make_runner

PEOPLE = ("ann", "bea", "cal", "dom", "eli")


def _seed(act_sim) -> None:
    """Ann A, Bea B, Cal C (imported acceptances), Dom nothing, Eli an imported refusal."""
    text = samples.to_csv(
        ["email", "consent", "opted_in_at", "optin_ip", "confirmed_at", "confirm_ip", "wording",
         "refused_at"],
        [{"email": "ann@example.eu", "consent": "yes", "opted_in_at": "2024-01-01T10:00:00Z",
          "optin_ip": "192.0.2.1", "confirmed_at": "2024-01-01T10:01:00Z",
          "confirm_ip": "192.0.2.1", "wording": samples.WORDING},
         {"email": "bea@example.eu", "consent": "yes", "opted_in_at": "2024-01-01T10:00:00Z"},
         {"email": "cal@example.eu", "consent": "yes"},
         {"email": "eli@example.eu", "consent": "no", "refused_at": "2024-02-01T10:00:00Z"}])
    importer = Importer(get_ledger(), get_settings(), get_catalogue(), "generic", "newsletter")
    assert imports.import_text(importer, text, imports.RejectsFile(None)).imported == 4
    ids = [act_sim.add_contact(firstName=name.title(), lastName="Test",
                               emailAddress=f"{name}@example.eu")["id"] for name in PEOPLE]
    act_sim.add_group("Revalidate EU", ids)


def _reached(runner) -> tuple[set[str], dict[str, int]]:
    progress = runner.run(define.audience(runner.client, runner.campaign))
    by_id = {c["id"]: c["emailAddress"].split("@")[0]
             for c in runner.client.iter_contacts() if c.get("emailAddress")}
    done = {by_id[item["contact_id"]] for item in define.contact_items(runner.ledger,
                                                                        runner.campaign.id)
            if item.get("status") != "skipped"}
    return done, progress.skipped


@pytest.mark.parametrize(("target", "asked", "skipped"), [
    ("weak_or_none", {"bea", "cal", "dom"}, {"proof_not_targeted": 2}),
    ("weak", {"bea", "cal"}, {"proof_not_targeted": 3}),
    ("none", {"dom"}, {"proof_not_targeted": 4}),
    (None, {"dom", "eli"}, {"already_confirmed": 3}),
])
def test_a_campaign_asks_only_the_proof_it_targets(act_env, act_sim, target, asked,
                                                   skipped) -> None:
    _seed(act_sim)
    runner = make_runner(f"reval-{target or 'all'}".replace("_", "-"), delivery="csv",
                         audience="group", value="Revalidate EU", purposes=("newsletter",),
                         proof=target)
    assert runner.campaign.proof == target
    assert _reached(runner) == (asked, skipped)
    assert define.find(runner.ledger, runner.campaign.id) == runner.campaign


def test_proof_targets_are_checked_everywhere(admin_env, client) -> None:
    with pytest.raises(BadInput, match="proof 'strong'"):
        make_runner("bad-proof", delivery="csv", proof="strong")
    answer = call(client, "post", "/admin/campaigns", {
        "id": "api-proof", "purposes": ["newsletter"], "audience": "all", "delivery": "csv",
        "proof": "weak"}, auth())
    assert answer.status_code in (200, 201, 202), answer.body
    assert json.loads(answer.body)["campaign"]["proof"] == "weak"
    from tests.support.admin import session
    page = client.http.get("/admin/dashboard/campaigns/api-proof",
                           headers={"Cookie": session(client)})
    assert "Proof grade B or C only (imported)" in page.body.decode()
    assert proof.targeted("weak", ["newsletter", "events"],
                          {"events": {"state": "accepted", "source": "imported", "grade": "C"}})
    assert not proof.targeted("weak", ["newsletter"], {"newsletter": {
        "state": "refused", "source": "imported", "grade": "C"}})
    assert proof.targeted("none", ["newsletter"], {"newsletter": {"sync_status": "x"}})
