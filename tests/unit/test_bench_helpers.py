"""The pure helpers of devtools.bench (budgets, the results file, Lambda env and HTTP API events) and of the modules
it shares with the dev server and tests/infrastructure (devtools.build_inspection, devtools.lambda_context)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from devtools.bench.handlers import http_event
from devtools.bench.imports import function_environment, import_ratio
from devtools.bench.rows import BenchError, Row, format_table, over_budget, write_results
from devtools.bench.throughput import percentile, split_work
from devtools.bench.webhook_events import (
    balances_after_return,
    dispute_object,
    intent_object,
    refunded_charge,
    stripe_event_payload,
    webhook_request,
)
from devtools.build_inspection import (
    EM_AARCH64,
    EM_X86_64,
    foreign_binaries,
    installed_versions,
    missing_pins,
    parse_pins,
    resolve_value,
    stale_files,
)
from devtools.lambda_context import LambdaContext

from tests.conftest import load_event
from usercredits.adapters.stripe.payment_mapping import intent_state
from usercredits.adapters.stripe.webhooks import charge_report, verify_webhook
from usercredits.domain.models import DisputeStatus


def _elf(path: Path, machine: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x7fELF" + bytes(14) + machine.to_bytes(2, "little") + bytes(12))


def test_import_ratio_counts_both_imports_above_the_bare_interpreter() -> None:
    # Given a handler at 260 ms, boto3 at 140 ms and a bare interpreter at 20 ms
    # Then the handler costs two boto3 imports
    assert import_ratio(260.0, 140.0, 20.0) == pytest.approx(2.0)


def test_import_ratio_without_a_baseline_refuses_to_divide() -> None:
    with pytest.raises(BenchError):
        import_ratio(100.0, 5.0, 5.0)


def test_row_over_its_budget_is_reported_over() -> None:
    # Given rows under, at, over and without a budget
    rows = [
        Row("GET /offers (warm)", "dynamodb_requests", 1, 1),
        Row("ordering", "import_ratio", 2.04, 2.0),
        Row("consumption", "import_ratio", 1.2, 1.5),
        Row("GET /orders", "dynamodb_requests", 7, None),
    ]
    # Then only the one above its budget is over, and a row without a budget never is
    assert [row.status for row in rows] == ["OK", "OVER", "OK", "-"]
    assert over_budget(rows) == [rows[1]]


def test_format_table_prints_value_budget_and_status() -> None:
    # Given two rows
    table = format_table([Row("ordering", "import_ratio", 2.04, 2.0, "median of 7"), Row("x", "import_ms", 250.5)])
    lines = table.splitlines()
    # Then a header, a rule and one line per row, with the status and the detail
    assert lines[0].split() == ["name", "metric", "value", "budget", "status", "detail"]
    assert lines[2].split() == ["ordering", "import_ratio", "2.04", "2", "OVER", "median", "of", "7"]
    assert lines[3].split() == ["x", "import_ms", "250.50", "-", "-"]


def test_write_results_writes_the_four_documented_keys(tmp_path: Path) -> None:
    # Given rows with a printed-only detail
    path = tmp_path / "bench-results.json"
    write_results([Row("GET /offers (warm)", "dynamodb_requests", 1, 1, "Query")], path)
    # Then the file is a JSON list of name/metric/value/budget rows
    assert json.loads(path.read_text()) == [
        {"name": "GET /offers (warm)", "metric": "dynamodb_requests", "value": 1, "budget": 1}
    ]


def test_parse_pins_reads_pinned_lines_only() -> None:
    text = "# generated\nboto3==1.44.5\nPyNamoDB==6.1.0  # comment\nfoo[bar]==1.0 ; python_version>'3'\nloose>=1\n"
    assert parse_pins(text) == {"boto3": "1.44.5", "pynamodb": "6.1.0", "foo": "1.0"}


def test_missing_pins_lists_absent_and_other_versions(tmp_path: Path) -> None:
    # Given a layer with boto3 at another version and no stripe
    (tmp_path / "boto3-1.40.0.dist-info").mkdir()
    (tmp_path / "aws_lambda_powertools-3.37.0.dist-info").mkdir()
    installed = installed_versions(tmp_path)
    # Then both are missing, the matching pin is not
    pins = {"boto3": "1.44.5", "stripe": "16.1.0", "aws_lambda_powertools": "3.37.0"}
    assert missing_pins(pins, installed) == {"boto3": "1.44.5", "stripe": "16.1.0"}


def test_foreign_binaries_finds_extensions_of_another_architecture(tmp_path: Path) -> None:
    # Given an arm64 and an x86_64 extension and a text file named like a library
    _elf(tmp_path / "pydantic_core" / "_pydantic_core.cpython-313-aarch64-linux-gnu.so", EM_AARCH64)
    _elf(tmp_path / "charset_normalizer" / "md.cpython-313-x86_64-linux-gnu.so", EM_X86_64)
    (tmp_path / "notes.so.txt").write_text("not a library")
    # Then on x86_64 the arm64 one is foreign, and on arm64 the x86_64 one is
    assert foreign_binaries(tmp_path, "x86_64") == ["pydantic_core/_pydantic_core.cpython-313-aarch64-linux-gnu.so"]
    assert foreign_binaries(tmp_path, "aarch64") == ["charset_normalizer/md.cpython-313-x86_64-linux-gnu.so"]


def test_stale_files_lists_missing_and_changed_sources(tmp_path: Path) -> None:
    # Given sources and a build where one file is current, one changed and one missing (caches do not count)
    source, built = tmp_path / "src", tmp_path / "build"
    for folder in (source / "pkg", built / "pkg", source / "__pycache__"):
        folder.mkdir(parents=True)
    (source / "pkg" / "same.py").write_text("x = 1")
    (built / "pkg" / "same.py").write_text("x = 1")
    (source / "pkg" / "changed.py").write_text("x = 2")
    (built / "pkg" / "changed.py").write_text("x = 1")
    (source / "new.py").write_text("")
    (source / "__pycache__" / "cached.py").write_text("")
    # Then the changed and the missing ones are stale, as paths relative to the sources
    assert stale_files(source, built) == ["new.py", "pkg/changed.py"]


def test_resolve_value_needs_a_placeholder_for_other_intrinsics() -> None:
    template = {"Parameters": {"Rate": {"Type": "String", "Default": "rate(15 minutes)"}}}
    assert resolve_value({"Ref": "Rate"}, template, stand_in="fake") == "rate(15 minutes)"
    assert resolve_value({"Ref": "Bus"}, template, stand_in="fake") == "user-credits-bus-fake"
    assert resolve_value(512, template, stand_in="fake") == "512"
    assert resolve_value({"Fn::GetAtt": "Bus.Arn"}, template, stand_in="b", placeholder="p") == "p"
    with pytest.raises(ValueError, match="cannot resolve"):
        resolve_value({"Fn::GetAtt": "Bus.Arn"}, template, stand_in="fake")


def test_lambda_context_counts_down_to_its_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a context made at t=100 s for a function with a 15 s timeout
    now = [100.0]
    monkeypatch.setattr("devtools.lambda_context.time.monotonic", lambda: now[0])
    context = LambdaContext("OrderingFunction", memory_limit_in_mb=512, timeout_seconds=15)
    # Then the time left shrinks as time passes, and stops at zero
    assert context.get_remaining_time_in_millis() == 15_000
    now[0] = 112.5
    assert context.get_remaining_time_in_millis() == 2_500
    now[0] = 200.0
    assert context.get_remaining_time_in_millis() == 0
    # and it has what Powertools' logger reads
    assert context.invoked_function_arn == "arn:aws:lambda:us-east-1:123456789012:function:OrderingFunction"
    assert context.log_group_name == "/aws/lambda/OrderingFunction"
    assert (context.function_version, context.memory_limit_in_mb) == ("$LATEST", 512)
    assert context.aws_request_id != LambdaContext("OrderingFunction").aws_request_id


def test_function_environment_merges_globals_and_resolves_refs() -> None:
    # Given a template with global and per-function variables referring to a parameter and a resource
    template = {
        "Parameters": {"PaymentProvider": {"Type": "String", "Default": "stripe"}},
        "Globals": {
            "Function": {"MemorySize": 512, "Environment": {"Variables": {"CREDITS_TABLE_NAME": {"Ref": "T"}}}}
        },
        "Resources": {
            "OrderingFunction": {
                "Type": "AWS::Serverless::Function",
                "Properties": {
                    "Handler": "ordering.handler.lambda_handler",
                    "Environment": {"Variables": {"PAYMENT_PROVIDER": {"Ref": "PaymentProvider"}, "X": "1"}},
                },
            }
        },
    }
    # When the function's environment is built
    env = function_environment(template, "OrderingFunction")
    # Then parameters take their default, resources a stand-in name, and the runtime's variables are there
    assert env["PAYMENT_PROVIDER"] == "stripe"
    assert env["CREDITS_TABLE_NAME"] == "user-credits-t-bench"
    assert env["X"] == "1"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "OrderingFunction"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "512"
    assert env["_HANDLER"] == "ordering.handler.lambda_handler"


def test_http_event_builds_the_route_body_and_caller_on_the_sample_event() -> None:
    # Given the sample GET /offers event
    base = load_event("ordering/list_offers.json")
    # When it becomes POST /orders/{orderId}/payment by bob with a body and an Idempotency-Key
    event = http_event(
        base,
        "POST",
        "/orders/{orderId}/payment",
        user="bob",
        path_parameters={"orderId": "01ABC"},
        body={"a": 1},
        headers={"Idempotency-Key": "k1"},
    )
    # Then path, route key, parameters, body, headers and claims are those of the new request
    assert event["rawPath"] == "/orders/01ABC/payment"
    assert event["routeKey"] == event["requestContext"]["routeKey"] == "POST /orders/{orderId}/payment"
    assert event["requestContext"]["http"]["method"] == "POST"
    assert event["requestContext"]["http"]["path"] == "/orders/01ABC/payment"
    assert event["pathParameters"] == {"orderId": "01ABC"}
    assert "queryStringParameters" not in event
    assert json.loads(event["body"]) == {"a": 1}
    assert event["headers"]["idempotency-key"] == "k1"
    assert event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] == "bob"
    # and the sample itself is unchanged
    assert base["rawPath"] == "/offers"
    assert base["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] == "alice"


def test_http_event_with_admin_gives_the_caller_the_admin_scope() -> None:
    base = load_event("consumption/consume.json")
    event = http_event(base, "POST", "/admin/users/{userId}/grants", user="ops", path_parameters={"userId": "bob"})
    admin = http_event(
        base, "POST", "/admin/users/{userId}/grants", user="ops", path_parameters={"userId": "bob"}, admin=True
    )
    assert event["requestContext"]["authorizer"]["jwt"]["claims"]["scope"] == "credits/user"
    assert admin["requestContext"]["authorizer"]["jwt"]["claims"]["scope"].split() == ["credits/user", "credits/admin"]
    assert admin["requestContext"]["authorizer"]["jwt"]["scopes"] == ["credits/user", "credits/admin"]


def test_split_work_shares_the_operations_as_evenly_as_possible() -> None:
    assert split_work(500, 8) == [63, 63, 63, 63, 62, 62, 62, 62]
    assert split_work(500, 1) == [500]
    assert sum(split_work(7, 3)) == 7


def test_percentile_is_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.95) == 95.0
    assert percentile([3.0], 0.95) == 3.0
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)


ENTERPRISE_M = {"amount": 9900, "currency": "usd"}


def _verified(kind: str, obj: dict[str, Any], secret: str = "whsec_test") -> dict[str, Any]:
    """What the webhook handler reads from the bench's request: the event, once its signature is verified."""
    payload = stripe_event_payload("evt_1", kind, obj)
    request = webhook_request(payload, secret)
    assert request["requestContext"]["http"]["method"] == "POST"
    assert request["isBase64Encoded"] is False
    return verify_webhook(request["body"].encode(), request["headers"]["stripe-signature"], secret)


