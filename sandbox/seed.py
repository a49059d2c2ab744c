"""Deterministic, realistic GHL contacts for seeding the simulator (and anything else that needs them).

Owns ``generate_contacts``: contacts in the GHL API v2 *read* shape (what ``GET /contacts/{id}``
returns), drawn from several Faker locales, with a configurable share of records that are dirty in
the ways real CRM data is dirty. Dirty records carry no marker field; they look like API data.
``generate_crm`` adds the contacts' tasks, notes, calendars and appointments (calendar events).

Speed: Faker is slow per call (~50 us), so it only fills small per-locale pools of names, streets,
cities and companies once; records are then composed from those pools with one seeded
``random.Random``. 50k contacts take a couple of seconds and the output depends only on the arguments.
"""

from __future__ import annotations

import random
import string
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from faker import Faker

__all__ = ["CUSTOM_FIELD_IDS", "DIRTY_KINDS", "TAG_VOCABULARY", "generate_contacts", "generate_crm"]

_ALNUM = string.ascii_letters + string.digits

TAG_VOCABULARY: tuple[str, ...] = (
    "vip",
    "wholesale",
    "newsletter",
    "lead-hot",
    "lead-warm",
    "lead-cold",
    "trade-show",
    "returning",
    "referral",
    "webinar",
    "abandoned-cart",
    "b2b",
    "retail",
    "loyalty",
)

SOURCES: tuple[str, ...] = (
    "public api",
    "form: contact us",
    "facebook lead ad",
    "google ads",
    "csv import",
    "referral",
    "walk-in",
    "zapier",
    "chat widget",
    "shopify",
)

# A location's custom fields have stable ids; they do not depend on the seed.
CUSTOM_FIELD_IDS: dict[str, str] = {
    "loyalty_tier": "Xq3LmZ8pTa0RcVb2NwKe",
    "lifetime_value": "H7uYt2GdPq9WsLx4MbZc",
    "preferred_store": "kR5vNn1QeJ8oAs6TyUiP",
    "marketing_opt_in": "Bz0FgH4jKl7QwErTyU2i",
}
_CF_VALUES: dict[str, tuple[str, ...]] = {
    "loyalty_tier": ("bronze", "silver", "gold", "platinum"),
    "preferred_store": ("downtown", "airport", "online", "mall", "outlet"),
    "marketing_opt_in": ("yes", "no"),
}

# Dirty kinds, applied one per dirty record, cycling in this order.
DIRTY_KINDS: tuple[str, ...] = (
    "missing_email",
    "invalid_email",
    "duplicate_email_case",
    "long_name",
    "long_address",
    "odd_phone",
    "emoji_rtl_name",
    "control_chars",
)


@dataclass(frozen=True)
class _Locale:
    code: str
    country: str
    weight: int
    timezones: tuple[str, ...]
    domains: tuple[str, ...]


_LOCALES: tuple[_Locale, ...] = (
    _Locale(
        "en_US",
        "US",
        45,
        ("America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles", "America/Phoenix"),
        ("gmail.com", "yahoo.com", "outlook.com", "icloud.com", "aol.com"),
    ),
    _Locale("en_GB", "GB", 12, ("Europe/London",), ("gmail.com", "hotmail.co.uk", "btinternet.com", "yahoo.co.uk")),
    _Locale("de_DE", "DE", 10, ("Europe/Berlin",), ("gmx.de", "web.de", "t-online.de", "gmail.com")),
    _Locale("fr_FR", "FR", 8, ("Europe/Paris",), ("orange.fr", "free.fr", "laposte.net", "gmail.com")),
    _Locale(
        "es_MX", "MX", 10, ("America/Mexico_City", "America/Monterrey"), ("gmail.com", "hotmail.com", "yahoo.com.mx")
    ),
    _Locale("ja_JP", "JP", 8, ("Asia/Tokyo",), ("gmail.com", "yahoo.co.jp", "docomo.ne.jp", "icloud.com")),
    _Locale("ar_AA", "AE", 7, ("Asia/Dubai",), ("gmail.com", "hotmail.com", "outlook.com")),
)

