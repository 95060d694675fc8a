"""The consent table's shape, and an idempotent way to create it.

``chalice deploy`` does not create tables; operators run ``cli table create`` (and
the tests and ``make run`` use the same function against DynamoDB Local), so the
keys, the pending-sync index, TTL and the stream are defined once, here.
"""

from __future__ import annotations

import time
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.store.ledger import PENDING_SYNC_INDEX

TTL_ATTRIBUTE = "expires_at"


def table_definition(name: str) -> dict[str, Any]:
    """``create_table`` arguments: keys, the sparse pending-sync GSI, the stream."""
    return {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "sync_shard", "AttributeType": "S"},
            {"AttributeName": "sync_due", "AttributeType": "S"},
        ],
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        "GlobalSecondaryIndexes": [
            {
                # Sparse: only purpose states with a sync still to do carry sync_shard.
                "IndexName": PENDING_SYNC_INDEX,
                "KeySchema": [
                    {"AttributeName": "sync_shard", "KeyType": "HASH"},
                    {"AttributeName": "sync_due", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        "SSESpecification": {"Enabled": True},
    }


def create_table(client: Any, name: str, wait_seconds: float = 120) -> list[str]:
    """Create the table if missing, wait until active, enable TTL. Returns what it did."""
    done: list[str] = []
    try:
        client.create_table(**table_definition(name))
        done.append(f"created table {name}")
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceInUseException":
            raise
        done.append(f"table {name} already exists")
    deadline = time.monotonic() + wait_seconds
    while client.describe_table(TableName=name)["Table"]["TableStatus"] != "ACTIVE":
        if time.monotonic() > deadline:
            raise TimeoutError(f"table {name} did not become ACTIVE in {wait_seconds:.0f}s")
        time.sleep(1)
    ttl = client.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    if ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
        done.append(f"TTL already on ({ttl.get('AttributeName')})")
    else:
        client.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
        )
        done.append(f"TTL enabled on {TTL_ATTRIBUTE}")
    return done


def describe(client: Any, name: str) -> dict[str, Any]:
    """Facts an operator checks: status, item count, index, stream, TTL."""
    table = client.describe_table(TableName=name)["Table"]
    ttl = client.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    return {
        "table": name,
        "status": table["TableStatus"],
        "items": table.get("ItemCount", 0),
        "indexes": [index["IndexName"] for index in table.get("GlobalSecondaryIndexes", [])],
        "stream": table.get("StreamSpecification", {}).get("StreamViewType", "off"),
        "stream_arn": table.get("LatestStreamArn", ""),
        "ttl": f"{ttl.get('TimeToLiveStatus')} ({ttl.get('AttributeName', '-')})",
    }
