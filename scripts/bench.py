"""`make bench`: API calls, rate-budget use, throughput, memory and wall time of the sync (issue 9).

Prints one table of figures and never fails on a time (a run that breaks still exits non-zero).

* Both simulators run as real HTTP servers in a subprocess (``python -m sandbox serve``), seeded
  with N generated contacts (tasks, notes, calendars) and 3% of them already in the store.
* The sync runs in its own subprocess (``bench.py _sync``): the task functions of
  ``ghl_shift4shop.sync`` called in the DAG's order (plan_window, extract, validate per batch,
  quality_gate, fetch_children per batch, transform per batch, load, load_crm, commit_watermark,
  report), not through an Airflow scheduler, so the figures are the code's and not Airflow's.
* Call counts come from the simulators' request logs (``GET /_sim/requests``), cleared between phases.
* Peak RSS is the sync process's (its child processes included: it starts none, but psutil's
  sample of the whole tree is taken anyway), sampled every 0.1 s and checked against ru_maxrss.
* A naive per-record flow (search, then per contact GET, look up by e-mail, PUT or POST) runs on
  the same simulators after each sync phase, for comparison.

    .venv/bin/python scripts/bench.py                       # quick: 1k and 10k
    .venv/bin/python scripts/bench.py --full                # 100k and 1M (hours)
    .venv/bin/python scripts/bench.py --sizes 100000 --skip throughput,budget
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]

from ghl_shift4shop.settings import Settings  # noqa: E402

from sandbox.__main__ import GHL_TOKEN, LOCATION_ID, connections  # noqa: E402

GHL_PAGE = 500  # the search page size the sync asks for (settings.ghl_page_limit)
TASK_IDS_PER_SEARCH = 100  # children.TASK_IDS_PER_SEARCH
TASK_SEARCH_LIMIT = 100  # tasks per page the task search returns (ghl.hook.TASK_SEARCH_LIMIT)
STORE_CHUNK = 100  # bulk PUT size (settings.shift4shop_put_chunk)
# The documented limits: GHL 100 requests per 10 s per location; the store's leaky bucket of 50 leaking 2/s.
GHL_BURST, GHL_WINDOW_S = 100, 10.0
S4S_BUCKET, S4S_LEAK = 50, 2.0
# The client's own GHL budget (the default of settings.ghl_rate_per_s), time-scaled with the limits
# in the budget phase.
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Settings)}
GHL_CLIENT_RATE, GHL_CLIENT_BURST = _DEFAULTS["ghl_rate_per_s"], _DEFAULTS["ghl_burst"]
S4S_CLIENT_BURST = _DEFAULTS["shift4shop_burst"]
PHASES = ("calls", "throughput", "budget")


def uptime() -> str:
    return "load " + " ".join(Path("/proc/loadavg").read_text().split()[:3])


# ---- the simulators ---------------------------------------------------------------------------------


class Sandbox:
    """``python -m sandbox serve`` in a subprocess, on free ports."""

    def __init__(self, work: Path, contacts: int, *, limits: bool = False, seed: int = 7, profile: str = "lenient"):
        from sandbox.common import free_port

        self.work = work
        self.cfg = {
            "ghl_port": free_port(),
            "s4s_port": free_port(),
            "location_id": LOCATION_ID,
            "ghl_token": GHL_TOKEN,
        }
        from sandbox.__main__ import PRIVATE_KEY, S4S_TOKEN, SECURE_URL

        self.cfg.update(secure_url=SECURE_URL, private_key=PRIVATE_KEY, s4s_token=S4S_TOKEN)
        cmd = [
            sys.executable, "-m", "sandbox", "--dir", str(work / "sandbox"), "serve",
            "--ghl-port", str(self.cfg["ghl_port"]), "--s4s-port", str(self.cfg["s4s_port"]),
            "--contacts", str(contacts), "--seed", str(seed), "--preexisting", str(max(1, contacts * 3 // 100)),
            "--profile", profile,
        ] + ([] if limits else ["--no-limits"])  # fmt: skip
        self.log = (work / f"sandbox-{contacts}.log").open("w")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 900 + contacts / 500  # seeding 1M contacts with their CRM takes minutes
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sandbox exited: see {self.log.name}")
            try:
                requests.get(self.url("ghl", "/_sim/requests"), timeout=2).raise_for_status()
                requests.get(self.url("s4s", "/_sim/requests"), timeout=2).raise_for_status()
                break
            except requests.RequestException:
                if time.time() > deadline:
                    raise
                time.sleep(0.5)

    def url(self, which: str, path: str) -> str:
        return f"http://127.0.0.1:{self.cfg[which + '_port']}{path}"

    def env(self) -> dict[str, str]:
        return connections(self.cfg)

    def requests_log(self, which: str) -> list[dict]:
        return requests.get(self.url(which, "/_sim/requests"), timeout=600).json()

    def clear(self) -> None:
        for which in ("ghl", "s4s"):
            requests.delete(self.url(which, "/_sim/requests"), timeout=60).raise_for_status()

    def configure(self, which: str, **changes) -> dict:
        return requests.post(self.url(which, "/_sim/config"), json=changes, timeout=60).json()

    def calendars(self) -> int:
        return int(requests.get(self.url("ghl", "/_sim/calendars"), params={"limit": 1}, timeout=60).json()["total"])

    def admin_list(self, key: str) -> list[dict]:
        rows: list[dict] = []
        while True:
            page = requests.get(
                self.url("ghl", f"/_sim/{key}"), params={"offset": len(rows), "limit": 100_000}, timeout=600
            )
            got = page.json()[key]
            rows.extend(got)
            if not got or len(rows) >= page.json()["total"]:
                return rows

    def tasks_total(self) -> int:
        """How many tasks the simulator holds (one small admin call; a first sync's bound needs no more)."""
        page = requests.get(self.url("ghl", "/_sim/tasks"), params={"limit": 1}, timeout=600)
        return int(page.json()["total"])

    def tasks_per_contact(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.admin_list("tasks"):
            out[t.get("contactId")] = out.get(t.get("contactId"), 0) + 1
        return out

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def count_calls(sbx: Sandbox) -> dict:
    """Calls per service from the simulators' logs, split by kind, then clear the logs."""
    out = {which: tally(which, sbx.requests_log(which)) for which in ("ghl", "s4s")}
    sbx.clear()
    return out


def tally(which: str, log: list[dict]) -> dict:
    """One simulator's request log: how many calls, how many 429s, how many of each kind."""
    kinds: dict[str, int] = {}
    for r in log:
        kinds[kind_of(which, r)] = kinds.get(kind_of(which, r), 0) + 1
    return {"total": len(log), "429": sum(r["status"] == 429 for r in log), "kinds": kinds, "log": log}


def kind_of(which: str, r: dict) -> str:
    path, method = r["path"], r["method"]
    if which == "ghl":
        for part, name in (
            ("/contacts/search", "search"),
            ("/tasks/search", "tasks"),
            ("/notes", "notes"),
            ("/appointments", "appointments"),
            ("/calendars", "calendars"),
            ("/locations/", "location"),
        ):
            if part in path:
                return name
        return f"{method} contact" if path.startswith("/contacts/") else f"{method} {path}"
    tail = path.split("/v1", 1)[-1]
    if tail.startswith("/Customers"):
        if method == "GET":
            return "lookup" if "email=" in r["query"] else "GET customers"
        return f"{method} customers"
    return f"{method} {tail.split('/')[1] if '/' in tail else tail}"


# ---- one sync, in its own process -------------------------------------------------------------------


def notes_off_tenants(work: Path) -> Path:
    """A tenants file whose default tenant switches the notes part of the CRM summary off.

    Through the documented per-tenant mappings override (``mappings_dir`` in include/tenants.yaml):
    a folder holding a copy of include/mappings/crm_to_store.yaml with ``notes: enabled: false``.
    The sync then makes no per-contact ``GET /contacts/{id}/notes`` (GHL has no bulk form of it),
    so a first sync costs ~33 GHL calls per 1,000 contacts instead of ~1,030; Comments carries
    tasks and appointments but no latest note. Everything else is the default configuration.
    """
    import yaml

    folder = (work / "mappings-notes-off").resolve()  # the tenants file reads it relative to include/
    folder.mkdir(parents=True, exist_ok=True)
    doc = yaml.safe_load((ROOT / "include" / "mappings" / "crm_to_store.yaml").read_text(encoding="utf-8"))
    doc["notes"]["enabled"] = False
    (folder / "crm_to_store.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    tenants = work / "tenants-notes-off.yaml"
    tenants.write_text(yaml.safe_dump({"tenants": [{"name": "default", "mappings_dir": str(folder)}]}))
    return tenants


def sync_env(
    sbx: Sandbox,
    work: Path,
    *,
    limits: bool,
    scale: float = 1.0,
    data_docs: bool = False,
    ghl_rate: float | None = None,
    tenants_file: Path | None = None,
) -> dict:
    env = dict(os.environ)
    env.update(sbx.env())
    env.update(
        {
            "AIRFLOW_HOME": str(work / "airflow"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "GHL_S4S_DATA_DIR": str(work / "data"),
            "GHL_S4S_STATE_URL": f"sqlite:///{work / 'state.db'}",
            "GHL_S4S_WATERMARK_LAG_SECONDS": "0",
            "GHL_S4S_DATA_DOCS": "1" if data_docs else "0",
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")]),
        }
    )
    if tenants_file is not None:
        env["GHL_S4S_TENANTS_FILE"] = str(tenants_file)
    if limits:  # the client's own budgets, time-scaled like the simulators'
        env.update(
            {
                "GHL_S4S_GHL_RATE_PER_S": str((ghl_rate or GHL_CLIENT_RATE) * scale),
                "GHL_S4S_GHL_WINDOW_SECONDS": str(GHL_WINDOW_S / scale),
                "GHL_S4S_SHIFT4SHOP_RATE_PER_S": str(S4S_LEAK * scale),
            }
        )
    else:
        for name in ("GHL_BURST", "GHL_RATE_PER_S", "SHIFT4SHOP_BURST", "SHIFT4SHOP_RATE_PER_S"):
            env[f"GHL_S4S_{name}"] = "1000000"
    return env


def run_child(args: list[str], env: dict) -> tuple[dict, float, float]:
    """Run ``bench.py <args>``; returns (its JSON answer, wall seconds, peak RSS of its tree in MB)."""
    import psutil

    started = time.monotonic()
    logs = Path(env["GHL_S4S_DATA_DIR"]).parent / "logs"
    logs.mkdir(exist_ok=True)
    name = "-".join(a.strip("-") for a in args)
    err = (logs / f"{name}.log").open("a")
    # The samples go to a file as they come (a new peak, else every 30 s), flushed: a run stopped
    # half-way (killed, out of time) still tells its peak so far; its stage progress is in err.
    samples = (logs / f"{name}-rss.tsv").open("a")
    samples.write("elapsed_s\trss_mb\tpeak_mb\tload\n")
    proc = subprocess.Popen(
        [sys.executable, __file__, *args], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True
    )
    peak, written, last_line = 0, 0, 0.0
    ps = psutil.Process(proc.pid)
    while proc.poll() is None:
        rss = 0
        try:
            tree = [ps, *ps.children(recursive=True)]
            rss = sum(p.memory_info().rss for p in tree if p.is_running())
            peak = max(peak, rss)
        except psutil.Error:
            pass
        now = time.monotonic()
        if peak >= written + 2**20 or now - last_line >= 30:
            samples.write(f"{now - started:.1f}\t{rss / 2**20:.0f}\t{peak / 2**20:.0f}\t{uptime()}\n")
            samples.flush()
            written, last_line = peak, now
        time.sleep(0.1)
    samples.write(f"{time.monotonic() - started:.1f}\tend\t{peak / 2**20:.0f}\t{uptime()}\n")
    samples.close()
    out = proc.stdout.read()
    wall = time.monotonic() - started
    err.close()
    if proc.returncode:
        raise RuntimeError(f"bench.py {' '.join(args)} exited {proc.returncode}; see {err.name}")
    answer = json.loads(out.strip().splitlines()[-1])
    return answer, wall, max(peak / 2**20, answer.get("ru_maxrss_mb", 0))


def _maxrss_mb() -> float:
    self_ = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(self_, kids) / 1024


def child_sync(run_id: str) -> dict:
    """The sync's task functions in the DAG's order (dags/ghl_shift4shop_sync.py)."""
    from ghl_shift4shop import sync

    stages: dict[str, float] = {}

    started = time.monotonic()

    def timed(name, fn, *a):
        t = time.monotonic()
        result = fn(*a)
        stages[name] = stages.get(name, 0.0) + time.monotonic() - t
        print(  # progress, to the log file: how far a run got if it is stopped
            f"bench-progress {time.monotonic() - started:.1f} s: {name} done ({time.monotonic() - t:.1f} s), "
            f"maxrss {_maxrss_mb():.0f} MB, {uptime()}",
            file=sys.stderr,
            flush=True,
        )
        return result

    window = timed("plan_window", sync.plan_window, run_id, "scheduled", (None, None), {})
    extracted = timed("extract", sync.extract, window)
    validated = [timed("validate", sync.validate, ref, run_id) for ref in extracted["batches"]]
    timed("quality_gate", sync.quality_gate, validated, None)
    fetched = [timed("fetch_children", sync.fetch_children, ref, window) for ref in validated]
    transformed = [timed("transform", sync.transform, ref, run_id) for ref in fetched]
    loaded = timed("load", sync.load, transformed, run_id)
    crm = timed("load_crm", sync.load_crm, fetched, run_id)
    mark = timed("commit_watermark", sync.commit_watermark, window, extracted, loaded, crm)
    summary = timed("report", sync.report, run_id, mark)
    return {"summary": summary, "stages": stages, "ru_maxrss_mb": _maxrss_mb()}


def child_naive(since: str | None, limit: int) -> dict:
    """The per-record flow the sync replaced: search, then per contact GET, look up by e-mail, PUT or POST."""
    from ghl_shift4shop.ghl.hook import GhlHook
    from ghl_shift4shop.mapping import load_mapping
    from ghl_shift4shop.settings import load_settings
    from ghl_shift4shop.shift4shop.hook import Shift4ShopHook
    from ghl_shift4shop.state import StateStore
    from ghl_shift4shop.transform import transform_records

    settings = load_settings()
    ghl = GhlHook(settings=settings, token_state=StateStore(f"sqlite:///{settings.data_dir / 'naive.db'}"))
    store = Shift4ShopHook(settings=settings)
    mapping = load_mapping(settings.mappings_dir / "contacts_to_customers.yaml")
    done = 0

    def one(contact_id: str) -> None:
        contact = ghl.get_contact(contact_id)
        payload = transform_records([contact], mapping)[0]["payload"]
        email = payload.get(mapping.match_field)
        found = store.find_customers_by_email(email) if email else []
        if found:
            store.update_customers([{**payload, "CustomerID": found[0]["CustomerID"]}])
        else:
            store.create_customer({**payload, "Password": "x"})

    _ = ghl.session
    with ThreadPoolExecutor(max_workers=8) as pool:
        for page in ghl.iter_contacts_updated(
            since=since or "1970-01-01T00:00:00.000Z", until=None, page_limit=GHL_PAGE
        ):
            ids = [c["id"] for c in page.contacts if c.get("id")][: limit - done]
            list(pool.map(one, ids))
            done += len(ids)
            if done >= limit:
                break
    return {"contacts": done, "ru_maxrss_mb": _maxrss_mb()}


# ---- phases -----------------------------------------------------------------------------------------


def lower_bounds(n: int, valid: int, tasks: int, calendars: int, *, notes: bool = True) -> dict:
    """Fewest calls each API allows for n contacts changed (``valid`` of them pass validation, and
    they have ``tasks`` tasks): the search's pages; task searches of 100 ids and 100 tasks a page;
    one notes call per valid contact (none with the notes part switched off); the calendar list and
    one events call per calendar; the store's bulk writes of 100 (PUT, or POST as the sync sends
    new customers)."""
    ghl = {
        "search": math.ceil(n / GHL_PAGE),
        "tasks": max(math.ceil(valid / TASK_IDS_PER_SEARCH), math.ceil(tasks / TASK_SEARCH_LIMIT)),
        "notes": valid if notes else 0,
        "calendars": 1 + calendars,
    }
    return {"ghl": sum(ghl.values()), "ghl_kinds": ghl, "s4s": math.ceil(valid / STORE_CHUNK)}


def touch(sbx: Sandbox, share: float, seed: int = 11) -> list[str]:
    """Change a share of the contacts through the GHL API (a new city), as a user would."""
    rows = [{"id": c["id"]} for c in sbx.admin_list("contacts")]
    picks = random.Random(seed).sample(rows, max(1, int(len(rows) * share)))
    headers = {"Authorization": f"Bearer {GHL_TOKEN}", "Version": "2021-07-28"}
    session = requests.Session()

    def put(c):
        session.put(sbx.url("ghl", f"/contacts/{c['id']}"), json={"city": "Reykjavík"}, headers=headers, timeout=60)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, picks))
    return [c["id"] for c in picks]


def calls_phase(n: int, work: Path, args) -> dict:
    seeding = time.monotonic()
    sbx = Sandbox(work, n)
    try:
        seeded = time.monotonic() - seeding
        notes = not args.notes_off
        calendars = sbx.calendars()
        # Per contact only for the delta's bound; a first sync's needs the total (a cheap call at 1M).
        tasks = None if args.first_only else sbx.tasks_per_contact()
        tasks_total = sbx.tasks_total() if tasks is None else sum(tasks.values())
        sbx.clear()
        tenants_file = None if notes else notes_off_tenants(work)
        env = sync_env(sbx, work, limits=False, data_docs=args.data_docs, tenants_file=tenants_file)
        res: dict = {"n": n, "calendars": calendars, "notes": notes, "seed_s": seeded}
        print(f"  simulators seeded with {n:,} contacts in {seeded:.0f} s ({uptime()}); first sync ...", flush=True)
        load = uptime()
        first, wall, rss = run_child(["_sync", "--run-id", "first"], env)
        res["first"] = {"sync": count_calls(sbx), "wall": wall, "rss": rss, "stages": first["stages"], "load": load}
        res["first"]["summary"] = first["summary"]
        check_logs_complete(res["first"]["sync"], first["summary"])
        valid = first["summary"]["valid"]
        res["first"]["lb"] = lower_bounds(n, valid, tasks_total, calendars, notes=notes)
        if args.naive_max:
            res["first"]["naive"] = naive(sbx, env, None, min(n, args.naive_max))
        if args.first_only:
            return res
        time.sleep(1.1)  # the touched contacts' dateUpdated must be after the first run's watermark
        t0 = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - 0.5))
        changed_ids = touch(sbx, args.delta_share)
        changed = len(changed_ids)
        sbx.clear()
        load = uptime()
        delta, wall, rss = run_child(["_sync", "--run-id", "delta"], env)
        res["delta"] = {"sync": count_calls(sbx), "wall": wall, "rss": rss, "stages": delta["stages"], "load": load}
        res["delta"].update(summary=delta["summary"], changed=changed)
        check_logs_complete(res["delta"]["sync"], delta["summary"])
        res["delta"]["lb"] = lower_bounds(
            changed, delta["summary"]["valid"], sum(tasks.get(c, 0) for c in changed_ids), calendars, notes=notes
        )
        if args.naive_max:
            res["delta"]["naive"] = naive(sbx, env, t0, min(changed, args.naive_max))
        return res
    finally:
        sbx.stop()


