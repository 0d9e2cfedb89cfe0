"""The alarm check's window queries read an app's model's outputs through an index on
(app, model, time), and its verdicts through one on (app, model, event type, seq), not by scanning
every output or feedback event of the app and sorting them."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import Select, func, select

from visionloop.core import VisionLoop
from visionloop.services.monitoring.windows import MAX_FEEDBACK_EVENTS, _outputs_of, _verdicts_of
from visionloop.store.tables import FeedbackEvent, Output

SINCE = dt.datetime(2026, 1, 31, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize("since", [None, SINCE])
def test_sqlite_reads_a_models_window_through_the_outputs_index(core: VisionLoop, since: dt.datetime | None) -> None:
    if core.db.engine.dialect.name != "sqlite":
        pytest.skip("the plan is SQLite's; PostgreSQL's planner picks by its statistics")
    where = _outputs_of("app", 1, since)
    queries = [select(func.max(Output.created_at)).where(*where),
               select(Output.id, Output.digest).where(*where).order_by(Output.created_at, Output.id).limit(200),
               select(Output.id, Output.digest, Output.created_at).where(*where)
               .order_by(Output.created_at.desc(), Output.id.desc()).limit(100)]
    assert all("ix_outputs_app_model_created" in plan for plan in plans(core, queries))


@pytest.mark.parametrize("since", [None, SINCE])
def test_sqlite_reads_a_models_verdicts_through_the_feedback_index(core: VisionLoop,
                                                                   since: dt.datetime | None) -> None:
    if core.db.engine.dialect.name != "sqlite":
        pytest.skip("the plan is SQLite's; PostgreSQL's planner picks by its statistics")
    where = _verdicts_of("app", 1, since)
    queries = [select(func.max(FeedbackEvent.seq)).where(*where),
               select(FeedbackEvent.body, FeedbackEvent.created_at).where(*where)
               .order_by(FeedbackEvent.seq.desc()).limit(MAX_FEEDBACK_EVENTS)]
    assert all("ix_feedback_events_app_model_type_seq" in plan for plan in plans(core, queries))


def plans(core: VisionLoop, queries: list[Select[Any]]) -> list[str]:
    """SQLite's plan of each query, asserting that none sorts in a temporary b-tree."""
    out = []
    with core.db.engine.connect() as conn:
        for query in queries:
            compiled = query.compile(dialect=core.db.engine.dialect)
            params = tuple(compiled.params[k] for k in compiled.positiontup or ())
            plan = " | ".join(row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + str(compiled), params))
            assert "TEMP B-TREE" not in plan, plan
            out.append(plan)
    return out
