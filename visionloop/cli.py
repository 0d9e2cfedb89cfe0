"""The ``visionloop`` command: serve the API and administer apps and keys.

Model runtimes and the services load only when a command needs them (``_core``), so that
``--help``, a typo or ``settings`` answer at once.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import make_url
from sqlalchemy.exc import SQLAlchemyError

from visionloop import cli_feedback, errors, status
from visionloop.config import SETTINGS, Settings, SettingsError, load_settings
from visionloop.http.threads import GIL_SWITCH_SECONDS
from visionloop.services.apps import SCOPES
from visionloop.store.db import sqlite_file
from visionloop.store.tables import utcnow

if TYPE_CHECKING:
    from visionloop.core import VisionLoop


def _settings(args: argparse.Namespace, *, create: bool = False) -> Settings:
    """The settings a command runs with. Only ``serve`` and ``apps create`` may make a new SQLite
    database; the others work on what those made, so a mistyped --data-dir is refused instead of
    answered from a new, empty store (which it also left behind)."""
    settings = load_settings({"data_dir": args.data_dir, "database_url": args.database_url})
    path = sqlite_file(settings.db_url)
    if not create and path is not None and not path.exists():
        raise SettingsError(f"no visionloop database at {path}: check --data-dir (or VISIONLOOP_DATA_DIR, "
                            "--database-url), or make one with 'visionloop apps create' or 'visionloop serve'")
    return settings


def _core(args: argparse.Namespace, *, create: bool = False) -> VisionLoop:
    """The services and models a command works with, loaded only now (they take seconds)."""
    from visionloop.core import VisionLoop

    return VisionLoop(_settings(args, create=create))


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from visionloop.http.app import create_app

    sys.setswitchinterval(GIL_SWITCH_SECONDS)
    core = _core(args, create=True)
    settings = core.settings
    created = core.bootstrap()
    if created:
        info, secret = created
        print(f"Created app '{info.app_id}' and an API key with every scope (shown only this once):\n\n"
              f"    {secret}\n\nUse it as:  curl -H 'Authorization: Key {secret}' "
              f"http://{args.host}:{args.port}/v2/inputs\n", flush=True)
    core.start_worker()
    print(f"visionloop serving on http://{args.host}:{args.port}  (data: {settings.data_dir})", flush=True)
    with core:
        uvicorn.run(create_app(settings, core), host=args.host, port=args.port, log_level=args.log_level,
                    access_log=args.access_log)
    return 0


def cmd_apps(args: argparse.Namespace) -> int:
    with _core(args, create=args.action == "create") as core:
        if args.action == "create":
            app = core.apps.create_app(args.app_id, args.name)
            print(f"created app {app.id}")
        else:
            apps = core.apps.list_apps()
            print("APP\tNAME\tCREATED (UTC)")
            for app in apps:
                print(f"{app.id}\t{app.name}\t{app.created_at:%Y-%m-%d %H:%M}")
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    with _core(args) as core:
        if args.action == "create":
            scopes = args.scopes.split(",") if args.scopes is not None else SCOPES  # "" is no scope, not all
            info, secret = core.apps.create_key(args.app, scopes, description=args.description or "",
                                                monthly_limit=args.monthly_limit)
            print(f"key id {info.id} for app {info.app_id}, scopes {','.join(info.scopes)} "
                  "(the key is shown only this once):", file=sys.stderr)
            print(secret)
        elif args.action == "list":
            keys = core.apps.list_keys(core.apps.get_app(args.app).id if args.app else None)
            print("KEY ID\tAPP\tSTATE\tSCOPES\tDESCRIPTION")
            for k in keys:
                state = "revoked" if k.revoked else "active"
                print(f"{k.id}\t{k.app_id}\t{state}\t{','.join(k.scopes)}\t{k.description}")
        else:
            core.apps.revoke_key(args.key_id)
            print(f"revoked key {args.key_id}")
    return 0


def cmd_learn(args: argparse.Namespace) -> int:
    with _core(args) as core:
        view = core.models.get(core.apps.get_app(args.app).id, args.model)
        print(f"training a new version of {view.model.name} for app {args.app} ...", flush=True)
        version = core.learning.request(args.app, args.model, reliability=not args.no_reliability,
                                        progress=lambda msg: print(f"  {msg}", flush=True))
        params = version.params or {}
        print(f"version {version.id}: status {version.status_code} "
              f"{status.DESCRIPTIONS.get(version.status_code, '')}")
        if "decision" in params:
            print(f"  {params['decision']}")
        if "error" in params:
            print(f"  {params['error']}")
        return 0 if version.status_code == status.MODEL_TRAINED else 1


def cmd_evaluate(args: argparse.Namespace) -> int:
    with _core(args) as core:
        live, page = core.learning.report(core.apps.get_app(args.app).id, args.model, args.version)
        if args.report:  # first, so that a path it cannot write fails before anything is printed
            Path(args.report).write_text(page)
        if args.json:
            print(json.dumps({k: v for k, v in live.items() if k != "confusion"}, indent=1))
        else:
            from visionloop.services.training.report import metrics_table

            print(metrics_table(live))
        if args.report:
            print(f"report written to {args.report}", file=sys.stderr)
    return 0


def cmd_outputs(args: argparse.Namespace) -> int:
    with _core(args) as core:
        days = core.settings.output_retention_days if args.days is None else args.days
        if days <= 0:
            print("output retention is 0 (keep forever): nothing pruned; set VISIONLOOP_OUTPUT_RETENTION_DAYS "
                  "or pass --days")
            return 0
        gone = core.predict.prune(utcnow() - dt.timedelta(days=days))
        print(f"pruned {gone} outputs older than {days} days (outputs with feedback are kept)")
        return 0


def cmd_vectors(args: argparse.Namespace) -> int:
    """Fill pgvector's column from the stored embeddings (what a pgvector server does when it starts),
    then replace a full-precision graph of an install from before by the half-precision one."""
    from visionloop.core import CopyProgress
    from visionloop.inference.backbone import EMBEDDING_DIM
    from visionloop.services.predict import EMBEDDING_SPACE
    from visionloop.store.db import Database
    from visionloop.store.migrate import upgrade
    from visionloop.store.pg_vectors import PgVectorStore

    db = Database(_settings(args).db_url)
    try:
        upgrade(db.engine)
        store = PgVectorStore(db, EMBEDDING_SPACE, EMBEDDING_DIM)
        try:
            copied = store.prepare(CopyProgress("embeddings into pgvector"))
            replaced = store.adopt_half_precision(CopyProgress("the half-precision graph (table blocks)", "building"))
        finally:
            store.close()
    finally:
        db.dispose()
    if replaced:
        print("searches walk the half-precision graph now; the full-precision one is dropped")
    print(f"pgvector holds every stored embedding ({copied} copied now); serve with VISIONLOOP_VECTOR_STORE=pgvector")
    return 0


def cmd_blobs(args: argparse.Namespace) -> int:
    """Copy DATA_DIR/blobs into the S3 store of VISIONLOOP_BLOB_URL, or sweep the configured store."""
    from visionloop.core import CopyProgress

    if args.action == "sweep":
        core = _core(args)
        try:
            deleted, kept = core.predict.collector.sweep(args.older_than_hours * 3600,
                                                         CopyProgress("blobs", "sweeping"))
        finally:
            core.close()
        print(f"deleted {deleted} blobs no row refers to; {kept} kept")
        return 0
    from visionloop.store.blobs import FileBlobStore, copy_blobs
    from visionloop.store.s3_blobs import S3BlobStore

    settings = _settings(args)
    if not settings.blob_url:
        raise SettingsError("visionloop blobs migrate copies into VISIONLOOP_BLOB_URL=s3://bucket/prefix: set it")
    folder = settings.data_dir / "blobs"
    if not folder.is_dir():
        raise SettingsError(f"no blob folder at {folder}: check --data-dir (or VISIONLOOP_DATA_DIR)")
    copied, present = copy_blobs(FileBlobStore(folder), S3BlobStore(settings.blob_url), CopyProgress("blobs into S3"))
    print(f"copied {copied} blobs to {settings.blob_url} ({present} were there already); serve with "
          "VISIONLOOP_BLOB_STORE=s3")
    return 0


def cmd_embeddings(args: argparse.Namespace) -> int:
    """Delete the stored embeddings nothing needs any more (visionloop/services/embedding_gc.py)."""
    from visionloop.core import CopyProgress

    core = _core(args)
    try:
        deleted, kept = core.embeddings.sweep(CopyProgress("embeddings", "sweeping"))
    finally:
        core.close()
    print(f"deleted the embeddings of {deleted} images nothing needs; {kept} kept")
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    """Every setting with the value in effect for these flags and this environment, and where it came from."""
    flags = {"data_dir": args.data_dir, "database_url": args.database_url}
    settings = load_settings(flags)
    for s in SETTINGS:
        value = getattr(settings, s.name)
        if s.name == "database_url":
            value = make_url(settings.db_url).render_as_string(hide_password=True)
        elif isinstance(value, tuple):
            value = ",".join(value)
        elif s.name in ("alarm_webhook_secret", "metrics_token") and value:
            value = "(set, not shown)"
        source = ("--" + s.name.replace("_", "-") if flags.get(s.name) is not None
                  else "environment" if s.env in os.environ else "default")
        print(f"{s.env}={value}\t({source}; default {s.default!r})\n    {s.help}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="visionloop",
        description="Self-hosted visual recognition API speaking the Clarifai v2 wire format, whose models "
                    "learn from feedback. Every command takes --data-dir and --database-url (or the "
                    "VISIONLOOP_DATA_DIR / VISIONLOOP_DATABASE_URL environment variables).")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", help="folder for the database, blobs and indexes (default ./data)")
    common.add_argument("--database-url", help="SQLAlchemy URL, e.g. postgresql+psycopg://u:p@host/db "
                                               "(default: SQLite in the data dir)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", parents=[common], help="run the API server",
                           description="Run the API server. On a first start with no API key, creates the "
                                       "app 'main' and prints one key.")
    serve.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    serve.add_argument("--access-log", action="store_true", help="log every request line")
    serve.set_defaults(func=cmd_serve)

    apps = sub.add_parser("apps", parents=[common], help="create or list apps",
                          description="Apps own inputs, concepts, models and feedback; keys belong to one app.")
    apps_sub = apps.add_subparsers(dest="action", required=True)
    create = apps_sub.add_parser("create", parents=[common], help="create an app")
    create.add_argument("app_id", help="the app id (letters, digits, _ . : -)")
    create.add_argument("--name", help="a readable name")
    apps_sub.add_parser("list", parents=[common], help="list apps")
    apps.set_defaults(func=cmd_apps)

    keys = sub.add_parser("keys", parents=[common], help="create, list or revoke API keys",
                          description="API keys are shown once at creation and stored only as hashes.")
    keys_sub = keys.add_subparsers(dest="action", required=True)
    kc = keys_sub.add_parser("create", parents=[common], help="create a key and print it once")
    kc.add_argument("--app", required=True, help="the app the key belongs to")
    kc.add_argument("--scopes", help=f"comma-separated scopes (default all: {','.join(SCOPES)})")
    kc.add_argument("--description", help="a note to recognise the key by")
    kc.add_argument("--monthly-limit", type=int, help="most billable operations per month for this key")
    kl = keys_sub.add_parser("list", parents=[common], help="list keys (ids, never secrets)")
    kl.add_argument("--app", help="only this app's keys")
    kr = keys_sub.add_parser("revoke", parents=[common], help="revoke a key at once")
    kr.add_argument("key_id", help="the key id shown by 'keys list'")
    keys.set_defaults(func=cmd_keys)

    cli_feedback.add_parser(sub, common, _settings)

    learn = sub.add_parser("learn", parents=[common], help="train a new model version from feedback now",
                           description="Aggregate the app's feedback and annotations into labels, train a new "
                                       "version, and promote it if held-out feedback says it is not worse.")
    learn.add_argument("--app", required=True, help="the app whose feedback to learn from")
    learn.add_argument("--model", default="general-v1.3", help="model id or name (default general-v1.3)")
    learn.add_argument("--no-reliability", action="store_true",
                       help="count every end user's votes equally (for comparison)")
    learn.set_defaults(func=cmd_learn)

    evaluate = sub.add_parser("evaluate", parents=[common], help="metrics of a model version from feedback",
                              description="Per-concept precision, recall and ROC AUC (with intervals and "
                                          "label counts, concepts by name) of a version from the feedback on its "
                                          "outputs, as a table (--json: as JSON).")
    evaluate.add_argument("--app", required=True, help="the app")
    evaluate.add_argument("--model", default="general-v1.3", help="model id or name (default general-v1.3)")
    evaluate.add_argument("--version", help="version id (default: the app's active version)")
    evaluate.add_argument("--report", help="also write an HTML report with plots to this file")
    evaluate.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")
    evaluate.set_defaults(func=cmd_evaluate)

    outputs = sub.add_parser("outputs", parents=[common], help="prune remembered predict outputs",
                             description="Predict outputs are remembered so feedback can refer to them.")
    outputs_sub = outputs.add_subparsers(dest="action", required=True)
    prune = outputs_sub.add_parser("prune", parents=[common], help="delete outputs older than the retention",
                                   description="Deletes outputs older than VISIONLOOP_OUTPUT_RETENTION_DAYS (0 = "
                                               "keep forever) that no feedback refers to. Run it daily, e.g. "
                                               "from cron.")
    prune.add_argument("--days", type=cli_feedback.days, help="override the retention setting for this run")
    outputs.set_defaults(func=cmd_outputs)

    vectors = sub.add_parser("vectors", parents=[common], help="move embeddings into pgvector",
                             description="'migrate' fills the pgvector column of the inputs table from the stored "
                                         "embeddings (resumable, with progress), as a server started with "
                                         "VISIONLOOP_VECTOR_STORE=pgvector does before it listens.")
    vectors_sub = vectors.add_subparsers(dest="action", required=True)
    vectors_sub.add_parser("migrate", parents=[common],
                           help="create the column and graph, copy the embeddings, replace a full-precision graph")
    vectors.set_defaults(func=cmd_vectors)

    blobs = sub.add_parser("blobs", parents=[common], help="move image blobs into S3, sweep unreferenced ones",
                           description="'migrate' copies DATA_DIR/blobs into the S3-compatible store at "
                                       "VISIONLOOP_BLOB_URL (resumable: blobs already there are skipped); "
                                       "'sweep' deletes the blobs no row refers to.")
    blobs_sub = blobs.add_subparsers(dest="action", required=True)
    blobs_sub.add_parser("migrate", parents=[common], help="copy every blob into the S3 store")
    sweep = blobs_sub.add_parser("sweep", parents=[common], help="delete every blob no row refers to",
                                 description="Lists the blob store (VISIONLOOP_BLOB_STORE) and deletes each image no "
                                             "input, stored output or model version names: what a failed delete or "
                                             "an upload whose rows never committed left behind. Safe beside "
                                             "running servers.")
    sweep.add_argument("--older-than-hours", type=float, default=1.0,
                       help="only blobs last written longer ago than this (default 1: a model being trained "
                            "stores its artefact before its version names it)")
    blobs.set_defaults(func=cmd_blobs)

    embeddings = sub.add_parser("embeddings", parents=[common], help="sweep the embeddings nothing needs",
                                description="'sweep' deletes the stored embeddings of images that no input, "
                                            "output or feedback event names and no clicked (or, within "
                                            "VISIONLOOP_OUTPUT_RETENTION_DAYS, recent) search showed or asked "
                                            "with: what a prune or deletion that failed half-way left, and the "
                                            "query images of unclicked searches once past the retention. Safe "
                                            "beside running servers.")
    embeddings_sub = embeddings.add_subparsers(dest="action", required=True)
    embeddings_sub.add_parser("sweep", parents=[common], help="delete every embedding nothing needs, with progress")
    embeddings.set_defaults(func=cmd_embeddings)

    settings = sub.add_parser("settings", parents=[common],
                              help="list every setting: its environment variable, value in effect and default")
    settings.set_defaults(func=cmd_settings)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
    except (errors.ApiError, SettingsError) as exc:
        print(f"visionloop: {getattr(exc, 'details', '') or exc}", file=sys.stderr)
        code = 2
    except (OSError, ValueError, SQLAlchemyError) as exc:  # a path, a value or a database the command cannot use
        print(f"visionloop: {type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr)
        code = 1
    sys.exit(code)