def check_logs_complete(calls: dict, summary: dict) -> None:
    """The simulators keep their last 200,000 requests (sandbox/common.py RequestLog): a sync that
    made more is under-counted. The sync counts its own calls; where they differ the row says so
    (a warning, not an error: the run's RSS and wall time still stand)."""
    for which, key in (("ghl", "calls_ghl"), ("s4s", "calls_shift4shop")):
        if key in summary and calls[which]["total"] != summary[key]:
            calls[which]["mismatch"] = summary[key]
            print(
                f"WARNING {which}: the simulator logged {calls[which]['total']:,} calls, the sync counted "
                f"{summary[key]:,} (the request log keeps the last 200,000; use --notes-off at 1M)",
                file=sys.stderr,
                flush=True,
            )


def naive(sbx: Sandbox, env: dict, since: str | None, limit: int) -> dict:
    """The naive flow's calls over the first ``limit`` contacts of the search (per 1,000 it is linear)."""
    answer, wall, _ = run_child(["_naive", "--limit", str(limit), *(["--since", since] if since else [])], env)
    calls = count_calls(sbx)
    return {"calls": calls, "contacts": answer["contacts"], "wall": wall}


def throughput_phase(rows: int, work: Path, batch: int, two_procs: bool = True) -> dict:
    """validate + transform on generated contacts, in this process, imports excluded; cProfile'd once."""
    import cProfile
    import pstats

    from ghl_shift4shop import validate as validate_stage
    from ghl_shift4shop.batches import write_jsonl
    from ghl_shift4shop.crm_config import load_crm_config
    from ghl_shift4shop.ghl.hook import normalize_search_item
    from ghl_shift4shop.mapping import load_mapping
    from ghl_shift4shop.state import StateStore
    from ghl_shift4shop.transform import transform_batch

    from sandbox.seed import generate_contacts

    include = ROOT / "include"
    mapping = load_mapping(include / "mappings" / "contacts_to_customers.yaml")
    crm = load_crm_config(include / "mappings")
    state = StateStore(f"sqlite:///{work / 'tp-state.db'}")
    data = work / "tp"
    refs = []
    contacts = generate_contacts(rows, seed=3, dirty_share=0.02, location_id=LOCATION_ID)
    for b, start in enumerate(range(0, rows, batch), start=1):
        path = data / f"extract-{b}.jsonl"
        write_jsonl(path, [normalize_search_item(c) for c in contacts[start : start + batch]])
        refs.append({"batch": b, "path": str(path), "rows": len(contacts[start : start + batch])})
    del contacts

    def run(run_id: str) -> tuple[float, float]:
        from ghl_shift4shop import mapping as mapping_module

        if hasattr(mapping_module, "_phone"):
            mapping_module._phone.cache_clear()  # each run parses its numbers afresh, as a new task would
        tv = tt = 0.0
        cpu = time.process_time()
        for ref in refs:
            t = time.monotonic()
            v = validate_stage.validate_batch(
                ref, state=state, data_dir=data, expectations_dir=include / "expectations", run_id=run_id,
                data_docs=False,
            )  # fmt: skip
            tv += time.monotonic() - t
            t = time.monotonic()
            transform_batch({**v, "children": {}}, mapping=mapping, data_dir=data, run_id=run_id, crm=crm, state=state)
            tt += time.monotonic() - t
        cpu_s[run_id] = time.process_time() - cpu
        return tv, tt

    cpu_s: dict[str, float] = {}
    run("warm-up")  # GX, pandas and phonenumbers imported
    load = uptime()
    tv, tt = run("timed")
    prof = cProfile.Profile()
    prof.enable()
    run("profiled")
    prof.disable()
    stats = pstats.Stats(prof)
    total = sum(v[3] for v in stats.stats.values() if False) or stats.total_tt
    top = {}  # cumulative time of each, over the profiled pass (they overlap: not meant to add up)
    for name, patterns in (
        ("GX run_suite", ("run_suite",)),
        ("Mapping.apply_columns", ("apply_columns",)),
        ("normalize_phone", ("normalize_phone",)),
        ("clean_text", ("clean_text",)),
        ("JSONL read", ("read_jsonl", "read_jsonl_float_free")),
        ("JSONL write", ("write_jsonl",)),
        ("msgspec encode (validated rows)", ("dumps_float_free",)),
        ("DataFrame.from_records", ("from_records",)),
        ("derive_columns", ("derive_columns",)),
        ("suite_frame", ("suite_frame",)),
        ("crm_enrichment", ("crm_enrichment",)),
        ("state DB", ("quarantine", "resolve_quarantine", "add_stats", "get_parts")),
    ):
        cum = sum(max((v[3] for k, v in stats.stats.items() if k[2] == p), default=0.0) for p in patterns)
        top[name] = cum / total if total else 0.0
    two = two_process_throughput(refs, data, work / "tp-state.db") if two_procs else None
    return {
        "rows": rows,
        "validate_s": tv,
        "transform_s": tt,
        "cpu_s": cpu_s["timed"],
        "load": load,
        "shares": top,
        "two_processes": two,
    }


