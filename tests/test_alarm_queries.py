"""The alarm check's window queries read an app's model's outputs through an index on
(app, model, time), not by scanning every output of the app (or of the server) and sorting them."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from visionloop.core import VisionLoop
from visionloop.services.monitoring.windows import _outputs_of
from visionloop.store.tables import Output

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
    with core.db.engine.connect() as conn:
        for query in queries:
            compiled = query.compile(dialect=core.db.engine.dialect)
            params = tuple(compiled.params[k] for k in compiled.positiontup or ())
            plan = " | ".join(row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + str(compiled), params))
            assert "ix_outputs_app_model_created" in plan and "TEMP B-TREE" not in plan, plan
