"""``visionloop feedback export|erase|prune``: the operators' side of the feedback log."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from visionloop.config import Settings

if TYPE_CHECKING:  # the services load when a command runs, not for --help
    from visionloop.core import VisionLoop


def days(text: str) -> int:
    """A --days value: whole days from 0 (keep forever) to 100 years."""
    value = int(text)
    if not 0 <= value <= 36_500:
        raise argparse.ArgumentTypeError(f"must be from 0 to 36500 days, got {value}")
    return value


def _export(core: VisionLoop, args: argparse.Namespace) -> int:
    from visionloop.services.feedback import FeedbackFilter
    from visionloop.services.feedback.export import FORMATS, ExportError, write_jsonl, write_parquet
    from visionloop.services.feedback.log import parse_time

    if args.format not in FORMATS:
        raise ExportError(f"--format must be one of {', '.join(FORMATS)}, got {args.format!r}")
    app_id = core.apps.get_app(args.app).id if args.app else None
    flt = FeedbackFilter(end_user_id=args.end_user_id or None, created_after=parse_time(args.since, "--since"),
                         created_before=parse_time(args.until, "--until"))
    records = core.feedback.log.iter_records(app_id, flt)
    if args.format == "parquet":
        if not args.output or args.output == "-":
            raise ExportError("Parquet is binary: give --output FILE")
        n = write_parquet(records, Path(args.output))
    elif args.output and args.output != "-":
        with open(args.output, "w", encoding="utf-8") as fp:
            n = write_jsonl(records, fp)
    else:
        n = write_jsonl(records, sys.stdout)
    print(f"exported {n} feedback events", file=sys.stderr)
    return 0


def _erase(core: VisionLoop, args: argparse.Namespace) -> int:
    erasure = core.feedback.log.erase_end_user(core.apps.get_app(args.app).id, args.end_user_id)
    print(f"erased {erasure.count} feedback events of end user {args.end_user_id!r} in app {args.app!r}")
    return 0


def _prune(core: VisionLoop, args: argparse.Namespace) -> int:
    days = core.settings.feedback_retention_days if args.days is None else args.days
    if days <= 0:
        print("feedback retention is 0 (keep forever): nothing pruned; set VISIONLOOP_FEEDBACK_RETENTION_DAYS "
              "or pass --days")
        return 0
    erased = core.feedback.log.prune(days=days)
    total = sum(e.count for e in erased)
    print(f"pruned {total} feedback events older than {days} days from {len(erased)} apps")
    return 0


def command(settings_of: Callable[[argparse.Namespace], Settings]) -> Callable[[argparse.Namespace], int]:
    def cmd_feedback(args: argparse.Namespace) -> int:
        from visionloop.core import VisionLoop
        from visionloop.services.feedback.export import ExportError

        with VisionLoop(settings_of(args)) as core:
            try:
                return {"export": _export, "erase": _erase, "prune": _prune}[args.action](core, args)
            except ExportError as exc:
                print(f"visionloop: {exc}", file=sys.stderr)
                return 2

    return cmd_feedback


def add_parser(sub: Any, common: argparse.ArgumentParser,
               settings_of: Callable[[argparse.Namespace], Settings]) -> None:
    fb = sub.add_parser("feedback", parents=[common], help="export, erase or prune the feedback log",
                        description="The feedback log is append-only; erasure per end user and retention "
                                    "pruning are the only ways events are deleted.")
    fb_sub = fb.add_subparsers(dest="action", required=True)
    ex = fb_sub.add_parser("export", parents=[common], help="write feedback events as JSON Lines or Parquet")
    ex.add_argument("--app", help="only this app's feedback (default: every app)")
    ex.add_argument("--format", default="jsonl", help="jsonl (default) or parquet (needs pyarrow)")
    ex.add_argument("--output", help="file to write (default: stdout, jsonl only)")
    ex.add_argument("--end-user-id", help="only this end user's feedback")
    ex.add_argument("--since", help="only events at or after this ISO 8601 time")
    ex.add_argument("--until", help="only events before this ISO 8601 time")
    er = fb_sub.add_parser("erase", parents=[common], help="erase all feedback of one end user of an app",
                           description="Privacy erasure: deletes every feedback event of the end user; "
                                       "labels derived from feedback are rebuilt.")
    er.add_argument("--app", required=True, help="the app")
    er.add_argument("--end-user-id", required=True, help="the end user whose feedback is erased")
    pr = fb_sub.add_parser("prune", parents=[common], help="delete feedback older than the retention",
                           description="Deletes feedback older than VISIONLOOP_FEEDBACK_RETENTION_DAYS "
                                       "(0 = keep forever). Run it daily, e.g. from cron.")
    pr.add_argument("--days", type=days, help="override the retention setting for this run")
    fb.set_defaults(func=command(settings_of))