def _tp_batch(job: tuple[dict, str, str, str]) -> float:
    """One batch through validate + transform in a pool worker (as a mapped Airflow task runs one); CPU s."""
    from ghl_shift4shop import validate as validate_stage
    from ghl_shift4shop.crm_config import load_crm_config
    from ghl_shift4shop.mapping import load_mapping
    from ghl_shift4shop.state import StateStore
    from ghl_shift4shop.transform import transform_batch

    ref, data, db, run_id = job
    include = ROOT / "include"
    cached = _TP_WORKER.get(db)
    if cached is None:  # once per worker process: the state DB connection, the mapping, the CRM config
        import logging

        logging.disable(logging.WARNING)  # as in the bench's own process: the stages log per batch
        cached = _TP_WORKER[db] = (
            StateStore(f"sqlite:///{db}"),
            load_mapping(include / "mappings" / "contacts_to_customers.yaml"),
            load_crm_config(include / "mappings"),
        )
    state, mapping, crm = cached
    cpu = time.process_time()
    v = validate_stage.validate_batch(
        ref, state=state, data_dir=Path(data), expectations_dir=include / "expectations", run_id=run_id,
        data_docs=False,
    )  # fmt: skip
    transform_batch({**v, "children": {}}, mapping=mapping, data_dir=Path(data), run_id=run_id, crm=crm, state=state)
    return time.process_time() - cpu


