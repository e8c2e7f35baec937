"""The viewer's JSON API: a route name and its query string in, a JSON-ready answer out (no HTTP here).

Every run is named by its id in the catalog (the path it was found at); nothing here builds a path
from what a request says, so a request can only reach the files `llmbench view` was given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from llmbench.errors import LLMBenchError
from llmbench.view import diffing, queries
from llmbench.view.run_index import Catalog, UnknownRun


class BadRequest(LLMBenchError):
    """A request the API cannot answer as asked (a missing parameter, a sample that does not exist)."""


Query = Mapping[str, str]


class ViewApi:
    """Answers the pages' questions from a catalog of results files."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.routes: dict[str, Callable[[Query], Any]] = {
            "runs": self.runs,
            "study": self.study,
            "run": self.run,
            "samples": self.samples,
            "sample": self.sample,
            "diff": self.diff,
            "diff_rows": self.diff_rows,
        }

    def answer(self, route: str, query: Query) -> Any:
        handler = self.routes.get(route)
        if handler is None:
            raise UnknownRun(f"no API route {route!r}")
        return handler(query)

    def runs(self, query: Query) -> dict[str, Any]:
        """The run list, newest first, one page; only the page's runs are read past their heads."""
        self.catalog.rescan()
        needle = (query.get("q") or "").casefold()
        rows = [queries.header_row(h) for h in self.catalog.headers()]
        if needle:
            rows = [
                r
                for r in rows
                if needle
                in " ".join(
                    str(r[k] or "") for k in ("file", "model", "suite", "backend", "variant")
                ).casefold()
            ]
        page, size = queries.page_bounds(query)
        pages = max(1, -(-len(rows) // size))
        page = min(page, pages)
        shown = rows[(page - 1) * size : page * size]
        for i, row in enumerate(shown):
            if row["error"] is None:
                try:
                    shown[i] = queries.summary_row(row, self.catalog.summary(row["id"]))
                except LLMBenchError as exc:
                    shown[i] = row | {"error": str(exc)}
        return {
            "total": len(rows),
            "page": page,
            "pages": pages,
            "size": size,
            "rows": shown,
            "perf_columns": queries.perf_columns(),
            "study": bool(self.catalog.study_dirs),
        }

    def study(self, query: Query) -> dict[str, Any] | None:
        """The study leaderboard when a study folder is viewed (None otherwise)."""
        found = self.catalog.study_runs()
        if found is None:
            return None
        from llmbench.view.study_page import study_board  # the study package only where a study is viewed

        folder, runs = found
        return study_board(folder, list(runs.values()), {run.run_id: i for i, run in runs.items()})

    def run(self, query: Query) -> dict[str, Any]:
        run_id = _required(query, "id")
        return queries.run_detail(run_id, self.catalog.run(run_id))

    def samples(self, query: Query) -> dict[str, Any]:
        run = self.catalog.run(_required(query, "id"))
        page, size = queries.page_bounds(query)
        return queries.samples_page(run, queries.SampleFilter.from_query(query), page, size)

    def sample(self, query: Query) -> dict[str, Any]:
        run_id = _required(query, "id")
        run = self.catalog.run(run_id)
        key = _index(query, "key", len(run.samples))
        return queries.sample_detail(run_id, run, key)

    def diff(self, query: Query) -> dict[str, Any]:
        a_id, b_id = _required(query, "a"), _required(query, "b")
        a, b = self.catalog.run(a_id), self.catalog.run(b_id)
        return {
            "a": queries.run_detail(a_id, a) | {"tasks": None},
            "b": queries.run_detail(b_id, b) | {"tasks": None},
        } | diffing.summary(a, b)

    def diff_rows(self, query: Query) -> dict[str, Any]:
        a, b = self.catalog.run(_required(query, "a")), self.catalog.run(_required(query, "b"))
        page, size = queries.page_bounds({**query, "size": query.get("size") or "20"})
        return diffing.rows(a, b, query.get("kind") or None, page, size)


def _required(query: Query, name: str) -> str:
    value = query.get(name)
    if not value:
        raise BadRequest(f"the parameter {name!r} is missing")
    return value


def _index(query: Query, name: str, count: int) -> int:
    try:
        value = int(_required(query, name))
    except ValueError:
        raise BadRequest(f"the parameter {name!r} is not a number") from None
    if not 0 <= value < count:
        raise UnknownRun(f"no sample {value} in this run ({count} samples)")
    return value