def test_a_signed_refund_event_is_read_as_a_cumulative_refund_with_the_order_metadata() -> None:
    # Given the bench's charge.refunded for 1000 of 9900, with the intent's metadata copied onto the charge
    charge = refunded_charge("pi_1", ENTERPRISE_M, 1000, {"orderId": "o1", "userId": "bob"})
    # When it goes through the Function URL request and the signature check
    event = _verified("charge.refunded", charge)
    # Then it is the refund event, and the adapter reads what the bench means
    assert (event["id"], event["type"]) == ("evt_1", "charge.refunded")
    report = charge_report("charge.refunded", event["data"]["object"])
    assert report is not None
    assert (report.payment_intent_id, report.currency, report.refunded_amount) == ("pi_1", "usd", 1000)
    assert report.metadata == {"orderId": "o1", "userId": "bob"}
    assert charge["refunded"] is False
    assert refunded_charge("pi_1", ENTERPRISE_M, 9900, {})["refunded"] is True


def test_a_dispute_carries_no_metadata_and_opens_then_is_won() -> None:
    opened = _verified("charge.dispute.created", dispute_object("pi_1", 9900, "usd", "needs_response"))
    won = _verified("charge.dispute.closed", dispute_object("pi_1", 9900, "usd", "won"))
    created = charge_report("charge.dispute.created", opened["data"]["object"])
    closed = charge_report("charge.dispute.closed", won["data"]["object"])
    assert created is not None and closed is not None
    assert (created.dispute_amount, created.dispute_status, created.metadata) == (9900, DisputeStatus.OPEN, {})
    assert (closed.payment_intent_id, closed.dispute_status) == ("pi_1", DisputeStatus.WON)


