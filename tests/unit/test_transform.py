"""Mapping and transform: the YAML drives the payload, values are cleaned and cut to store limits."""

from __future__ import annotations

from pathlib import Path

import pytest
from ghl_shift4shop.mapping import (
    MappingError,
    clean_text,
    load_mapping,
    normalize_country,
    normalize_phone,
    payload_hash,
)
from ghl_shift4shop.shift4shop.fields import CUSTOMER_MAX_LENGTHS
from ghl_shift4shop.text import cut
from ghl_shift4shop.transform import transform_records

ROOT = Path(__file__).resolve().parents[2]
MAPPING = load_mapping(ROOT / "include" / "mappings" / "contacts_to_customers.yaml")


def contact(**over) -> dict:
    base = {
        "id": "aBcDeFgHiJkLmNoPqRsT",
        "firstName": "Ada",
        "lastName": "Lovelace",
        "email": "Ada.Lovelace@Example.com",
        "phone": "+14155550123",
        "companyName": "Analytical Engines",
        "address1": "12 St James's Square",
        "city": "London",
        "state": "LND",
        "postalCode": "SW1Y 4JH",
        "country": "GB",
        "tags": ["vip", "newsletter"],
        "dateUpdated": "2026-11-01T10:00:00.000Z",
    }
    base.update(over)
    return base


def one(**over) -> dict:
    return transform_records([contact(**over)], MAPPING)[0]


def test_fields_follow_the_mapping():
    row = one()
    p = row["payload"]
    assert p["Email"] == "Ada.Lovelace@Example.com"
    assert row["match_key"] == "ada.lovelace@example.com"
    assert (p["BillingFirstName"], p["BillingLastName"]) == ("Ada", "Lovelace")
    assert p["BillingCompany"] == "Analytical Engines"
    assert p["BillingCountry"] == "GB"
    assert p["BillingPhoneNumber"] == "+14155550123"
    assert p["AdditionalField1"] == "aBcDeFgHiJkLmNoPqRsT"
    assert p["AdditionalField2"] == "vip, newsletter"
    assert row["source_id"] == "aBcDeFgHiJkLmNoPqRsT"
    assert row["date_updated"] == "2026-11-01T10:00:00.000Z"


def test_name_fallbacks():
    p = one(firstName=None, lastName="", name="Grace Brewster Hopper")["payload"]
    assert (p["BillingFirstName"], p["BillingLastName"]) == ("Grace", "Brewster Hopper")
    p = one(firstName=None, lastName=None, name=None, contactName=None, email="solo@example.com")["payload"]
    assert p["BillingFirstName"] == "solo"
    assert "BillingLastName" not in p


def test_nameless_contact_as_ghl_serves_it_gets_the_email_local_part():
    """GHL serves contactName = the e-mail (or phone) for a contact without a name: not a first name."""
    p = one(firstName=None, lastName=None, name=None, contactName="solo@example.com", email="solo@example.com")
    assert p["payload"]["BillingFirstName"] == "solo"
    p = one(firstName=None, lastName=None, name=None, contactName="+15551230000", phone="+15551230000", email="x@y.io")
    assert p["payload"]["BillingFirstName"] == "x" and "BillingLastName" not in p["payload"]
    p = one(firstName=None, lastName=None, name=None, contactName="Ada Lovelace", email="ada@y.io")
    assert (p["payload"]["BillingFirstName"], p["payload"]["BillingLastName"]) == ("Ada", "Lovelace")


def test_every_string_is_cut_to_the_store_limit():
    p = one(firstName="A" * 80, address1="x" * 400, city="c" * 150, postalCode="9" * 30, tags=["t" * 40] * 20)[
        "payload"
    ]
    for field, value in p.items():
        if isinstance(value, str) and field in CUSTOMER_MAX_LENGTHS:
            assert len(value) <= CUSTOMER_MAX_LENGTHS[field], field
    assert len(p["BillingFirstName"]) == 50
    assert len(p["AdditionalField2"]) == 250


def test_control_characters_and_unicode():
    p = one(firstName="Jo\x00hn\x07", lastName="  O'Brien \t Smith ", companyName="شركة 🚀")["payload"]
    assert p["BillingFirstName"] == "John"
    assert p["BillingLastName"] == "O'Brien Smith"
    assert p["BillingCompany"] == "شركة 🚀"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Jo Ann", "Jo Ann"),  # clean ASCII comes back as it is
        ("Jo  Ann", "Jo Ann"),
        (" Jo Ann", "Jo Ann"),
        ("Jo\tAnn\n", "Jo Ann"),
        ("Jo\x7fAnn\x1b", "JoAnn"),
        ("Jose\u0301", "Jos\u00e9"),  # NFC
    ],
)
def test_clean_text_ascii_edge_cases(raw, expected):
    assert clean_text(raw) == expected


def test_cut_counts_utf16_units_near_the_limit():
    assert cut("a" * 25, 50) == "a" * 25
    assert cut("🚀" * 25, 50) == "🚀" * 25
    assert cut("🚀" * 26, 50) == "🚀" * 25
    assert cut("a" + "🚀" * 25, 50) == "a" + "🚀" * 24


@pytest.mark.parametrize(
    ("raw", "country", "expected"),
    [
        ("(415) 555-0123", "US", "+14155550123"),
        ("020 7946 0958", "GB", "+442079460958"),
        # 00 is not the US international prefix (011): not a possible US number, so kept, cleaned.
        ("0044 20 7946 0958", "US", "0044 20 7946 0958"),
        ("0044 20 7946 0958", "GB", "+442079460958"),  # 00 is the GB international prefix
        ("+44 20 7946 0958", "US", "+442079460958"),  # an explicit country code wins over the contact's
        ("call me", "US", "call me"),
        ("call  me\x07", "US", "call me"),  # not a number: kept, cleaned (control removed, spaces collapsed)
    ],
)
def test_phone_normalisation(raw, country, expected):
    assert normalize_phone(raw, country) == expected


@pytest.mark.parametrize(("raw", "expected"), [("us", "US"), ("Germany", "DE"), ("FRA", "FR"), ("Narnia", "Narnia")])
def test_country_normalisation(raw, expected):
    assert normalize_country(raw) == expected


def test_hash_is_stable_and_sensitive():
    assert one()["hash"] == one()["hash"]
    assert one()["hash"] != one(city="Paris")["hash"]
    assert payload_hash({"a": 1, "b": 2}) == payload_hash({"b": 2, "a": 1})


def test_bad_mapping_files_are_refused(tmp_path):
    bad = tmp_path / "m.yaml"
    bad.write_text(
        "stream: contacts\ntarget: Customers\nsource_id_field: AdditionalField1\nmatch_field: Email\n"
        "fields:\n  Email: {from: email, normalize: [shout]}\n  AdditionalField1: {from: id}\n"
    )
    with pytest.raises(MappingError, match="shout"):
        load_mapping(bad)
    bad.write_text("stream: contacts\nfields: {}\n")
    with pytest.raises(MappingError, match="missing keys"):
        load_mapping(bad)
