"""Operator commands on the sync's state: ``python -m ghl_shift4shop --help``.

watermark show                 every stream's watermark
watermark reset [--stream S]   forget it: the next run starts from the beginning
watermark set --to ISO         move it (e.g. to re-sync the last week)
quarantine [--stream S]        open quarantine entries with their reasons
dead-letters                   items the store failed with a retryable status (retried next run)
held                           tasks/notes/appointments held for the next run, and why
oauth forget [--client ID]     drop the stored GHL OAuth tokens: the connection's are used next
runs [--limit N]               the latest run summaries

--tenant T (before the command) acts on tenant T's state (include/tenants.yaml); default: the
default tenant.
"""

from __future__ import annotations

import argparse
import json
import sys

from ghl_shift4shop.settings import load_settings
from ghl_shift4shop.state import StateStore
from ghl_shift4shop.timeutil import format_ts, parse_ts
from ghl_shift4shop.transport import mask_email


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ghl_shift4shop", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tenant", default=None, help="a tenant of the tenants file (default: the default tenant)")
    sub = parser.add_subparsers(dest="command", required=True)
    wm = sub.add_parser("watermark", help="show, reset or set a stream's watermark")
    wm.add_argument("action", choices=["show", "reset", "set"])
    wm.add_argument("--stream", default="contacts")
    wm.add_argument("--to", help="ISO-8601 timestamp for `set`")
    q = sub.add_parser("quarantine", help="list open quarantine entries")
    q.add_argument("--stream")
    sub.add_parser("dead-letters", help="items waiting to be loaded again (the store failed them)")
    sub.add_parser("held", help="child rows held for the next run (no customer yet, or an unsettled create)")
    oa = sub.add_parser("oauth", help="the GHL OAuth tokens stored by the sync")
    oa.add_argument("action", choices=["forget"])
    oa.add_argument("--client", help="only this OAuth client id")
    r = sub.add_parser("runs", help="latest run summaries")
    r.add_argument("--limit", type=int, default=5)
    r.add_argument("--table", action="store_true", help="one aligned table per run instead of JSON lines")
    args = parser.parse_args(argv)

    try:
        settings = load_settings(args.tenant)
    except KeyError as exc:
        parser.error(str(exc.args[0]))
    state = StateStore(settings.state_url, settings.state_schema)
    schema = f" (schema {settings.state_schema})" if settings.state_schema else ""
    print(f"tenant {settings.tenant}, state database: {settings.state_url.split('@')[-1]}{schema}", file=sys.stderr)
    if args.command == "watermark":
        if args.action == "reset":
            gone = state.reset_watermark(args.stream)
            print(f"{args.stream}: watermark {'reset' if gone else 'was not set'}")
        elif args.action == "set":
            if not args.to:
                parser.error("watermark set needs --to")
            state.set_watermark(args.stream, format_ts(parse_ts(args.to)), "cli")
            print(f"{args.stream}: watermark set to {format_ts(parse_ts(args.to))}")
        rows = state.list_watermarks()
        if not rows:
            print("no watermarks stored (the next run syncs everything)")
        for row in rows:
            print(f"{row['stream']:<14}{row['value']}  (run {row['run_id']}, at {row['updated_at']})")
    elif args.command == "quarantine":
        rows = state.open_quarantine(args.stream)
        for row in rows:
            print(f"{row['stream']:<10}{row['source_id']:<24}{row['stage']:<10}{mask_email(row['reason'])}")
        print(f"{len(rows)} open entries")
    elif args.command == "dead-letters":
        rows = state.list_dead_letters()
        for row in rows:
            print(
                f"{row['stream']:<10}{row['source_id']:<24}{row['status']!s:<5}{row['attempts']:>3} tries  "
                f"{mask_email(row['message'] or '')}"
            )
        print(f"{len(rows)} waiting")
    elif args.command == "held":
        rows = state.list_held()
        for row in rows:
            print(f"{row['stream']:<14}{row['contact_id']:<24}{row['attempts']:>3} runs  {row['reason']}")
        print(f"{len(rows)} held")
    elif args.command == "oauth":
        from ghl_shift4shop.ghl.oauth import forget_tokens

        n = forget_tokens(state, args.client)
        print(f"forgot {n} stored token pair(s); the next run uses the refresh token in the connection")
    elif args.command == "runs":
        for row in state.recent_summaries(args.limit):
            if not args.table:
                print(json.dumps(row, default=str))
                continue
            print(f"   run {row.pop('run_id')}  (finished {row.pop('finished_at')})")
            for key, value in row.items():
                print(f"     {key:<22}{value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
