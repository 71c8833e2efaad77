"""The credits routes (``dynamodb_requests`` rows), and ``GET /credits`` after settled holds (``items_read``,
``read_units``)."""

from __future__ import annotations

import dataclasses

from devtools.bench import checks
from devtools.bench.counting import ReadTally
from devtools.bench.handlers import HandlerBench
from devtools.bench.rows import BenchError, Row


class ConsumptionBench(HandlerBench):
    """The credits routes: reading credits and the ledger, spending, admin grants."""

    MODULE = "consumption.handler"
    FUNCTION = "ConsumptionFunction"
    BASE_EVENT = "consumption/consume.json"
    GROUP = "AiTokens"
    CONSUME = "POST /credits/{offerGroup}/consume"

    def run(self, paid_user: str | None = None) -> None:
        user, group = "bench-consumer", {"offerGroup": self.GROUP}
        self._admin_grant(user, 1000)
        self._keyed_admin_grant("bench-granted", 500)
        self.reset_catalog_cache()
        self.measure(self.CONSUME, "cold catalog", user=user, path_parameters=group, body={"count": 1})
        first = self.measure(
            self.CONSUME,
            "warm catalog",
            budget=1,
            user=user,
            path_parameters=group,
            body={"count": 1},
            check=checks.consumed(998),
        )
        key = {"Idempotency-Key": "bench-consume-1"}
        keyed = self.measure(
            self.CONSUME,
            "Idempotency-Key, warm catalog",
            user=user,
            path_parameters=group,
            body={"count": 1},
            headers=key,
            check=checks.consumed(997),
        )
        entry_id = (keyed.body or {}).get("entryId")
        self.measure(
            self.CONSUME,
            "idempotent replay",
            user=user,
            path_parameters=group,
            body={"count": 1},
            headers=key,
            check=lambda body: checks.consumed(997)(body) or checks.same_entry(entry_id)(body),
        )
        self.measure(
            self.CONSUME, "not covered: 402", status=402, user=user, path_parameters=group, body={"count": 10**6}
        )
        self.measure("GET /credits", budget=1, user=user, check=checks.balances({self.GROUP: 997}))
        if paid_user is not None:
            self.measure(
                "GET /credits", "3 groups with lots of a paid bundle", budget=1, user=paid_user, check=checks.groups(3)
            )
        self.measure("GET /credits/{offerGroup}", user=user, path_parameters=group, check=checks.balance_of(997))
        self.measure("GET /credits/ledger", user=user, check=checks.entries(4, (first.body or {}).get("entryId")))
        self._compaction(user)
        self._settled_holds()

    def _admin_grant(self, user: str, tokens: int) -> None:
        body = {"offerGroup": self.GROUP, "tokens": tokens, "reason": "bench"}
        self.measure(
            "POST /admin/users/{userId}/grants",
            status=201,
            user="bench-admin",
            admin=True,
            path_parameters={"userId": user},
            body=body,
        )

    def _keyed_admin_grant(self, user: str, tokens: int) -> None:
        """An admin grant with an Idempotency-Key, and its retry with the same key: the retry answers the first
        grant's entry, and the user holds the tokens once (checked after the retry, not measured)."""
        from usercredits.adapters.dynamodb.credits import DynamoCreditsRepository

        route, target = "POST /admin/users/{userId}/grants", {"userId": user}
        body, key = (
            {"offerGroup": self.GROUP, "tokens": tokens, "reason": "bench"},
            {"Idempotency-Key": "bench-grant-1"},
        )
        first = self.measure(
            route,
            "Idempotency-Key",
            budget=3,
            status=201,
            user="bench-admin",
            admin=True,
            path_parameters=target,
            body=body,
            headers=key,
            check=checks.granted(tokens),
        )
        entry_id = (first.body or {}).get("entryId")
        replay = self.measure(
            route,
            "Idempotency-Key, idempotent replay",
            status=201,
            user="bench-admin",
            admin=True,
            path_parameters=target,
            body=body,
            headers=key,
            check=lambda answer: checks.granted(tokens)(answer) or checks.same_entry(entry_id)(answer),
        )
        state = DynamoCreditsRepository().group_state(user, self.GROUP)
        if replay.status == 201 and (state is None or state.balance != tokens):
            self.scenarios[-1] = dataclasses.replace(
                self.scenarios[-1],
                problem=f"balance {state and state.balance} after the replay, expected {tokens} (granted once)",
            )

    def _compaction(self, user: str) -> None:
        """The consume that takes the journal past its limit also moves its oldest movements to ledger items."""
        from usercredits.adapters.dynamodb.credits import JOURNAL_MAX
        from usercredits.adapters.dynamodb.credits_table import CreditGroupItem
        from usercredits.adapters.dynamodb.keys import group_sk, user_pk

        item = CreditGroupItem.get(user_pk(user), group_sk(self.GROUP), consistent_read=True)
        for _ in range(JOURNAL_MAX - len(item.journal or [])):
            self.setup_call(
                self.CONSUME, status=200, user=user, path_parameters={"offerGroup": self.GROUP}, body={"count": 1}
            )
        self.measure(
            self.CONSUME,
            "compacts the journal",
            user=user,
            path_parameters={"offerGroup": self.GROUP},
            body={"count": 1},
        )

    #: Hold/release pairs settled before the "GET /credits (after 1,000 settled holds)" row.
    SETTLED_HOLDS = 1_000

    def _settled_holds(self) -> None:
        """``GET /credits`` of a user with one open hold, measured after 0 and after ``SETTLED_HOLDS`` hold/release
        pairs: still one Query, reading the same items (a settled hold leaves the ``CREDIT#`` range). The pairs are
        made through the domain with the real repository (the handler's writes, without its per-request overhead)."""
        from usercredits.adapters.dynamodb.catalog import DynamoCatalogRepository
        from usercredits.adapters.dynamodb.credits import DynamoCreditsRepository
        from usercredits.domain import reservations
        from usercredits.kernel.clock import SystemClock

        user, label = "bench-holder", f"after {self.SETTLED_HOLDS:,} settled holds"
        credits, catalog, clock = DynamoCreditsRepository(), DynamoCatalogRepository(), SystemClock()
        grant = {"offerGroup": self.GROUP, "tokens": 100, "reason": "bench"}
        route, target = "POST /admin/users/{userId}/grants", {"userId": user}
        self.setup_call(route, status=201, user="bench-admin", admin=True, path_parameters=target, body=grant)

        def hold(count: int) -> str:
            return reservations.create_reservation(
                user,
                self.GROUP,
                count,
                expires_in_seconds=3600,
                idempotency_key=None,
                catalog=catalog,
                credits=credits,
                clock=clock,
            ).reservation_id

        hold(5)  # the open hold, read both times
        with self.counter.measure() as before, ReadTally().tally() as empty:
            result = self.call("GET /credits", user=user)
        if result.status != 200 or before.count != 1:
            raise BenchError(f"setup GET /credits answered {result.status} in {before.hooked}")
        for pair in range(self.SETTLED_HOLDS):
            reservations.release_reservation(user, hold(1), credits=credits, clock=clock)
            state = credits.group_state(user, self.GROUP) if pair % 25 == 24 else None
            if state is not None:  # holds and releases do not compact the journal; reads do (as GET /credits would)
                credits.compact_if_long(user, state)
        self.setup_call("GET /credits", status=200, user=user)  # leaves the journal below its compaction limit
        with ReadTally().tally() as full:
            self.measure("GET /credits", label, budget=1, user=user, check=checks.held(5))
        name = f"GET /credits ({label})"
        detail = (
            f"Query items read: {empty.items} after 0 settled holds, {full.items} after {self.SETTLED_HOLDS:,}; "
            f"read units {empty.units:g} / {full.units:g}"
        )
        self.extra_rows += [
            Row(name, "items_read", full.items, empty.items, detail),
            Row(name, "read_units", full.units, None, "ConsumedCapacity of the Query (the journal's length varies)"),
        ]
