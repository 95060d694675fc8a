"""The table's DynamoDB stream, read as Lambda would receive it."""
from __future__ import annotations

from typing import Any

import boto3


def stream_records(env: dict[str, str]) -> list[dict[str, Any]]:
    """Every record of the table's stream so far, as Lambda would receive them."""
    kwargs = {"endpoint_url": env["DYNAMODB_ENDPOINT"], "region_name": "eu-west-1"}
    arn = boto3.client("dynamodb", **kwargs).describe_table(
        TableName=env["CONSENT_TABLE"])["Table"]["LatestStreamArn"]
    streams = boto3.client("dynamodbstreams", **kwargs)
    records = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        for _ in range(10):
            page = streams.get_records(ShardIterator=iterator)
            records += page["Records"]
            iterator = page.get("NextShardIterator")
            if not iterator or not page["Records"]:
                break
    for record in records:  # the wire format has datetimes; Lambda delivers epoch seconds
        created = record["dynamodb"].get("ApproximateCreationDateTime")
        if hasattr(created, "timestamp"):
            record["dynamodb"]["ApproximateCreationDateTime"] = created.timestamp()
        record.setdefault("eventSourceARN", arn)
    return records
