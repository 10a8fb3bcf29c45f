"""Amazon SNS: the stack's job event topic."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import boto3

if TYPE_CHECKING:
    from mypy_boto3_sns.type_defs import MessageAttributeValueTypeDef


class EventPublisher:
    def __init__(self, topic_arn: str, client: Any = None):
        self.topic_arn = topic_arn
        self.client = client or boto3.client("sns")

    def publish(self, message: dict[str, Any]) -> None:
        """Publish a job event with attributes that subscription filter policies can match."""
        attributes: dict[str, MessageAttributeValueTypeDef] = {
            "JobId": {"DataType": "String", "StringValue": message["JobId"]},
            "Status": {"DataType": "String", "StringValue": message["Status"]},
            "EventType": {"DataType": "String", "StringValue": message["EventType"]},
        }
        if message.get("ClientTag"):
            attributes["ClientTag"] = {"DataType": "String", "StringValue": message["ClientTag"]}
        self.client.publish(
            TopicArn=self.topic_arn,
            Message=json.dumps(message),
            Subject=f"bulk-restore job {message['Status']}"[:100],
            MessageAttributes=attributes,
        )
