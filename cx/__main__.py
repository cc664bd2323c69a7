"""Command line: ``python -m cx COMMAND ...``. Every command prints machine-readable output on stdout;
a user-facing error is one line on stderr and exit status 2, with the store unchanged."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable

from cx.errors import TouchpointError

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def command(name: str):
    def register(fn):
        COMMANDS[name] = fn
        return fn

    return register


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str, ensure_ascii=False))


def _print_frame(frame, fmt: str) -> None:
    if fmt == "csv":
        frame.to_csv(sys.stdout, index=False)
    elif fmt == "json":
        print(frame.to_json(orient="records", date_format="iso", force_ascii=False, indent=2))
    else:
        import pandas as pd

        with pd.option_context("display.max_rows", 500, "display.max_columns", 50, "display.width", 200):
            print(frame.to_string(index=False))


def _parse_pairs(pairs: list[str] | None, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise TouchpointError(f"{what} {pair!r} has no '='.", fix=f"Write it as NAME=VALUE, e.g. {what} 'Score=nps'.")
        left, right = pair.rsplit("=", 1)
        out[left.strip()] = right.strip()
    return out


# -- data ------------------------------------------------------------------------------------------
@command("import")
def _cmd_import(args: argparse.Namespace) -> int:
    from cx import ingest
    from cx.store import open_store

    options = ingest.Options.from_strings(_parse_pairs(args.option, "--option"))
    if args.date_order:
        options = options.replace(date_order=args.date_order)
    if args.timezone:
        options = options.replace(timezone=args.timezone)
    store = open_store(args.db)
    result = ingest.import_file(
        store,
        args.path,
        kind=args.kind,
        column_map=_parse_pairs(args.map, "--map") or None,
        options=options,
        sheet=args.sheet,
        keep_extra=args.keep_extra,
    )
    _print_json(result.as_dict())
    return 0


@command("inspect")
def _cmd_inspect(args: argparse.Namespace) -> int:
    from cx import ingest
    from cx.store import open_store

    store = open_store(args.db)
    found = ingest.inspect_file(store, args.path, kind=args.kind, sheet=args.sheet)
    _print_json(found.as_dict())
    return 0


@command("batches")
def _cmd_batches(args: argparse.Namespace) -> int:
    from cx import ingest
    from cx.store import open_store

    _print_frame(ingest.list_batches(open_store(args.db)), args.format)
    return 0


@command("rejects")
def _cmd_rejects(args: argparse.Namespace) -> int:
    from cx import ingest
    from cx.store import open_store

    _print_frame(ingest.batch_rejects(open_store(args.db), args.batch_id), args.format)
    return 0


@command("remove")
def _cmd_remove(args: argparse.Namespace) -> int:
    from cx import ingest
    from cx.store import open_store

    _print_json(ingest.remove_batch(open_store(args.db), args.batch_id))
    return 0


@command("demo")
def _cmd_demo(args: argparse.Namespace) -> int:
    from cx import demo
    from cx.store import open_store

    store = open_store(args.db)
    results = demo.load_demo(store, seed=args.seed, scale=args.scale)
    _print_json([r.as_dict() for r in results])
    return 0


@command("init")
def _cmd_init(args: argparse.Namespace) -> int:
    """Create the store if needed and fill it with the demo data the first time only."""
    from cx import demo
    from cx.store import open_store

    store = open_store(args.db)
    if store.is_empty() and not store.get_setting("demo_offered", False):
        print(f"Creating {store.path} with the demo data set…", file=sys.stderr)
        demo.load_demo(store)
    store.set_setting("demo_offered", True)
    _print_json({"db": str(store.path), "rows": store.row_counts(), "data_version": store.data_version()})
    return 0


# -- backup, restore, integrity ---------------------------------------------------------------------
@command("backup")
def _cmd_backup(args: argparse.Namespace) -> int:
    from cx.backup import backup

    _print_json(backup(args.dest, args.db))
    return 0


@command("restore")
def _cmd_restore(args: argparse.Namespace) -> int:
    from cx.backup import restore

    _print_json(restore(args.src, args.db))
    return 0


@command("check")
def _cmd_check(args: argparse.Namespace) -> int:
    from cx.store import open_store

    report = open_store(args.db).check()
    _print_json(report.as_dict())
    if not report.ok:
        print(f"error: the store failed its integrity check: {'; '.join(report.problems)}", file=sys.stderr)
        return 2
    return 0


@command("hash-password")
def _cmd_hash_password(args: argparse.Namespace) -> int:
    """Print the secrets line for the app's password mode; the password is read without echo (or
    from standard input when it is not a terminal) and never stored."""
    import getpass

    from cx.access import hash_password

    if sys.stdin.isatty():
        password = getpass.getpass("New password: ")
        if getpass.getpass("Again: ") != password:
            raise TouchpointError("The two passwords differ.", fix="Run the command again.")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    print("# Paste into .streamlit/secrets.toml (keep that file out of version control):")
    print("[touchpoint]")
    print(f'password_hash = "{hash_password(password)}"')
    return 0


# -- metrics ---------------------------------------------------------------------------------------
@command("metrics")
def _cmd_metrics(args: argparse.Namespace) -> int:
    from cx.metrics import list_metrics

    _print_frame(list_metrics(), args.format)
    return 0


@command("metric")
def _cmd_metric(args: argparse.Namespace) -> int:
    from cx import metrics
    from cx.engine import backend_for, is_external
    from cx.store import open_store

    backend = backend_for(None if is_external() else open_store(args.db))
    where: dict[str, list[str]] = {}
    for dim, value in _parse_pairs(args.where, "--where").items():
        where.setdefault(dim, []).extend(v for v in value.split("|"))
    if args.compare:
        if not (args.start and args.end):
            raise TouchpointError("--compare needs --from and --to.", fix="Give the period to compare, e.g. --from 2026-04-01 --to 2026-06-30.")
        frame = metrics.compare_metric(backend, args.name, start=args.start, end=args.end, compare=args.compare,
                                       by=tuple(args.by or ()), where=where)
    else:
        frame = metrics.query_metric(backend, args.name, grain=args.grain, by=tuple(args.by or ()),
                                     start=args.start, end=args.end, where=where)
    _print_frame(frame, args.format)
    return 0


# -- journey ---------------------------------------------------------------------------------------
@command("funnel")
def _cmd_funnel(args: argparse.Namespace) -> int:
    from cx import funnel
    from cx.store import open_store

    where: dict[str, list[str]] = {}
    for dim, value in _parse_pairs(args.where, "--where").items():
        where.setdefault(dim, []).extend(v for v in value.split("|"))
    q = funnel.FunnelQuery.build(args.steps, mode=args.mode, window=args.window, by=args.by, start=args.start,
                                 end=args.end, where=where)
    table = funnel.compute_funnel(open_store(args.db), q)
    for dim in table.attrs.get("ignored_filters", []):
        print(f"note: events and customers have no {dim!r}; that filter was not applied.", file=sys.stderr)
    _print_frame(table.round(3) if args.format == "table" else table, args.format)
    return 0


# -- churn & value ---------------------------------------------------------------------------------
@command("clv")
def _cmd_clv(args: argparse.Namespace) -> int:
    """Fit BG/NBD + Gamma-Gamma on the orders; with --calibration-end, also the holdout check."""
    from cx import clv
    from cx.metrics import as_date
    from cx.store import open_store

    store = open_store(args.db)
    horizon = clv.parse_horizon(args.horizon)
    # With a calibration end the models are fitted on the calibration period only (as published).
    cal_end = as_date(args.calibration_end)
    result = clv.predict_clv(store, unit=args.unit, horizon_months=horizon, discount=args.discount, as_of=cal_end)
    if args.format == "csv":
        cols = ["customer_id", "frequency", "recency", "T", "monetary_value", "p_alive", "expected_purchases",
                "expected_spend", "clv", "value_at_risk"]
        _print_frame(result.customers[[c for c in cols if c in result.customers]], "csv")
        return 0
    out = result.as_dict()
    if cal_end:
        holdout = clv.holdout_check(store, calibration_end=cal_end, unit=args.unit).as_dict()
        holdout.pop("bgnbd")  # the same fit as above
        out["holdout"] = holdout
    _print_json(out)
    return 0


# -- voice of the customer -------------------------------------------------------------------------
@command("voice")
def _cmd_voice(args: argparse.Namespace) -> int:
    from cx import voice
    from cx.store import open_store

    store = open_store(args.db)
    result = voice.refresh(store, limited=False)  # asked for by name: as many comments as there are
    if getattr(args, "themes", False):
        frame = voice.theme_impact(store, source=args.source, metric=args.metric, start=args.start, end=args.end)
        if args.format == "table":
            frame = frame.round(2)
        _print_frame(frame, args.format)
        return 0
    summary = voice.sentiment_summary(store, source=args.source, start=args.start, end=args.end)
    out = {**{k: v for k, v in summary.items() if k != "ignored_filters"}, "models": [r.as_dict() for r in result.reports]}
    if args.format == "csv":
        import pandas as pd

        _print_frame(pd.DataFrame([r.as_dict() for r in result.reports]), "csv")
    else:
        _print_json(out)
    return 0


@command("themes")
def _cmd_themes(args: argparse.Namespace) -> int:
    args.themes = True
    return _cmd_voice(args)


@command("sentiment")
def _cmd_sentiment(args: argparse.Namespace) -> int:
    from cx import voice

    texts = [line.rstrip("\r\n") for line in sys.stdin]
    store = None
    if args.db:
        from cx.store import open_store

        store = open_store(args.db)
    _print_frame(voice.score_texts(texts, store), args.format)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m cx", description="Touchpoint: CX analytics on a DuckDB store.")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        # argparse %-formats a help string (not a description): "95% interval" would crash --help.
        p = sub.add_parser(name, help=help_.replace("%", "%%"), description=help_)
        p.add_argument("--db", help="store path (default: $TOUCHPOINT_DB or data/touchpoint.duckdb)")
        return p

    p = add("import", "Import one export file; prints the batch as JSON.")
    p.add_argument("path")
    p.add_argument("--kind", choices=["responses", "tickets", "orders", "events", "customers"])
    p.add_argument("--map", action="append", metavar="COLUMN=FIELD",
                   help="map a column to a field (FIELD may be dim:NAME to keep it as a dimension, or ignore)")
    p.add_argument("--sheet", help="Excel sheet name or 1-based number")
    p.add_argument("--date-order", choices=["dmy", "mdy", "ymd"], help="how to read dates like 03/04/2024")
    p.add_argument("--timezone", help="time zone of timestamps without an offset (default UTC)")
    p.add_argument("--option", action="append", metavar="NAME=VALUE",
                   help="value conventions: csat_scale=1-5, ces_scale=1-7, tenure_unit=month, decimal=',', nulls='?|N/A'")
    p.add_argument("--keep-extra", action="store_true", help="keep unmapped columns as dimensions")

    p = add("inspect", "Show how a file would be read and mapped, without importing it.")
    p.add_argument("path")
    p.add_argument("--kind", choices=["responses", "tickets", "orders", "events", "customers"])
    p.add_argument("--sheet")

    for name, help_ in (("batches", "List import batches."),):
        p = add(name, help_)
        p.add_argument("--format", choices=["table", "json", "csv"], default="table")
    p = add("rejects", "List the rows a batch rejected, with the reason.")
    p.add_argument("batch_id", type=int)
    p.add_argument("--format", choices=["table", "json", "csv"], default="table")
    p = add("remove", "Remove one import batch; rows it overwrote come back.")
    p.add_argument("batch_id", type=int)
    p = add("demo", "Load the deterministic demo data set.")
    p.add_argument("--scale", type=float, default=1.0, help="multiply volumes (for benchmarks)")
    p.add_argument("--seed", type=int, default=7)
    add("init", "Create the store; load the demo data on first run.")
    p = add("backup", "Write a consistent copy of the store (also while the app runs).")
    p.add_argument("dest", help="a new .duckdb file, or a folder to write a dated backup in")
    p = add("restore", "Put a backup in place of the store (the app must be stopped); the old store is kept beside it.")
    p.add_argument("src", help="a file written by `backup`")
    add("check", "Check the store's integrity: schema, readable tables, keys, batches and their accounting.")
    add("hash-password", "Make the password hash for the app's password mode ([touchpoint] password_hash).")
    p = add("metrics", "List the metrics Touchpoint computes.")
    p.add_argument("--format", choices=["table", "json", "csv"], default="table")
    p = add("metric", "Compute one metric: value, n, 95% interval and low-sample flag per group.")
    p.add_argument("name")
    p.add_argument("--by", action="append", metavar="DIM", help="break down by a dimension (repeatable)")
    p.add_argument("--grain", choices=["day", "week", "month", "quarter", "year"])
    p.add_argument("--from", dest="start", metavar="DATE", help="first day, YYYY-MM-DD")
    p.add_argument("--to", dest="end", metavar="DATE", help="last day (inclusive), YYYY-MM-DD")
    p.add_argument("--where", action="append", metavar="DIM=VALUE", help="keep rows where DIM is VALUE (a|b for several)")
    p.add_argument("--compare", choices=["previous", "year"], help="compare with the previous period or a year before")
    p.add_argument("--format", choices=["table", "json", "csv"], default="table")
    p = add("funnel", "A funnel over journey events: customers, conversion, drop-off and time to convert per step.")
    p.add_argument("steps", nargs="+", metavar="STEP",
                   help="2 to 20 step names, in order: as in events.step, or another table's timestamp ('orders: "
                        "order placed', 'tickets: ticket opened', 'tickets: first reply', 'tickets: ticket resolved', "
                        "'responses: survey answered')")
    p.add_argument("--mode", choices=["sequential", "strict", "any"], default="sequential",
                   help="sequential: other events allowed between steps (default); strict: none; any: any order")
    p.add_argument("--window", default="14d", help="conversion window from the first step: 14d, 36h, 90m, 2w")
    p.add_argument("--by", metavar="DIM", help="break down by an event or customer dimension (first step's value)")
    p.add_argument("--from", dest="start", metavar="DATE", help="first day of first steps, YYYY-MM-DD")
    p.add_argument("--to", dest="end", metavar="DATE", help="last day of first steps (inclusive), YYYY-MM-DD")
    p.add_argument("--where", action="append", metavar="DIM=VALUE", help="keep first steps where DIM is VALUE (a|b)")
    p.add_argument("--format", choices=["table", "json", "csv"], default="table")
    p = add("clv", "Predictive CLV: BG/NBD and Gamma-Gamma parameters, log-likelihoods, customers fitted, holdout check.")
    p.add_argument("--calibration-end", metavar="DATE", help="fit up to this day and compare predictions with later orders")
    p.add_argument("--unit", choices=["day", "week", "month"], default="week", help="time unit of the parameters (alpha)")
    p.add_argument("--horizon", default="12m", help="prediction horizon: 12m (months), 26w (weeks), 1y")
    p.add_argument("--discount", type=float, default=0.01, help="discount rate per month (0.01 = 1%%)")
    p.add_argument("--format", choices=["json", "csv"], default="json", help="json: the models; csv: one row per customer")
    for name, help_ in (("voice", "Comments: sentiment counts and how each language was scored (JSON); --themes for themes."),
                        ("themes", "Themes of the comments with volume, sentiment and their cost in NPS/CSAT points.")):
        p = add(name, help_)
        if name == "voice":
            p.add_argument("--themes", action="store_true", help="print the themes with volume and impact instead")
        p.add_argument("--source", choices=["responses", "tickets"], default="responses")
        p.add_argument("--metric", choices=["nps", "csat", "ces"], help="score the impact is measured on (default: the first present)")
        p.add_argument("--from", dest="start", metavar="DATE", help="first day, YYYY-MM-DD")
        p.add_argument("--to", dest="end", metavar="DATE", help="last day (inclusive), YYYY-MM-DD")
        p.add_argument("--format", choices=["table", "json", "csv"], default="json" if name == "voice" else "table")
    p = sub.add_parser("sentiment", help="Sentiment of each line of standard input.",
                       description="Sentiment of each line of standard input: language, label (negative / neutral / "
                                   "positive, or unscored with the reason) and score from -1 to 1.")
    p.add_argument("--db", help="learn from this store's scored comments (default: English lexicon only)")
    p.add_argument("--format", choices=["table", "json", "csv"], default="table")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except TouchpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
