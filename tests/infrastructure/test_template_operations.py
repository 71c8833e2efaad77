"""template.yaml's production pieces: alarms to one topic, the dashboard, log groups, load limits, the expiry scan's
failure handling and the outbox's recovery. Each test fails if its piece is removed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from devtools.cfn import resources_of_type

from tests.infrastructure.conftest import FunctionConfig

FOLDERS = ("ordering", "consumption", "customers", "stripe_webhook", "expiry_scan", "event_publisher")


def _alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v["Properties"] for k, v in resources_of_type("AWS::CloudWatch::Alarm", template).items()}


def _metric_alarms(template: dict[str, Any], namespace: str, metric: str) -> list[dict[str, Any]]:
    """Alarms on ``namespace``/``metric``, directly or inside a metric math alarm, with their dimensions."""
    found = []
    for properties in _alarms(template).values():
        stats = [m["MetricStat"]["Metric"] for m in properties.get("Metrics") or [] if "MetricStat" in m]
        stats.append(properties)
        for stat in stats:
            if stat.get("Namespace") == namespace and stat.get("MetricName") == metric:
                found.append({d["Name"]: d["Value"] for d in stat["Dimensions"]} | {"_alarm": properties})
    return found


def test_every_alarm_notifies_the_alarm_topic(template: dict[str, Any]) -> None:
    alarms = _alarms(template)
    assert alarms
    for name, properties in alarms.items():
        assert properties["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
        assert properties["TreatMissingData"] == "notBreaching", name
    assert template["Resources"]["AlarmTopic"]["Type"] == "AWS::SNS::Topic"
    assert template["Outputs"]["AlarmTopicArn"]["Value"] == {"Ref": "AlarmTopic"}


def test_an_email_subscription_only_when_an_address_is_given(template: dict[str, Any]) -> None:
    subscription = template["Resources"]["AlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlarmEmail"
    assert subscription["Properties"] == {
        "TopicArn": {"Ref": "AlarmTopic"},
        "Protocol": "email",
        "Endpoint": {"Ref": "AlarmEmail"},
    }
    assert template["Parameters"]["AlarmEmail"]["Default"] == ""
    assert template["Conditions"]["HasAlarmEmail"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}


@pytest.mark.parametrize("metric", ["Errors", "Throttles"])
@pytest.mark.parametrize("folder", FOLDERS)
def test_each_function_alarms_on_errors_and_throttles(
    folder: str, metric: str, functions: dict[str, FunctionConfig], template: dict[str, Any]
) -> None:
    logical_id = functions[folder].logical_id
    alarms = [a for a in _metric_alarms(template, "AWS/Lambda", metric) if a["FunctionName"] == {"Ref": logical_id}]
    assert len(alarms) == 1
    alarm = alarms[0]["_alarm"]
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")


def test_the_http_apis_5xx_alarm(template: dict[str, Any]) -> None:
    (alarm,) = _metric_alarms(template, "AWS/ApiGateway", "5xx")
    assert (alarm["ApiId"], alarm["Stage"]) == ({"Ref": "HttpApi"}, "$default")


def test_the_webhook_urls_5xx_alarm(template: dict[str, Any]) -> None:
    (alarm,) = _metric_alarms(template, "AWS/Lambda", "Url5xxCount")
    assert alarm["FunctionName"] == {"Ref": "StripeWebhookFunction"}
    assert alarm["_alarm"]["Threshold"] == 1


def test_the_publishers_iterator_age_alarm(template: dict[str, Any]) -> None:
    (alarm,) = _metric_alarms(template, "AWS/Lambda", "IteratorAge")
    assert alarm["FunctionName"] == {"Ref": "EventPublisherFunction"}
    assert alarm["_alarm"]["Statistic"] == "Maximum"
    assert alarm["_alarm"]["Threshold"] <= 15 * 60 * 1000  # well before a record reaches its maximum age


@pytest.mark.parametrize("metric", ["OnFailureDestinationDeliveredEventCount", "DroppedEventCount"])
def test_the_outbox_failure_destination_alarms(metric: str, template: dict[str, Any]) -> None:
    # Given the alarm on the stream mappings' records sent to the failure bucket (or dropped)
    alarms = _metric_alarms(template, "AWS/Lambda", metric)
    # Then it watches both of the publisher's mappings, the credits table's and the customers table's (SAM names a
    # mapping <function><event>; its Ref is the mapping's UUID), in one alarm
    watched = sorted(alarm["EventSourceMappingUUID"]["Ref"] for alarm in alarms)
    assert watched == ["EventPublisherFunctionCustomersOutbox", "EventPublisherFunctionOutbox"]
    events = template["Resources"]["EventPublisherFunction"]["Properties"]["Events"]
    assert {"Outbox", "CustomersOutbox"} <= set(events)
    assert all(alarm["_alarm"] is alarms[0]["_alarm"] and alarm["_alarm"]["Threshold"] == 1 for alarm in alarms)
    expression = next(m["Expression"] for m in alarms[0]["_alarm"]["Metrics"] if "Expression" in m)
    assert all(m["Id"] in expression for m in alarms[0]["_alarm"]["Metrics"] if "MetricStat" in m)


def test_a_failing_expiry_scan_alarms(template: dict[str, Any]) -> None:
    # Given the scan's error alarm and its failure queue's alarm
    (errors,) = [
        a for a in _metric_alarms(template, "AWS/Lambda", "Errors") if a["FunctionName"]["Ref"] == "ExpiryScanFunction"
    ]
    (queued,) = _metric_alarms(template, "AWS/SQS", "ApproximateNumberOfMessagesVisible")
    # Then a failed run alarms at once, and so does its record in the failure queue
    assert errors["_alarm"]["Threshold"] == 1
    assert queued["QueueName"] == {"Fn::GetAtt": ["ExpiryScanFailureQueue", "QueueName"]}


def test_the_dashboard_shows_every_function_and_the_api(
    functions: dict[str, FunctionConfig], template: dict[str, Any]
) -> None:
    body = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    parsed = json.loads(body)  # the body is JSON once ${...} are substituted (they sit inside strings)
    assert parsed["widgets"]
    for config in functions.values():
        assert f"${{{config.logical_id}}}" in body
    assert "${HttpApi}" in body and "IteratorAge" in body


# ---------------------------------------------------------------------------------------------------- logs
@pytest.mark.parametrize("folder", FOLDERS)
def test_each_function_logs_to_its_own_group_with_retention(
    folder: str, functions: dict[str, FunctionConfig], template: dict[str, Any]
) -> None:
    # Given the function's logging configuration
    config = functions[folder]
    group_id = config.prop("LoggingConfig")["LogGroup"]["Ref"]
    group = template["Resources"][group_id]
    # Then it is a log group of the stack, kept LogRetentionDays and deleted with the stack
    assert group["Type"] == "AWS::Logs::LogGroup"
    assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert (group["DeletionPolicy"], group["UpdateReplacePolicy"]) == ("Delete", "Delete")
    assert group["Properties"]["LogGroupName"] == {"Fn::Sub": f"/aws/lambda/${{AWS::StackName}}/{folder}"}


def test_log_retention_parameter(template: dict[str, Any]) -> None:
    parameter = template["Parameters"]["LogRetentionDays"]
    assert parameter["Default"] == 30
    assert parameter["Default"] in parameter["AllowedValues"]


# ---------------------------------------------------------------------------------------------------- load limits
@pytest.mark.parametrize(
    ("folder", "parameter", "condition", "default"),
    [
        ("stripe_webhook", "WebhookReservedConcurrency", "ReservesWebhookConcurrency", 10),
        ("event_publisher", "PublisherReservedConcurrency", "ReservesPublisherConcurrency", 5),
    ],
)
def test_reserved_concurrency(
    folder: str,
    parameter: str,
    condition: str,
    default: int,
    functions: dict[str, FunctionConfig],
    template: dict[str, Any],
) -> None:
    # Given the function's reserved concurrency
    reserved = functions[folder].prop("ReservedConcurrentExecutions")
    # Then it is the parameter's, none when the parameter is 0 (accounts with a quota of 10 cannot reserve any)
    assert reserved == {"Fn::If": [condition, {"Ref": parameter}, {"Ref": "AWS::NoValue"}]}
    assert template["Parameters"][parameter]["Default"] == default
    assert template["Conditions"][condition] == {"Fn::Not": [{"Fn::Equals": [{"Ref": parameter}, "0"]}]}


def test_http_api_default_route_throttling(template: dict[str, Any]) -> None:
    settings = template["Resources"]["HttpApi"]["Properties"]["DefaultRouteSettings"]
    assert settings == {
        "ThrottlingRateLimit": {"Ref": "ApiThrottlingRateLimit"},
        "ThrottlingBurstLimit": {"Ref": "ApiThrottlingBurstLimit"},
    }
    parameters = template["Parameters"]
    assert parameters["ApiThrottlingBurstLimit"]["Default"] >= parameters["ApiThrottlingRateLimit"]["Default"] > 0


# ---------------------------------------------------------------------------------------------------- expiry scan
def test_expiry_scan_is_not_retried_by_lambda_and_failures_are_kept(
    functions: dict[str, FunctionConfig], template: dict[str, Any]
) -> None:
    # Given the scan's asynchronous invocation settings (Scheduler invokes it asynchronously)
    config = functions["expiry_scan"].prop("EventInvokeConfig")
    # Then Lambda does not retry a failed run (the next scheduled run picks the work up), and records it in a queue
    assert config["MaximumRetryAttempts"] == 0
    assert config["DestinationConfig"]["OnFailure"] == {
        "Type": "SQS",
        "Destination": {"Fn::GetAtt": ["ExpiryScanFailureQueue", "Arn"]},
    }
    queue = template["Resources"]["ExpiryScanFailureQueue"]
    assert (queue["DeletionPolicy"], queue["UpdateReplacePolicy"]) == ("Delete", "Delete")


# ---------------------------------------------------------------------------------------------------- outbox
def test_the_outbox_stream_isolates_a_bad_record_and_gives_up_in_time(functions: dict[str, FunctionConfig]) -> None:
    # Given the publisher's stream mapping
    outbox = functions["event_publisher"].events["Outbox"]["Properties"]
    # Then a failing batch is split down to the bad record, which is held at most an hour (the stream keeps 24 h)
    assert outbox["BisectBatchOnFunctionError"] is True
    assert 0 < outbox["MaximumRecordAgeInSeconds"] <= 3600
    assert 0 < outbox["MaximumRetryAttempts"] <= 100
    assert outbox["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert outbox["MetricsConfig"] == {"Metrics": ["EventCount"]}


def test_the_outbox_failure_destination_keeps_whole_records(
    functions: dict[str, FunctionConfig], template: dict[str, Any]
) -> None:
    # Given where the records given up on go
    destination = functions["event_publisher"].events["Outbox"]["Properties"]["DestinationConfig"]["OnFailure"]
    # Then it is an S3 bucket (S3 is the destination that receives the records themselves, not only shard
    # pointers), retained with the data, private and encrypted, named in the outputs for the replay command
    assert destination == {"Type": "S3", "Destination": {"Fn::GetAtt": ["OutboxFailureBucket", "Arn"]}}
    bucket = template["Resources"]["OutboxFailureBucket"]
    assert (bucket["DeletionPolicy"], bucket["UpdateReplacePolicy"]) == ("Retain", "Retain")
    assert all(bucket["Properties"]["PublicAccessBlockConfiguration"].values())
    assert bucket["Properties"]["BucketEncryption"]
    assert template["Outputs"]["OutboxFailureBucketName"]["Value"] == {"Ref": "OutboxFailureBucket"}
    policy = template["Resources"]["OutboxFailureBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert any(s["Effect"] == "Deny" and "aws:SecureTransport" in json.dumps(s) for s in policy)


def test_the_customers_table_streams_its_outbox_to_the_publisher_like_the_credits_table(
    functions: dict[str, FunctionConfig], template: dict[str, Any]
) -> None:
    # Given the publisher's two stream mappings
    events = functions["event_publisher"].events
    credits, customers = events["Outbox"]["Properties"], events["CustomersOutbox"]["Properties"]
    # Then the customers table's reads its table's stream (new images) with the very same filter, order, isolation,
    # limits and failure bucket as the credits table's (so the one replay command serves both)
    assert customers["Stream"] == {"Fn::GetAtt": ["CustomersTable", "StreamArn"]}
    stream = template["Resources"]["CustomersTable"]["Properties"]["StreamSpecification"]
    assert stream == {"StreamViewType": "NEW_IMAGE"}
    assert {k: v for k, v in customers.items() if k != "Stream"} == {k: v for k, v in credits.items() if k != "Stream"}
    assert '"prefix": "OUTBOX#"' in customers["FilterCriteria"]["Filters"][0]["Pattern"]