# Faker's ar_AA falls back to en_US addresses ("1777 <arabic> Court"), so UAE addresses are listed here.
_AE_CITIES = ("Dubai", "Abu Dhabi", "Sharjah", "Ajman", "Al Ain", "Ras Al Khaimah", "Fujairah")
_AE_STATES = ("Dubai", "Abu Dhabi", "Sharjah", "Ajman", "Ras Al Khaimah", "Fujairah")
_AE_STREETS = (
    "Sheikh Zayed Road",
    "Al Wasl Road",
    "Jumeirah Beach Road",
    "Al Khaleej Street",
    "Hamdan Street",
    "Corniche Road",
    "King Faisal Street",
    "Al Rigga Road",
)
_AE_COMPANIES = (
    "Al Noor Trading LLC",
    "Gulf Star FZE",
    "Emirates Home Supplies",
    "Desert Rose Boutique",
    "Al Safa Group",
)

_US_AREA_CODES = (
    "201", "206", "212", "213", "214", "303", "305", "310", "312", "404", "415", "469", "503", "512",
    "602", "615", "617", "702", "704", "713", "718", "720", "805", "813", "858", "917", "919", "972",
)  # fmt: skip

_FR_MOBILE = ("60", "61", "62", "64", "65", "66", "67", "68", "75", "76", "77", "78")  # 063x has gaps

# Realistic long values for the "too long" dirty kinds.
_LONG_FIRST = "Maria Guadalupe Fernanda Alejandra Concepcion de los Angeles"
_LONG_LAST = "von Hohenzollern-Sigmaringen und Schwarzenberg-Lichtenstein"
_ODD_PHONES = ("(555) 123-4567 ext 9", "0044 20 7946 0958", "call me", "555.867.5309 (mobile)", "+1 (415) 555-0100 x22")
_INVALID_EMAILS = ("john at example", "a@b", "mary.smith@gmail", "info@@shop.com", "no-reply")
_EMOJI_RTL_NAMES = (
    ("Sam 🚀", "Rocket ✨"),
    ("\u200fדוד", "כהן"),
    ("😀", "Smith"),
    ("محمد", "Cohen \u202eolleh"),
    ("Ana 🌸", "\u05dc\u05d5\u05d9"),
)
_CONTROL_NAMES = (("Jo\x00hn", "Doe"), ("Ann\te", "Mar\nie"), ("\x1bMarc", "Lévy\r"), ("Bob\x07", "\x0bTaylor"))


