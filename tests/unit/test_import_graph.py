"""The import-circle measure of the README's architecture section (``python -m devtools.import_graph``)."""

from __future__ import annotations

from devtools.import_graph import circles, import_graph, project_modules


def test_circles_are_found_whatever_their_length() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"f"}, "f": {"e"}, "g": set()}
    assert circles(graph) == [["a", "b", "c"], ["e", "f"]]


def test_the_project_has_no_import_circle() -> None:
    graph = import_graph()
    assert (
        "usercredits.domain.spending" in graph
        and "consumption.handler" in graph
        and "devtools.devserver.server" in graph
    )
    assert "usercredits.kernel.models" in graph["usercredits.domain.models"]
    assert circles(graph) == []


def test_lazy_imports_count_as_imports() -> None:
    # The webhook handler imports the subscriptions half inside a function (cold start); it is still an import.
    assert "usercredits.subscriptions.ports" in import_graph()["stripe_webhook.handler"]
    assert len(project_modules()) > 100
