"""The phone shortcut (numbers already in E.164 skip phonenumbers.parse) gives phonenumbers' answer exactly.

``normalize_phone`` returns a "+<digits>" value as it is when ``_is_plain_e164`` says phonenumbers would;
everything else goes through phonenumbers. Compared here with phonenumbers itself (the code before the
shortcut, verbatim) over the generator's numbers, every country calling code with national numbers of
every length and first digit, and dirty or hostile strings.
"""

from __future__ import annotations

import random

import phonenumbers
import pytest
from ghl_shift4shop import mapping
from ghl_shift4shop.mapping import _is_plain_e164, normalize_phone

from sandbox.seed import generate_contacts

REGIONS = ("US", None, "gb", "DE", "JP", "AR", "IT", "ZZ", "USA", "")


def reference(value: str, country: str | None) -> str:
    """normalize_phone without the shortcut: phonenumbers for every value (``_phone``, uncached)."""
    return mapping._phone.__wrapped__(value, country.upper() if country and len(country) == 2 else "US")


def every_country_code() -> list[str]:
    """ "+<cc><national>" for every calling code, national lengths 0-18, every first digit."""
    rng = random.Random(9)
    out = []
    for cc in sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE):
        for length in range(19):
            for first in "0123456789":
                national = (first + "".join(rng.choices("0123456789", k=length)))[:length]
                out.append(f"+{cc}{national}")
    return out


def hostile(rng: random.Random, base: list[str]) -> list[str]:
    fixed = [
        "", "+", "+1", "+12", "+123", "++14155550123", "+014155550123", "+0", " +14155550123", "+14155550123 ",
        "+14155550123\n", "+1 415 555 0123", "+1-415-555-0123", "+1 (415) 555-0123", "+1.415.555.0123",
        "+14155550123 ext 12", "+14155550123x22", "+14155550123;ext=5", "+14155550123#", "+14155550123,,1",
        "tel:+1-415-555-0123", "tel:+14155550123;phone-context=+1", "+1-800-FLOWERS", "+1800FLOWERS",
        "+44 (0) 20 7946 0958", "+4402079460958", "+44 07911 123456", "+4407911123456", "+490301234567",
        "+33 0612345678", "+3306 12 34 56 78", "+81 090 1234 5678", "+81090123456788", "+9710501234567",
        "+5491123456789", "+541123456789", "+54 9 11 2345-6789", "+52 1 55 1234 5678", "+5215512345678",
        "+390612345678", "+3900612345678", "+39000000", "+8001234567", "+80012345678", "+979123456789",
        "+１４１５５５５０１２３", "＋14155550123", "+١٤١٥٥٥٥٠١٢٣", "+۱۴۱۵۵۵۵۰۱۲۳", "+¹4155550123",
        "+1415555012３", "+1415555O123", "+1 415 555 0123 (mobile)", "call me", "0044 20 7946 0958",
        "(555) 123-4567 ext 9", "555.867.5309 (mobile)", "+1 (415) 555-0100 x22", "4155550123",
        "14155550123", "011 44 20 7946 0958", "+1\u00a0415\u00a0555\u00a00123", "+1\u200b4155550123",
        "+14155550123" * 20, "+" + "9" * 300, "+12345678901234567890", "+1e10", "+-14155550123",
    ]  # fmt: skip
    out = list(fixed)
    junk = " -().x#;,+abcEXTé０١\u00a0\t"
    for value in rng.sample(base, 3000):
        chars = list(value)
        for _ in range(rng.randint(1, 3)):
            op = rng.randrange(4)
            pos = rng.randrange(len(chars) + 1)
            if op == 0:
                chars.insert(pos, rng.choice(junk))
            elif op == 1 and chars:
                del chars[min(pos, len(chars) - 1)]
            elif op == 2 and chars:
                chars[min(pos, len(chars) - 1)] = rng.choice("0123456789")
            else:
                chars.insert(pos, rng.choice("0123456789"))
        out.append("".join(chars))
    return out


@pytest.fixture(scope="module")
def generated() -> list[str]:
    contacts = generate_contacts(20_000, seed=3, dirty_share=0.02, location_id="loc")
    return [c["phone"] for c in contacts if c.get("phone")]


@pytest.fixture(autouse=True)
def fresh_cache():
    mapping._phone.cache_clear()
    yield
    mapping._phone.cache_clear()


def check(values: list[str], regions=REGIONS) -> int:
    """Every value in every region gives phonenumbers' answer; returns how many took the shortcut."""
    wrong = [
        (v, c, normalize_phone(v, c), reference(v, c))
        for v in values
        for c in regions
        if normalize_phone(v, c) != reference(v, c)
    ]
    assert not wrong, wrong[:20]
    return sum(_is_plain_e164(v) for v in values)


def test_generated_numbers_take_the_shortcut_and_match(generated):
    shortcut = check(generated, regions=("US", "GB", "JP", None))
    assert shortcut / len(generated) > 0.99  # the shortcut is what runs on the generator's data


def test_every_country_code_and_length_matches():
    values = every_country_code()
    shortcut = check(values, regions=("US", "DE"))
    assert shortcut > 1000  # many take the shortcut, across many calling codes


def test_dirty_and_hostile_strings_match(generated):
    values = hostile(random.Random(5), generated)
    check(values)
    assert not _is_plain_e164("+１４１５５５５０１２３") and not _is_plain_e164("+1415555012³")
