"""The measure of request paths (``tests/helpers/request_paths.py``): the chain a reader follows, what counts as a
step of it, and what goes back. Real project files, whose imports are known, with calls given by hand."""

from __future__ import annotations

from tests.helpers.request_paths import RequestPath

HANDLER = "functions/consumption/handler.py"
SPENDING = "shared/usercredits/domain/spending.py"
RULES = "shared/usercredits/domain/credits.py"
REPOSITORY = "shared/usercredits/adapters/dynamodb/credits.py"
CATALOG = "shared/usercredits/adapters/dynamodb/catalog.py"


def _path(calls: list[tuple[str, str]]) -> RequestPath:
    path = RequestPath()
    for caller, callee in calls:
        for file in (caller, callee):
            if file not in path.followed:
                path.followed.append(file)
        path.calls.add((caller, callee))
    return path


def test_the_chain_is_the_longest_run_of_calls_from_the_handler_down() -> None:
    # Given a spend: the handler calls the use case, which consults its rules and calls two repositories (ports)
    path = _path([(HANDLER, SPENDING), (SPENDING, RULES), (SPENDING, REPOSITORY), (SPENDING, CATALOG)])
    # Then the chain is three files deep, and the request touched five
    assert len(path.chain) == 3
    assert path.chain[:2] == [HANDLER, SPENDING]
    assert len(path.followed) == 5
    assert path.back_and_forth == []


def test_a_call_through_a_port_is_a_step_and_a_call_back_up_is_not() -> None:
    # Given a repository (reached through a port: it imports nothing of the use case) that calls a rule module, and a
    # rule module that calls back into the use case that imports it (a function passed in)
    path = _path([(HANDLER, SPENDING), (SPENDING, REPOSITORY), (REPOSITORY, RULES), (RULES, SPENDING)])
    # Then the port call and the repository's call are steps; the call back up is not (no loop, no longer chain)
    assert path.chain == [HANDLER, SPENDING, REPOSITORY, RULES]
    assert path.back_and_forth == []