class _Pools:
    """Per-locale value pools filled once from Faker (the slow part), then sampled cheaply."""

    def __init__(self, seed: int, size: int) -> None:
        self.by_locale: dict[str, dict[str, list]] = {}
        for i, loc in enumerate(_LOCALES):
            fake = Faker(loc.code)
            fake.seed_instance(seed * 1_000 + i)
            self.by_locale[loc.code] = self._fill(fake, loc, size)

    @staticmethod
    def _fill(fake: Faker, loc: _Locale, size: int) -> dict[str, list]:
        pools: dict[str, list] = {}
        if loc.code == "ja_JP":
            # Keep kanji and romanized forms paired so emails match the names.
            pools["first"] = [fake.first_name_pair() for _ in range(size)]
            pools["last"] = [fake.last_name_pair() for _ in range(size)]
            pools["street"] = [f"{fake.town()}{fake.chome()}{fake.ban()}{fake.gou()}" for _ in range(size)]
            pools["city"] = [fake.city() for _ in range(size // 2)]
            pools["state"] = [fake.prefecture() for _ in range(47)]
            pools["postcode"] = [fake.zipcode() for _ in range(size)]
            pools["company"] = [fake.company() for _ in range(size // 4)]
            return pools
        pools["first"] = [fake.first_name() for _ in range(size)]
        pools["last"] = [fake.last_name() for _ in range(size)]
        if loc.code == "ar_AA":
            pools["street"] = [f"{fake.random_int(1, 400)} {fake.random_element(_AE_STREETS)}" for _ in range(size)]
            pools["city"] = list(_AE_CITIES)
            pools["state"] = list(_AE_STATES)
            pools["postcode"] = [""]
            pools["company"] = list(_AE_COMPANIES)
            return pools
        pools["street"] = [fake.street_address().replace("\n", ", ") for _ in range(size)]
        pools["city"] = [fake.city() for _ in range(size // 2)]
        if loc.code == "en_US":
            pools["state"] = [fake.state_abbr(include_territories=False) for _ in range(100)]
        elif loc.code == "en_GB":
            pools["state"] = [fake.county() for _ in range(100)]
        elif loc.code == "fr_FR":
            pools["state"] = [fake.region() for _ in range(100)]
        else:
            pools["state"] = [fake.state() for _ in range(100)]
        pools["postcode"] = [fake.postcode() for _ in range(size)]
        pools["company"] = [fake.company() for _ in range(size // 4)]
        return pools


def _ascii_slug(text: str) -> str:
    """'Grégoire' -> 'gregoire'; used to build plausible email local parts."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return "".join(ch for ch in folded.lower() if ch.isalnum())


def _digits(rng: random.Random, k: int) -> str:
    return "".join(rng.choices(string.digits, k=k))


def _phone(rng: random.Random, country: str) -> str:
    """A valid E.164 mobile number for the country.

    The prefixes are mobile ranges that ``phonenumbers`` accepts in full (checked offline on 100k
    samples each), so no per-number validation is needed on this hot path.
    """
    if country == "US":
        return f"+1{rng.choice(_US_AREA_CODES)}{rng.randint(2, 9)}{_digits(rng, 6)}"
    if country == "GB":
        return f"+447{rng.choice('458')}{rng.randint(1, 8)}{_digits(rng, 7)}"
    if country == "DE":
        return f"+4915{rng.choice('1257')}{_digits(rng, 8)}"
    if country == "FR":
        return f"+33{rng.choice(_FR_MOBILE)}{_digits(rng, 7)}"
    if country == "MX":
        return f"+52{rng.choice(('55', '33', '81'))}{_digits(rng, 8)}"
    if country == "JP":
        return f"+81{rng.choice(('80', '90'))}{rng.randint(1, 9)}{_digits(rng, 7)}"
    return f"+9715{rng.choice('024568')}{_digits(rng, 7)}"  # AE


def _iso_ms(ms: int) -> str:
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


def _set_derived(c: dict) -> None:
    """Recompute the derived name/email fields the API keeps in sync."""
    first, last = c.get("firstName") or "", c.get("lastName") or ""
    full = f"{first} {last}".strip()
    for key in ("firstNameLowerCase", "lastNameLowerCase", "name", "contactName", "fullNameLowerCase"):
        c.pop(key, None)
    if first:
        c["firstNameLowerCase"] = first.lower()
    if last:
        c["lastNameLowerCase"] = last.lower()
    if full:
        c["name"] = full
        c["contactName"] = full
        c["fullNameLowerCase"] = full.lower()
    if c.get("email"):
        c["emailLowerCase"] = c["email"].lower()
    else:
        c.pop("emailLowerCase", None)


def _dirty_indices(n: int, dirty_share: float, rng: random.Random) -> list[int]:
    """Evenly spread indices (with a seeded jitter) for round(n * dirty_share) dirty records."""
    count = min(n, round(n * dirty_share))
    if count <= 0:
        return []
    step = n / count
    return [min(n - 1, int(i * step + rng.random() * step)) for i in range(count)]


def generate_contacts(
    n: int,
    *,
    seed: int = 42,
    dirty_share: float = 0.02,
    location_id: str,
    now: datetime | None = None,
    days: int = 365,
) -> list[dict]:
    """Return ``n`` GHL read-shape contacts, sorted by ``dateAdded`` then ``id``.

    Same arguments, same output. ``dateAdded``/``dateUpdated`` fall in the ``days`` before ``now``
    (``now`` defaults to the start of the current UTC day, so output is stable within a day; pass it
    explicitly for fully reproducible data). About 5% of contacts come from bulk imports and share
    one ``dateAdded``/``dateUpdated`` millisecond with the rest of their batch, as real imports do.
    Exactly ``round(n * dirty_share)`` records are dirty, one kind each, cycling ``DIRTY_KINDS``.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    if not 0 <= dirty_share <= 1:
        raise ValueError("dirty_share must be within [0, 1]")
    if now is None:
        now = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    elif now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    rng = random.Random(seed)
    pools = _Pools(seed, size=300)
    end_ms = int(now.timestamp() * 1000)
    start_ms = end_ms - int(timedelta(days=days).total_seconds() * 1000)
    span = max(1, end_ms - start_ms)

    locales = list(_LOCALES)
    weights = [loc.weight for loc in locales]
    user_ids = ["".join(rng.choices(_ALNUM, k=20)) for _ in range(6)]
    business_ids = [f"{rng.getrandbits(96):024x}" for _ in range(25)]
    import_batches = [
        (t, t + rng.randint(0, 3) * rng.randint(0, 86_400_000))
        for t in (start_ms + rng.randrange(span) for _ in range(max(1, n // 400)))
    ]

    used_emails: set[str] = set()
    used_phones: set[str] = set()
    used_ids: set[str] = set()
    contacts: list[dict] = []
    for _ in range(n):
        loc = rng.choices(locales, weights)[0]
        pool = pools.by_locale[loc.code]

        cid = "".join(rng.choices(_ALNUM, k=20))
        while cid in used_ids:
            cid = "".join(rng.choices(_ALNUM, k=20))
        used_ids.add(cid)

        if loc.code == "ja_JP":
            first_kanji, _, first_roman = rng.choice(pool["first"])
            last_kanji, _, last_roman = rng.choice(pool["last"])
            first, last = first_kanji, last_kanji
            local_first, local_last = first_roman.lower(), last_roman.lower()
        else:
            first, last = rng.choice(pool["first"]), rng.choice(pool["last"])
            local_first, local_last = _ascii_slug(first), _ascii_slug(last)
            if not local_first or not local_last:  # Arabic script: fall back to a generic handle
                local_first, local_last = rng.choice(("user", "info", "contact", "m")), _digits(rng, 4)

        company = rng.choice(pool["company"]) if rng.random() < 0.4 else None
        pattern = rng.randrange(5)
        local = (
            f"{local_first}.{local_last}",
            f"{local_first}{local_last}",
            f"{local_first[:1]}{local_last}",
            f"{local_first}_{local_last}{rng.randint(1, 99)}",
            f"{local_last}.{local_first}{rng.randint(60, 99)}",
        )[pattern]
        domain = rng.choice(loc.domains)
        email = f"{local}@{domain}"
        while email.lower() in used_emails:
            email = f"{local}{rng.randint(100, 9999)}@{domain}"
        used_emails.add(email.lower())

        phone = None
        if rng.random() < 0.92:
            phone = _phone(rng, loc.country)
            while phone in used_phones:
                phone = _phone(rng, loc.country)
            used_phones.add(phone)

        if rng.random() < 0.05:
            added, updated = rng.choice(import_batches)
        else:
            added = start_ms + rng.randrange(span)
            r = rng.random()
            # Most contacts were touched again later; recent edits are more common than old ones.
            updated = added if r < 0.3 else added + int((end_ms - added) * (1 - rng.random() ** 0.5))
        updated = min(max(updated, added), end_ms)

        c: dict = {
            "id": cid,
            "locationId": location_id,
            "firstName": first,
            "lastName": last,
            "email": email,
        }
        if phone:
            c["phone"] = phone
        if company:
            c["companyName"] = company
        c["address1"] = rng.choice(pool["street"])
        c["city"] = rng.choice(pool["city"])
        c["state"] = rng.choice(pool["state"])
        postcode = rng.choice(pool["postcode"])
        if postcode:
            c["postalCode"] = postcode
        c["country"] = loc.country
        c["timezone"] = rng.choice(loc.timezones)
        if company and rng.random() < 0.4:
            slug = _ascii_slug(company)[:20] or "shop"
            c["website"] = f"https://www.{slug}.com"
        c["type"] = "customer" if rng.random() < 0.3 else "lead"
        c["source"] = rng.choice(SOURCES)
        if rng.random() < 0.3:
            c["assignedTo"] = rng.choice(user_ids)
        if rng.random() < 0.1:
            c["businessId"] = rng.choice(business_ids)
        c["tags"] = rng.sample(TAG_VOCABULARY, rng.randint(0, 4))
        fields = []
        for name in rng.sample(sorted(CUSTOM_FIELD_IDS), rng.randint(0, 3)):
            is_money = name == "lifetime_value"
            value = f"{rng.randint(0, 500_000) / 100:.2f}" if is_money else rng.choice(_CF_VALUES[name])
            fields.append({"id": CUSTOM_FIELD_IDS[name], "value": value})
        c["customFields"] = fields
        dnd = rng.random() < 0.05
        c["dnd"] = dnd
        if dnd:
            c["dndSettings"] = {
                channel: {"status": "active", "message": "Opted out", "code": "103"}
                for channel in ("Call", "Email", "SMS")
            }
        if rng.random() < 0.3:
            birth = datetime(1950, 1, 1) + timedelta(days=rng.randrange(365 * 55))
            c["dateOfBirth"] = f"{birth:%Y-%m-%d}"
        c["dateAdded"] = _iso_ms(added)
        c["dateUpdated"] = _iso_ms(updated)
        _set_derived(c)
        contacts.append(c)

    for k, i in enumerate(_dirty_indices(n, dirty_share, rng)):
        _make_dirty(contacts, i, DIRTY_KINDS[k % len(DIRTY_KINDS)], rng)

    contacts.sort(key=lambda c: (c["dateAdded"], c["id"]))
    return contacts


def _make_dirty(contacts: list[dict], i: int, kind: str, rng: random.Random) -> None:
    c = contacts[i]
    if kind == "missing_email":
        c.pop("email", None)
    elif kind == "invalid_email":
        c["email"] = rng.choice(_INVALID_EMAILS)
    elif kind == "duplicate_email_case":
        # Another contact's address with different letter case: a case-insensitive duplicate.
        other = contacts[i - 1] if i > 0 else contacts[i + 1] if len(contacts) > 1 else None
        if other is not None and other.get("email") and other["email"] != other["email"].upper():
            c["email"] = other["email"].upper()
        else:  # nothing to duplicate (n == 1 or neighbour already dirty): fall back to a missing email
            c.pop("email", None)
    elif kind == "long_name":
        if rng.random() < 0.5:
            c["firstName"] = _LONG_FIRST
        else:
            c["lastName"] = _LONG_LAST
    elif kind == "long_address":
        c["address1"] = (c.get("address1") or "1 Main St") + (
            ", c/o Accounts Payable Department, Building 7, Floor 12, Suite 1204, Industrial Park East"
            ", Loading Dock B (use rear entrance after 6pm, ring bell twice), attention: receiving clerk"
            ", reference PO numbers on all parcels"
        )
        c["city"] = (
            "Llanfairpwllgwyngyllgogerychwyrndrobwllllantysiliogogogoch near Menai Bridge, Isle of Anglesey, Wales"
        )
    elif kind == "odd_phone":
        c["phone"] = rng.choice(_ODD_PHONES)
    elif kind == "emoji_rtl_name":
        c["firstName"], c["lastName"] = rng.choice(_EMOJI_RTL_NAMES)
    elif kind == "control_chars":
        c["firstName"], c["lastName"] = rng.choice(_CONTROL_NAMES)
    _set_derived(c)


# --------------------------------------------------------------------------------------------------
# tasks, notes, calendars and appointments for generated contacts

_TASK_TITLES: tuple[str, ...] = (
    "Follow up call",
    "Send quote",
    "Confirm shipping address",
    "Check in after first order",
    "Send catalogue",
    "Schedule product demo",
    "Call back about return",
    "Ask for a review",
    "Renew wholesale agreement",
    "Update billing details",
    "Send loyalty voucher",
    "Book fitting appointment",
)
_TASK_BODIES: tuple[str, ...] = (
    "Customer asked to be called after 3pm.",
    "Quote for 40 units, include shipping to the warehouse.",
    "Left a voicemail, try again.",
    "Mention the spring promotion.",
    "Needs the invoice re-sent with the VAT number.",
    "Prefers email over phone.",
)
_NOTE_PLAIN: tuple[str, ...] = (
    "Called, no answer. Will try again tomorrow.",
    "Interested in the wholesale programme; sent the price list.",
    "Asked about delivery times to the countryside.",
    "Prefers to be contacted by SMS.",
    "Met at the trade show, very keen on the new range.",
    "Returned the last order (wrong size), exchange sent.",
    "Wants to be removed from the newsletter but keep order updates.",
)
_NOTE_HTML: tuple[str, ...] = (
    "<p>Called <b>back</b></p>",
    "<p>Spoke with <strong>{name}</strong> about the order.</p><p>Follow up next <em>Tuesday</em>.</p>",
    "<ul><li>Budget approved</li><li>Needs delivery before the 15th</li></ul>",
    '<p>Sent the brochure: <a href="https://example.com/catalogue.pdf">catalogue</a></p>',
    "<p>Complaint about packaging &amp; late delivery.<br>Offered 10% off.</p>",
    "<div><p>Notes from call:</p><ol><li>Size M</li><li>Colour: navy</li></ol></div>",
)
_NOTE_TITLES: tuple[str, ...] = ("Call summary", "Follow-up summary", "Order issue", "Meeting notes", "Preferences")
_NOTE_COLORS: tuple[str, ...] = ("#FFAA00", "#FF5733", "#33C1FF", "#8BC34A")
# (name, calendarType, slotDuration minutes, eventColor)
_CALENDAR_TEMPLATES: tuple[tuple[str, str, int, str], ...] = (
    ("Sales Consultation", "round_robin", 30, "#039be5"),
    ("Product Demo", "event", 45, "#33b679"),
    ("Store Pickup", "service_booking", 15, "#f6bf26"),
    ("VIP Styling Session", "personal", 60, "#8e24aa"),
    ("Wholesale Onboarding", "collective", 60, "#e67c73"),
)
_PAST_STATUSES = (("showed", 50), ("noshow", 12), ("cancelled", 15), ("confirmed", 18), ("invalid", 5))
_UPCOMING_STATUSES = (("confirmed", 60), ("new", 25), ("cancelled", 15))
_DAY_MS = 86_400_000


def _iso_offset(ms: int) -> str:
    """Epoch ms -> ``2023-09-25T16:00:00+00:00`` (the calendar events' ISO-with-offset form)."""
    return datetime.fromtimestamp(ms // 1000, tz=UTC).isoformat()


def _long_note(rng: random.Random, size: int) -> str:
    """An HTML note of about ``size`` characters (pasted e-mail threads and call transcripts do this)."""
    parts: list[str] = ["<h3>Call transcript</h3>"]
    total = len(parts[0])
    while total < size:
        p = f"<p>{rng.choice(_NOTE_PLAIN)} {rng.choice(_TASK_BODIES)} {rng.choice(_NOTE_PLAIN)}</p>"
        parts.append(p)
        total += len(p)
    return "".join(parts)[:size]


def _weighted(rng: random.Random, table: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([v for v, _ in table], [w for _, w in table])[0]


def generate_crm(
    contacts: list[dict],
    *,
    seed: int = 42,
    location_id: str,
    now: datetime | None = None,
    calendars: int = 3,
) -> dict[str, list[dict]]:
    """Tasks, notes, calendars and appointments (calendar events) for ``contacts``, in API read shapes.

    Same arguments, same output. About 60% of contacts get 1–4 tasks (open and completed, due in
    the past and the future), about 50% get 1–3 notes (plain text or HTML; every 97th note is long,
    5,000–70,000 characters), about 30% get 1–2 appointments (past and upcoming, statuses from the
    enum) on one of the ``calendars`` active calendars. Nothing is dated before its contact's
    ``dateAdded``; everything already happened is dated no later than ``now`` (default: the start
    of the current UTC day, as in ``generate_contacts``). Event times are ISO with ``+00:00``.
    Returns ``{"tasks", "notes", "calendars", "events"}``; tasks are ordered by contactId, dueDate,
    id; notes by contactId, dateAdded, id; events by startTime, id.
    """
    if calendars < 0:
        raise ValueError("calendars must be >= 0")
    if now is None:
        now = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    elif now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    rng = random.Random(f"ghl-crm-{seed}")
    now_ms = int(now.timestamp() * 1000)
    used: set[str] = set()

    def new_id() -> str:
        i = "".join(rng.choices(_ALNUM, k=20))
        while i in used:
            i = "".join(rng.choices(_ALNUM, k=20))
        used.add(i)
        return i

    users = sorted({c["assignedTo"] for c in contacts if c.get("assignedTo")})
    while len(users) < 4:
        users.append(new_id())
    group_id = new_id()

    cals: list[dict] = []
    for i in range(calendars):
        name, kind, minutes, color = _CALENDAR_TEMPLATES[i % len(_CALENDAR_TEMPLATES)]
        if i >= len(_CALENDAR_TEMPLATES):
            name = f"{name} {i // len(_CALENDAR_TEMPLATES) + 1}"
        slug = name.lower().replace(" ", "-")
        members = rng.sample(users, 1 if kind == "personal" else min(len(users), rng.randint(2, 3)))
        team = [{"userId": u, "priority": 0.5} for u in members]
        if kind == "collective":
            team[0]["isPrimary"] = True
        cals.append(
            {
                "id": new_id(),
                "locationId": location_id,
                "groupId": group_id,
                "name": name,
                "description": f"{name} with our team",
                "slug": slug,
                "widgetSlug": slug,
                "calendarType": kind,
                "widgetType": "classic",
                "eventTitle": "{{contact.name}}",
                "eventColor": color,
                "teamMembers": team,
                "slotDuration": minutes,
                "slotDurationUnit": "mins",
                "slotInterval": 30 if minutes >= 30 else 15,
                "slotIntervalUnit": "mins",
                "appoinmentPerSlot": 1,
                "openHours": [
                    {
                        "daysOfTheWeek": [1, 2, 3, 4, 5],
                        "hours": [{"openHour": 9, "openMinute": 0, "closeHour": 17, "closeMinute": 0}],
                    }
                ],
                "autoConfirm": kind != "service_booking",
                "allowReschedule": True,
                "allowCancellation": True,
                # A fourth calendar onwards: every fourth one is a draft (hidden by showDrafted=false).
                "isActive": not (i >= 3 and i % 4 == 3),
            }
        )
    bookable = [c for c in cals if c["isActive"]] or cals

    tasks: list[dict] = []
    notes: list[dict] = []
    events: list[dict] = []
    note_count = 0
    for c in contacts:
        cid = c["id"]
        added = _parse_iso_ms(c.get("dateAdded")) or now_ms - 30 * _DAY_MS
        added = min(added, now_ms)
        who = c.get("contactName") or c.get("name") or c.get("email") or "Guest"

        if rng.random() < 0.6:
            for _ in range(rng.randint(1, 4)):
                day = added // _DAY_MS + rng.randint(0, max(0, (now_ms - added) // _DAY_MS + 30))
                due = day * _DAY_MS + rng.randint(9, 17) * 3_600_000
                due = max(due, added)
                task: dict = {"id": new_id(), "title": rng.choice(_TASK_TITLES)}
                if rng.random() < 0.6:
                    task["body"] = rng.choice(_TASK_BODIES)
                r = rng.random()
                if c.get("assignedTo") and r < 0.8:
                    task["assignedTo"] = c["assignedTo"]
                elif r < 0.7:
                    task["assignedTo"] = rng.choice(users)
                task["dueDate"] = _iso_ms(due)
                task["completed"] = rng.random() < (0.75 if due < now_ms else 0.1)
                task["contactId"] = cid
                tasks.append(task)

        if rng.random() < 0.5:
            for _ in range(rng.randint(1, 3)):
                note_count += 1
                if note_count % 97 == 13:
                    body = _long_note(rng, rng.randint(5_000, 70_000))
                elif rng.random() < 0.4:
                    body = rng.choice(_NOTE_HTML).replace("{name}", who)
                else:
                    body = rng.choice(_NOTE_PLAIN)
                note: dict = {"id": new_id(), "body": body, "userId": rng.choice(users)}
                note["dateAdded"] = _iso_ms(added + rng.randrange(max(1, now_ms - added)))
                note["contactId"] = cid
                if rng.random() < 0.4:
                    note["title"] = rng.choice(_NOTE_TITLES)
                if rng.random() < 0.2:
                    note["color"] = rng.choice(_NOTE_COLORS)
                note["pinned"] = rng.random() < 0.05
                notes.append(note)

        if bookable and rng.random() < 0.3:
            for _ in range(rng.randint(1, 2)):
                cal = rng.choice(bookable)
                first_day = max(added, now_ms - 180 * _DAY_MS) // _DAY_MS + 1
                day = rng.randint(first_day, now_ms // _DAY_MS + 45)
                # 13:00-21:30 UTC: office hours on the US east coast.
                start = day * _DAY_MS + rng.randint(13, 21) * 3_600_000 + rng.choice((0, 1_800_000))
                end = start + cal["slotDuration"] * 60_000
                past = start < now_ms
                status = _weighted(rng, _PAST_STATUSES if past else _UPCOMING_STATUSES)
                booked = max(added, min(start, now_ms) - rng.randint(1, 21) * _DAY_MS + rng.randrange(_DAY_MS))
                # Event times render in whole seconds: round up so nothing precedes its contact.
                booked = min(-(-booked // 1000) * 1000, start, now_ms // 1000 * 1000)
                updated = booked
                if status in ("showed", "noshow", "invalid"):
                    updated = min(now_ms, end + rng.randint(5, 240) * 60_000)
                elif status == "cancelled" or rng.random() < 0.2:
                    updated = booked + rng.randrange(max(1, min(start, now_ms) - booked))
                team = [m["userId"] for m in cal["teamMembers"]]
                owner = rng.choice(team)
                ev: dict = {
                    "id": new_id(),
                    "title": who,
                    "calendarId": cal["id"],
                    "locationId": location_id,
                    "contactId": cid,
                    "groupId": cal["groupId"],
                    "appointmentStatus": status,
                    "assignedUserId": owner,
                    "users": [u for u in team if u != owner][:1] if rng.random() < 0.15 else [],
                }
                if rng.random() < 0.4:
                    ev["address"] = f"https://zoom.us/j/{rng.randint(10**9, 10**10 - 1)}"
                if rng.random() < 0.2:
                    ev["notes"] = rng.choice(_NOTE_PLAIN)
                ev["isRecurring"] = False
                ev["startTime"] = _iso_offset(start)
                ev["endTime"] = _iso_offset(end)
                ev["dateAdded"] = _iso_offset(booked)
                ev["dateUpdated"] = _iso_offset(min(-(-max(updated, booked) // 1000) * 1000, now_ms // 1000 * 1000))
                events.append(ev)

    tasks.sort(key=lambda t: (t["contactId"], t["dueDate"], t["id"]))
    notes.sort(key=lambda n: (n["contactId"], n["dateAdded"], n["id"]))
    events.sort(key=lambda e: (e["startTime"], e["id"]))
    return {"tasks": tasks, "notes": notes, "calendars": cals, "events": events}


def _parse_iso_ms(value: object) -> int | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)
