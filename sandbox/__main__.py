"""Start, stop and poke the two simulators: ``python -m sandbox --help``.

    start   seed both simulators and serve them in the background (one process, two ports)
    stop    stop that process cleanly
    status  what is running, where, and the Airflow connections that point at it
    env     print ``export AIRFLOW_CONN_...`` lines for a shell
    touch   change N contacts through the GHL API itself (as a user editing the CRM would)
    serve   run in the foreground (what ``start`` runs)

State lives in ``--dir`` (default ``.local/sandbox``): ``sandbox.json`` (ports, ids, credentials of
the local fake accounts), ``sandbox.pid`` and ``sandbox.log``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

from sandbox.profiles import DEFAULT_PROFILE, PROFILES

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DIR = ROOT / ".local" / "sandbox"

# Credentials of the local simulators only: they open nothing real.
LOCATION_ID = "sbxLoc0000000000demo"
GHL_TOKEN = "pit-sandbox-6b1f7c1e-2d0a-4c55-9e1b-5f0c8a7d3e21"
SECURE_URL = "https://sandbox-store.3dcartstores.com"
PRIVATE_KEY = "sandbox-private-key-3f9a1c7e5b"
S4S_TOKEN = "sandbox-token-8d2e4f6a0b"


def connections(cfg: dict) -> dict[str, str]:
    """AIRFLOW_CONN_* values (docs/connections.md) for the running simulators."""
    return {
        "AIRFLOW_CONN_GHL_DEFAULT": json.dumps(
            {
                "conn_type": "http",
                "host": f"http://127.0.0.1:{cfg['ghl_port']}",
                "password": cfg["ghl_token"],
                "extra": {"location_id": cfg["location_id"], "version": "2021-07-28"},
            }
        ),
        "AIRFLOW_CONN_SHIFT4SHOP_DEFAULT": json.dumps(
            {
                "conn_type": "http",
                "host": f"http://127.0.0.1:{cfg['s4s_port']}",
                "extra": {
                    "secure_url": cfg["secure_url"],
                    "private_key": cfg["private_key"],
                    "token": cfg["s4s_token"],
                },
            }
        ),
    }


def _customer_from_contact(contact: dict) -> dict:
    """A store customer that a shop owner created by hand for the same person (case differs)."""
    return {
        "Email": str(contact.get("email") or "").upper(),
        "Password": "changeme",
        "BillingFirstName": (contact.get("firstName") or "")[:50] or None,
        "BillingLastName": (contact.get("lastName") or "")[:50] or None,
        "Comments": "created in the store before the sync existed",
    }


def serve(args: argparse.Namespace) -> int:
    from sandbox.common import ServerThread
    from sandbox.ghl import GhlState
    from sandbox.ghl import create_app as ghl_app
    from sandbox.profiles import apply_profile
    from sandbox.seed import generate_contacts, generate_crm
    from sandbox.shift4shop import Shift4ShopState
    from sandbox.shift4shop import create_app as s4s_app

    limits = not args.no_limits
    speed = max(args.speed, 1.0)
    ghl = (
        GhlState.from_seed_file(
            args.ghl_seed, location_id=LOCATION_ID, tokens={GHL_TOKEN: {"location_id": LOCATION_ID}}
        )
        if args.ghl_seed
        else GhlState(location_id=LOCATION_ID, tokens={GHL_TOKEN: {"location_id": LOCATION_ID}})
    )
    # --speed N: N times the documented limits (same window, N times the requests), for demos.
    ghl.configure(rate_limit=limits, latency_s=args.latency, burst_max=int(100 * speed))
    s4s = (
        Shift4ShopState.from_seed_file(
            args.s4s_seed, stores={SECURE_URL: {"private_key": PRIVATE_KEY, "token": S4S_TOKEN}}
        )
        if args.s4s_seed
        else Shift4ShopState(stores={SECURE_URL: {"private_key": PRIVATE_KEY, "token": S4S_TOKEN}})
    )
    s4s.configure(rate_limit=limits, latency_s=args.latency, bucket_size=int(50 * speed), leak_per_s=2.0 * speed)
    profile = apply_profile(args.profile, ghl=ghl, shift4shop=s4s)
    seeding = time.monotonic()
    if not args.ghl_seed:
        contacts = generate_contacts(
            args.contacts, seed=args.seed, dirty_share=args.dirty_share, location_id=LOCATION_ID
        )
        ghl.load_contacts(contacts)
        crm = generate_crm(contacts, seed=args.seed, location_id=LOCATION_ID)
        ghl.load_tasks(crm.pop("tasks"))  # each list freed once loaded
        ghl.load_notes(crm.pop("notes"))
        ghl.load_calendars(crm.pop("calendars"))
        ghl.load_events(crm.pop("events"))
        if not args.s4s_seed and args.preexisting:
            rng = random.Random(args.seed)
            picks = [c for c in rng.sample(contacts, min(args.preexisting, len(contacts))) if c.get("email")]
            s4s.load_customers(SECURE_URL, [_customer_from_contact(c) for c in picks])
        # The states hold their own copies: the generated lists would otherwise stay alive as long
        # as this function serves (a second copy of every contact and CRM record: GBs at 1M).
        del contacts, crm
    ghl_server = ServerThread(ghl_app(ghl), port=args.ghl_port, host=args.host).start()
    s4s_server = ServerThread(s4s_app(s4s), port=args.s4s_port, host=args.host).start()
    print(
        f"GHL simulator on {ghl_server.url}, Shift4Shop simulator on {s4s_server.url} "
        f"(profile {profile.name}: {profile.summary}; seeded in {time.monotonic() - seeding:.0f} s)",
        flush=True,
    )

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    ghl_server.stop()
    s4s_server.stop()
    return 0


def _cfg_path(d: Path) -> Path:
    return d / "sandbox.json"


def _running_pid(d: Path) -> int | None:
    pid_file = d / "sandbox.pid"
    if not pid_file.exists():
        return None
    pid = int(pid_file.read_text().strip() or 0)
    try:
        os.kill(pid, 0)
        return pid
    except (ProcessLookupError, PermissionError):
        pid_file.unlink(missing_ok=True)
        return None


def start(args: argparse.Namespace) -> int:
    d = Path(args.dir)
    d.mkdir(parents=True, exist_ok=True)
    if _running_pid(d):
        print("sandbox already running; `python -m sandbox stop` first", file=sys.stderr)
        return 1
    cfg = {
        "ghl_port": args.ghl_port,
        "s4s_port": args.s4s_port,
        "location_id": LOCATION_ID,
        "ghl_token": GHL_TOKEN,
        "secure_url": SECURE_URL,
        "private_key": PRIVATE_KEY,
        "s4s_token": S4S_TOKEN,
        "profile": args.profile,
    }
    _cfg_path(d).write_text(json.dumps(cfg, indent=2))
    cmd = [sys.executable, "-m", "sandbox", "serve", *sys.argv[sys.argv.index("start") + 1 :]]
    log = (d / "sandbox.log").open("w")
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    (d / "sandbox.pid").write_text(str(proc.pid))
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            print((d / "sandbox.log").read_text()[-3000:], file=sys.stderr)
            return 1
        try:
            requests.get(f"http://127.0.0.1:{args.ghl_port}/_sim/requests", timeout=1)
            requests.get(f"http://127.0.0.1:{args.s4s_port}/_sim/requests", timeout=1)
            print(f"sandbox running (pid {proc.pid}): GHL :{args.ghl_port}, Shift4Shop :{args.s4s_port}")
            return 0
        except requests.ConnectionError:
            time.sleep(0.2)
    print("sandbox did not come up in 120 s", file=sys.stderr)
    return 1


def stop(args: argparse.Namespace) -> int:
    d = Path(args.dir)
    pid = _running_pid(d)
    if not pid:
        print("sandbox not running")
        return 0
    os.kill(pid, signal.SIGTERM)
    for _ in range(100):
        if _running_pid(d) is None:
            break
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
    (d / "sandbox.pid").unlink(missing_ok=True)
    print(f"sandbox stopped (pid {pid})")
    return 0


def status(args: argparse.Namespace) -> int:
    d = Path(args.dir)
    pid = _running_pid(d)
    print(f"sandbox {'running, pid ' + str(pid) if pid else 'not running'}")
    if pid and _cfg_path(d).exists():
        cfg = json.loads(_cfg_path(d).read_text())
        print(f"profile    {cfg.get('profile', DEFAULT_PROFILE)}")
        print(f"GHL        http://127.0.0.1:{cfg['ghl_port']}  location {cfg['location_id']}")
        print(f"Shift4Shop http://127.0.0.1:{cfg['s4s_port']}  store {cfg['secure_url']}")
    return 0 if pid else 1


def env(args: argparse.Namespace) -> int:
    cfg = json.loads(_cfg_path(Path(args.dir)).read_text())
    for key, value in connections(cfg).items():
        print(f"export {key}='{value}'")
    return 0


def touch(args: argparse.Namespace) -> int:
    """Edit N contacts through the GHL API: new city and a tag; for some, a completed task or a new note."""
    cfg = json.loads(_cfg_path(Path(args.dir)).read_text())
    base = f"http://127.0.0.1:{cfg['ghl_port']}"
    headers = {"Authorization": f"Bearer {cfg['ghl_token']}", "Version": "2021-07-28"}
    body = {"locationId": cfg["location_id"], "pageLimit": 500, "sort": [{"field": "dateAdded", "direction": "asc"}]}
    contacts = requests.post(f"{base}/contacts/search", json=body, headers=headers, timeout=30).json()["contacts"]
    rng = random.Random(args.seed)
    picks = rng.sample([c for c in contacts if c.get("email") and "@" in c["email"]], args.count)
    cities = ["Lisbon", "Osaka", "Nairobi", "Montréal", "Reykjavík", "Valparaíso"]
    for c in picks:
        update = {"city": rng.choice(cities), "tags": sorted({*c.get("tags", []), "touched-by-demo"})}
        for _attempt in range(5):
            r = requests.put(f"{base}/contacts/{c['id']}", json=update, headers=headers, timeout=30)
            if r.status_code != 429:
                break
            time.sleep(float(r.headers.get("Retry-After", 1)))
        r.raise_for_status()
    # A user working these records also closes tasks and writes notes (GHL does not say whether
    # that alone changes the contact's dateUpdated, so the edits above are what the sync sees).
    completed = noted = 0
    for c in picks[: max(1, len(picks) // 3)]:
        tasks = requests.get(f"{base}/contacts/{c['id']}/tasks", headers=headers, timeout=30).json().get("tasks", [])
        open_tasks = [t for t in tasks if not t.get("completed")]
        if open_tasks:
            requests.put(
                f"{base}/contacts/{c['id']}/tasks/{open_tasks[0]['id']}/completed",
                json={"completed": True},
                headers=headers,
                timeout=30,
            ).raise_for_status()
            completed += 1
        requests.post(
            f"{base}/contacts/{c['id']}/notes",
            json={"body": "<p>Called back: <b>wants a quote</b> for 12 units</p>"},
            headers=headers,
            timeout=30,
        ).raise_for_status()
        noted += 1
    print(f"changed {len(picks)} contacts in the GHL simulator ({completed} tasks completed, {noted} notes added)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dir", default=str(DEFAULT_DIR))
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("start", "serve"):
        p = sub.add_parser(name)
        p.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 in a container)")
        p.add_argument("--ghl-port", type=int, default=8701)
        p.add_argument("--s4s-port", type=int, default=8702)
        p.add_argument("--contacts", type=int, default=3000, help="generated contacts (without --ghl-seed)")
        p.add_argument("--seed", type=int, default=7)
        p.add_argument("--dirty-share", type=float, default=0.02)
        p.add_argument("--preexisting", type=int, default=60, help="store customers that already exist")
        p.add_argument("--ghl-seed", help="JSON file of GHL contacts to serve instead (API shape)")
        p.add_argument("--s4s-seed", help="JSON file of Shift4Shop customers to serve instead (API shape)")
        p.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
        p.add_argument("--no-limits", action="store_true", help="switch rate limits off")
        p.add_argument("--speed", type=float, default=1.0, help="serve N times the documented rate limits")
        p.add_argument(
            "--profile",
            choices=sorted(PROFILES),
            default=DEFAULT_PROFILE,
            help="lenient or strict reading of the APIs' unconfirmed behaviours (sandbox/profiles.py)",
        )
    sub.add_parser("stop")
    sub.add_parser("status")
    sub.add_parser("env")
    t = sub.add_parser("touch")
    t.add_argument("--count", type=int, default=25)
    t.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)
    return {"start": start, "serve": serve, "stop": stop, "status": status, "env": env, "touch": touch}[args.command](
        args
    )


if __name__ == "__main__":
    raise SystemExit(main())