_TP_WORKER: dict = {}


def two_process_throughput(refs: list[dict], data: Path, db: Path) -> dict:
    """The batches over two worker processes (both cores), warm: a warm-up pass, then the timed one."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(_tp_batch, [(r, str(data), str(db), "warm-up-2p") for r in refs]))
        load = uptime()
        t = time.monotonic()
        cpu = sum(pool.map(_tp_batch, [(r, str(data), str(db), "timed-2p") for r in refs]))
        wall = time.monotonic() - t
    return {"wall_s": wall, "cpu_s": cpu, "load": load}


def budget_phase(n: int, work: Path, scale: float, args) -> dict:
    """A first sync against the documented limits, time-scaled ``scale`` times (same counts, windows /scale)."""
    sbx = Sandbox(work, n, limits=True, profile=args.budget_profile)
    try:
        ghl = {"rate_window": args.budget_window} if args.budget_window else {}
        sbx.configure(
            "ghl", rate_limit=True, burst_max=GHL_BURST, burst_window_ms=round(GHL_WINDOW_S * 1000 / scale), **ghl
        )
        sbx.configure("s4s", rate_limit=True, bucket_size=S4S_BUCKET, leak_per_s=S4S_LEAK * scale)
        window_kind = requests.get(sbx.url("ghl", "/_sim/config"), timeout=60).json()["rate_window"]
        sbx.clear()
        env = sync_env(sbx, work, limits=True, scale=scale, data_docs=args.data_docs, ghl_rate=args.budget_ghl_rate)
        load = uptime()
        answer, wall, _ = run_child(["_sync", "--run-id", "budget"], env)
        calls = count_calls(sbx)
        for which in ("ghl", "s4s"):  # the raw arrivals, for a closer look at a phase afterwards
            rows = [{"ts": r["ts"], "kind": kind_of(which, r), "status": r["status"]} for r in calls[which]["log"]]
            (work / f"requests-{which}.json").write_text(json.dumps(rows))
        ghl_rate, s4s_rate = GHL_BURST / GHL_WINDOW_S * scale, S4S_LEAK * scale
        return {
            "n": n,
            "scale": scale,
            "profile": args.budget_profile,
            "ghl_window": window_kind,
            "ghl_client_rate": args.budget_ghl_rate or GHL_CLIENT_RATE,
            "wall": wall,
            "load": load,
            "load_end": uptime(),
            "summary": answer["summary"],
            "stages": answer["stages"],
            "ghl": {
                **budget_use(calls["ghl"]["log"], ghl_rate, GHL_WINDOW_S / scale),
                "phases": phase_use(
                    "ghl",
                    calls["ghl"]["log"],
                    ghl_rate,
                    GHL_WINDOW_S / scale,
                    idle_gap=GHL_CLIENT_BURST / ((args.budget_ghl_rate or GHL_CLIENT_RATE) * scale),
                ),
            },
            "s4s": {
                **budget_use(calls["s4s"]["log"], s4s_rate, S4S_BUCKET / s4s_rate),
                "phases": phase_use(
                    "s4s",
                    calls["s4s"]["log"],
                    s4s_rate,
                    S4S_BUCKET / s4s_rate,
                    idle_gap=S4S_CLIENT_BURST / (S4S_LEAK * scale),
                ),
            },
        }
    finally:
        sbx.stop()


def budget_use(log: list[dict], rate: float, window: float) -> dict:
    """Share of the budget used over the busy phase: requests per second / the sustained rate.

    The busy phase is the longest run of calls with no gap over ``window`` seconds (the phase the
    budget binds); its first ``window`` seconds (the burst the budget allows on top) are left out.
    """
    if not log:
        return {"calls": 0}
    ts = sorted(r["ts"] for r in log)
    runs, start = [], 0
    for i in range(1, len(ts) + 1):
        if i == len(ts) or ts[i] - ts[i - 1] > window:
            runs.append((start, i - 1))
            start = i
    a, b = max(runs, key=lambda r: ts[r[1]] - ts[r[0]])
    t0 = ts[a] + window
    steady = [t for t in ts[a : b + 1] if t >= t0]
    span = ts[b] - t0
    use = (len(steady) / span / rate) if span > 0 and len(steady) > 1 else None
    return {
        "calls": len(log),
        "429": sum(r["status"] == 429 for r in log),
        "phase_s": ts[b] - ts[a],
        "steady_calls": len(steady),
        "use": use,
    }


def phase_use(
    which: str, log: list[dict], rate: float, window: float, idle_gap: float, min_windows: float = 3.0
) -> list[dict]:
    """Budget use per long phase: a phase is a run of calls of one kind (``kind_of``) with no gap
    over ``window``, lasting at least ``min_windows`` windows. Its use counts every call (of any kind)
    from the end of its first window (the burst) to its last call (n calls: n − 1 intervals), per
    second, over ``rate``.

    Runs of different kinds that overlap by more than half (the store's array POST and its
    read-back alternate) are one phase, named by all their kinds. ``idle_s`` adds up the gaps
    between calls longer than ``idle_gap`` (the client's burst / its rate: the longest pause its
    own budget makes once spent, so a longer one is the client not ready with a call),
    ``max_gap_s`` is the longest gap; with the budget binding, both stay small.
    """
    rows = sorted(log, key=lambda r: r["ts"])
    ts = [r["ts"] for r in rows]
    by_kind: dict[str, list[float]] = {}
    for r in rows:
        by_kind.setdefault(kind_of(which, r), []).append(r["ts"])
    runs = []
    for kind, stamps in by_kind.items():
        start = 0
        for i in range(1, len(stamps) + 1):
            if i == len(stamps) or stamps[i] - stamps[i - 1] > window:
                if stamps[i - 1] - stamps[start] >= min_windows * window:
                    runs.append((kind, stamps[start], stamps[i - 1]))
                start = i
    kept: list[dict] = []
    for kind, a, b in sorted(runs, key=lambda r: r[1] - r[2]):  # longest first
        for k in kept:
            if min(b, k["b"]) - max(a, k["a"]) > 0.5 * (b - a):
                k["kinds"].append(kind)
                break
        else:
            kept.append({"kinds": [kind], "a": a, "b": b})
    out = []
    for k in sorted(kept, key=lambda k: k["a"]):
        a, b = k["a"], k["b"]
        inside = [r for r in rows if a <= r["ts"] <= b]
        t0 = a + window
        steady = [t for t in ts if t0 <= t <= b]
        gaps = [y - x for x, y in zip(ts, ts[1:], strict=False) if a <= x and y <= b]
        out.append(
            {
                "kinds": "+".join(k["kinds"]),
                "start_s": a - ts[0],
                "phase_s": b - a,
                "calls": len(inside),
                "429": sum(r["status"] == 429 for r in inside),
                "use": (len(steady) - 1) / (b - t0) / rate if b - t0 > 0 and len(steady) > 1 else None,
                "idle_s": sum(g for g in gaps if g > idle_gap),
                "max_gap_s": max(gaps, default=0.0),
            }
        )
    return out


# ---- the table --------------------------------------------------------------------------------------


def per_k(calls: int, n: int) -> str:
    return f"{1000 * calls / n:,.0f}" if n else "-"


def print_report(results: dict) -> None:
    if results.get("calls"):
        print_calls(results)
    if "throughput" in results:
        print_throughput(results["throughput"])
    if "budget" in results:
        print_budget(results["budget"])


def print_calls(results: dict) -> None:
    print("\n## API calls per 1,000 contacts (sync / lower bound / naive)")
    print(f"{'size':>9} {'phase':<6} {'contacts':>9} {'GHL sync':>9} {'GHL lb':>7} {'GHL naive':>10} "
          f"{'store sync':>11} {'store lb':>9} {'store naive':>12} {'notes':>5}  "
          "GHL / store calls by kind")  # fmt: skip
    for r in results.get("calls", []):
        for phase in [x for x in ("first", "delta") if x in r]:
            p = r[phase]
            n = r["n"] if phase == "first" else p["changed"]
            nv = p.get("naive") or {}
            ghl_n = per_k(nv["calls"]["ghl"]["total"], nv["contacts"]) if nv else "not run"
            s4s_n = per_k(nv["calls"]["s4s"]["total"], nv["contacts"]) if nv else "not run"
            ghl, s4s = per_k(p["sync"]["ghl"]["total"], n), per_k(p["sync"]["s4s"]["total"], n)
            print(
                f"{r['n']:>9,} {phase:<6} {n:>9,} {ghl:>9} {per_k(p['lb']['ghl'], n):>7} "
                f"{ghl_n:>10} {s4s:>11} {per_k(p['lb']['s4s'], n):>9} {s4s_n:>12} {notes_label(r):>5}  "
                f"{p['sync']['ghl']['kinds']} / {p['sync']['s4s']['kinds']}"
                + (f" (naive over {nv['contacts']:,})" if nv else "")
            )
    print("\n## Full sync, limits off (peak RSS of the sync process; wall incl. imports)")
    print(
        f"{'size':>9} {'phase':<6} {'peak RSS MB':>12} {'wall s':>8} {'est. at real limits s':>22} {'notes':>5}  "
        "machine / stages s"
    )
    for r in results.get("calls", []):
        for phase in [x for x in ("first", "delta") if x in r]:
            p = r[phase]
            g, s = p["sync"]["ghl"]["total"], p["sync"]["s4s"]["total"]
            est = g * GHL_WINDOW_S / GHL_BURST + max(0, s - S4S_BUCKET) / S4S_LEAK
            stages = {k: round(v, 1) for k, v in p["stages"].items() if v >= 0.05}
            print(
                f"{r['n']:>9,} {phase:<6} {p['rss']:>12,.0f} {p['wall']:>8,.1f} {est:>22,.0f} {notes_label(r):>5}  "
                f"{p['load']} {stages}"
            )
    for notes in (True, False):  # ratios like for like only: notes on with on, off with off
        sizes = {r["n"]: r["first"]["rss"] for r in results.get("calls", []) if r.get("notes", True) == notes}
        if len(sizes) > 1:
            ks = sorted(sizes)
            print(
                f"RSS ratios (notes {'on' if notes else 'off'}): "
                + ", ".join(
                    f"RSS({b:,})/RSS({a:,}) = {sizes[b] / sizes[a]:.2f}" for a, b in zip(ks, ks[1:], strict=False)
                )
            )


def notes_label(r: dict) -> str:
    return "on" if r.get("notes", True) else "off"


def print_throughput(t: dict) -> None:
    total = t["validate_s"] + t["transform_s"]
    print("\n## validate + transform (in process, imports excluded, phone cache cleared before the timed pass)")
    print(
        f"{t['rows']:,} contacts: {t['rows'] / total:,.0f} contacts/s "
        f"(validate {t['rows'] / t['validate_s']:,.0f}/s, transform {t['rows'] / t['transform_s']:,.0f}/s) "
        f"{t['load']}; {t['rows'] / t['cpu_s']:,.0f} contacts per CPU-second (less sensitive to the load)"
    )
    print(
        "share of profiled time (cumulative, overlapping): " + ", ".join(f"{k} {v:.0%}" for k, v in t["shares"].items())
    )
    two = t.get("two_processes")
    if two:
        print(
            f"two worker processes over the batches (both cores, warm): {t['rows'] / two['wall_s']:,.0f} contacts/s "
            f"wall ({two['wall_s']:.2f} s), {t['rows'] / two['cpu_s']:,.0f} contacts per CPU-second of the workers "
            f"({two['load']})"
        )


def print_budget(b: dict) -> None:
    print(
        f"\n## Rate-budget use, first sync of {b['n']:,} at the documented limits time-scaled x{b['scale']:g} "
        f"(profile {b.get('profile')}, GHL window {b.get('ghl_window')}, client GHL budget "
        f"{b.get('ghl_client_rate')}/s unscaled; {b['load']} at start, "
        f"{b.get('load_end', '?')} at end; wall {b['wall']:.0f} s, "
        f"failed streams: {b['summary'].get('failed_streams')})"
    )
    for which in ("ghl", "s4s"):
        u = b[which]
        use = f"{u['use']:.0%}" if u.get("use") is not None else "n/a (phase too short)"
        share = u["429"] / u["calls"] if u["calls"] else 0
        print(
            f"{which:>5}: {u['calls']:,} calls, busy phase {u.get('phase_s', 0):.0f} s, "
            f"steady-state use of the documented rate {use}, 429s {u['429']} ({share:.2%})"
        )
        for p in u.get("phases", []):
            pu = f"{p['use']:.1%}" if p.get("use") is not None else "n/a"
            print(
                f"       phase {p['kinds']:<28} from {p['start_s']:>6.1f} s, {p['phase_s']:>6.1f} s, "
                f"{p['calls']:>6,} calls, use {pu:>6}, 429s {p['429']} ({p['429'] / max(1, p['calls']):.2%}), "
                f"idle {p['idle_s']:.1f} s, longest gap {p['max_gap_s']:.2f} s"
            )
    stages = b.get("stages") or {}
    print("stages s: " + ", ".join(f"{k} {v:.1f}" for k, v in stages.items()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd")
    s = sub.add_parser("_sync")
    s.add_argument("--run-id", required=True)
    nv = sub.add_parser("_naive")
    nv.add_argument("--since")
    nv.add_argument("--limit", type=int, required=True)
    ap.add_argument("--sizes", default="1000,10000", help="contacts per size, comma-separated")
    ap.add_argument("--full", action="store_true", help="sizes 100000,1000000")
    ap.add_argument("--skip", default="", help=f"phases to skip, of {','.join(PHASES)}")
    ap.add_argument("--delta-share", type=float, default=0.1, help="share of contacts changed before the delta")
    ap.add_argument(
        "--naive-max", type=int, default=2000, help="run the naive flow over this many contacts at most (0: not at all)"
    )
    ap.add_argument("--throughput-rows", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--budget-contacts", type=int, default=5000)
    ap.add_argument("--budget-scale", type=float, default=4.0, help="time-scale of the limits (x faster)")
    ap.add_argument(
        "--budget-profile", default="lenient", help="the simulators' profile in the budget phase (strict: "
        "sliding GHL window, no Retry-After, the store refuses array POSTs so creates go one at a time)"
    )  # fmt: skip
    ap.add_argument(
        "--budget-window", choices=("fixed", "sliding"), help="the GHL window's kind (default: the profile's)"
    )
    ap.add_argument(
        "--budget-ghl-rate", type=float, help="the client's GHL budget per s, unscaled (default: the settings')"
    )
    ap.add_argument("--first-only", action="store_true", help="no delta sync (large sizes in little time)")
    ap.add_argument("--data-docs", action="store_true", help="build GX Data Docs as production does")
    ap.add_argument(
        "--notes-off",
        action="store_true",
        help="switch the notes part of the CRM summary off (a tenant mappings override of crm_to_store.yaml): "
        "no per-contact notes calls, ~33 GHL calls per 1,000 contacts; for 1M contacts in a sitting",
    )
    ap.add_argument("--json", help="also write the raw figures here")
    ap.add_argument("--work", help="keep the simulators' and the sync's files here (default: a temporary folder)")
    args = ap.parse_args()

    if args.cmd in ("_sync", "_naive"):
        answer_to = os.fdopen(os.dup(1), "w")
        os.dup2(2, 1)  # whatever the stages print (structlog writes to stdout) goes to the log file
        answer = child_sync(args.run_id) if args.cmd == "_sync" else child_naive(args.since, args.limit)
        answer_to.write(json.dumps(answer, default=str) + "\n")
        answer_to.close()
        return 0

    import logging

    logging.disable(logging.WARNING)  # GX and the stages log per batch; the table is the output
    sizes = [100_000, 1_000_000] if args.full else [int(x) for x in args.sizes.split(",") if x]
    skip = {x for x in args.skip.split(",") if x}
    results: dict = {"machine": f"{os.cpu_count()} cores, {uptime()} at start"}
    print(f"bench: sizes {sizes}, {results['machine']}", flush=True)
    with tempfile.TemporaryDirectory(prefix="ghl-s4s-bench-") as tmp:
        work = Path(args.work or tmp).resolve()
        work.mkdir(parents=True, exist_ok=True)
        if "calls" not in skip:
            results["calls"] = []
            for n in sizes:
                d = work / f"n{n}"
                d.mkdir()
                print(f"calls/RSS/wall at {n:,} contacts ...", flush=True)
                results["calls"].append(calls_phase(n, d, args))
                with contextlib.redirect_stdout(sys.stderr):  # progress; the table comes once, at the end
                    print_report({"calls": results["calls"][-1:]})
        if "throughput" not in skip:
            print(f"throughput over {args.throughput_rows:,} contacts ...", flush=True)
            (work / "tp").mkdir()
            results["throughput"] = throughput_phase(args.throughput_rows, work, args.batch)
        if "budget" not in skip:
            print(f"rate budgets: {args.budget_contacts:,} contacts, limits x{args.budget_scale:g} ...", flush=True)
            (work / "budget").mkdir()
            results["budget"] = budget_phase(args.budget_contacts, work / "budget", args.budget_scale, args)
    print_report(results)
    if args.json:
        for r in results.get("calls", []):
            for phase in [x for x in ("first", "delta") if x in r]:
                for part in (r[phase]["sync"], (r[phase].get("naive") or {}).get("calls") or {}):
                    for v in part.values():
                        v.pop("log", None)
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