def test_intent_object_receives_the_total_only_when_it_succeeded() -> None:
    succeeded = intent_state(intent_object("pi_1", ENTERPRISE_M, {"orderId": "o1", "userId": "bob"}))
    canceled = intent_state(intent_object("pi_1", ENTERPRISE_M, {}, status="canceled"))
    assert (succeeded.status, succeeded.amount_received, succeeded.currency) == ("succeeded", 9900, "usd")
    assert succeeded.metadata == {"orderId": "o1", "userId": "bob"}
    assert (canceled.status, canceled.amount, canceled.amount_received) == ("canceled", 9900, 0)


def test_balances_after_return_takes_the_rounded_up_share_of_each_lot() -> None:
    # Given EnterpriseM's lots (150 Enterprise, 300 AiTokens, 1 back-link) and 1000 of its 9900 back
    granted = {"Enterprise": 150, "AiTokens": 300, "VIP_BACK_LINK": 1}
    # Then each lot gives ceil(tokens x 1000 / 9900): 16, 31 (README's example) and 1
    assert balances_after_return(granted, 1000, 9900) == {"Enterprise": 134, "AiTokens": 269, "VIP_BACK_LINK": 0}
    # and all of it back takes everything, nothing back takes nothing
    assert balances_after_return(granted, 9900, 9900) == {"Enterprise": 0, "AiTokens": 0, "VIP_BACK_LINK": 0}
    assert balances_after_return(granted, 0, 9900) == granted
