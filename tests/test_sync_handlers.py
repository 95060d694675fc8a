"""The two drivers of the sync, as Lambda would run them.

The stream handler gets the real records of DynamoDB Local's stream for the table;
the sweep gets a scheduled event. Both through Chalice's test client.
"""
from __future__ import annotations

import pytest

from chalicelib.store.keys import purpose_sk, subject_pk
from tests.support.act import contact_by_email, field_key
from tests.support.consent import decide
from tests.support.stream import stream_records

pytestmark = pytest.mark.stream


def test_stream_handler_pushes_the_decision(client, act_env, act_sim, ledger):
    issued = decide("demo@example.com", newsletter="accept")
    records = stream_records(act_env)
    assert any(r["dynamodb"].get("NewImage", {}).get("sk", {}).get("S") == "PURPOSE#newsletter"
               for r in records)
    result = client.lambda_.invoke("on_table_change", {"Records": records})
    assert result.payload == {"synced": 1, "failed": 0, "mailed": 0}
    contact = contact_by_email(act_sim, "demo@example.com")
    assert contact["customFields"][field_key(act_sim, "Consent Newsletter")] == "Accepted"
    state = ledger.get(subject_pk(issued.subject), purpose_sk("newsletter"))
    assert state["sync_status"] == "synced"
    # The stream delivers the synced update too (and may redeliver): nothing more happens.
    again = client.lambda_.invoke("on_table_change", {"Records": stream_records(act_env)})
    assert again.payload == {"synced": 0, "failed": 0, "mailed": 0}
    assert len(act_sim.history_for(contact["id"])) == 1


def test_sweep_pushes_what_the_stream_missed(client, act_env, act_sim):
    decide("demo@example.com", events="refuse")
    result = client.lambda_.invoke("sync_sweep", client.events.generate_cw_event(
        source="aws.events", detail_type="Scheduled Event", detail={}, resources=[]))
    assert result.payload == {"synced": 1, "failed": 0}
    contact = contact_by_email(act_sim, "demo@example.com")
    assert contact["customFields"][field_key(act_sim, "Consent Events")] == "Refused"


def test_handlers_without_act_configured_leave_decisions_pending(client, env, ledger, mint):
    from chalicelib.act import sync

    issued = mint("unconfigured@example.eu", "newsletter")
    decide("unconfigured@example.eu", newsletter="accept")
    result = client.lambda_.invoke("on_table_change", {"Records": stream_records(env)})
    assert result.payload == {"synced": 0, "failed": 0, "mailed": 0}
    sweep = client.lambda_.invoke("sync_sweep", client.events.generate_cw_event(
        source="aws.events", detail_type="Scheduled Event", detail={}, resources=[]))
    assert sweep.payload == {"synced": 0, "failed": 0}
    assert [row["sync_status"] for row in sync.status_rows(ledger)] == ["pending"]
    assert issued.subject == sync.status_rows(ledger)[0]["subject"]
