"""Mapping and transform: the YAML drives the payload, values are cleaned and cut to store limits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ghl_shift4shop.batches import write_jsonl
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


# ---- column-wise transform == the per-row reference ---------------------------------------------


def transform_by_row(records: list[dict], mapping, enrich: dict | None = None) -> list[dict]:
    """transform_records as it was before it went column-wise: one dict per row, Mapping.apply each."""
    import pandas as pd
    from ghl_shift4shop.transform import derive_columns

    if not records:
        return []
    enrich = enrich or {}
    out = []
    for row in derive_columns(pd.DataFrame.from_records(records)).to_dict("records"):
        payload = mapping.apply(row)
        extra = enrich.get(row["id"], {})
        if "Comments" in extra:
            payload["Comments"] = extra["Comments"]
        group = extra.get("group")
        match = payload.get(mapping.match_field)
        out.append(
            {
                "source_id": row["id"],
                "match_key": match.strip().lower() if isinstance(match, str) else None,
                "date_updated": row.get("dateUpdated"),
                "payload": payload,
                "group": group,
                "hash": payload_hash({**payload, "_group": group}),
            }
        )
    return out


def hostile_contacts() -> list[dict]:
    """Odd values a GHL export can hold, each where the mapping reads it."""
    long = "x" * 300
    odd = [
        {"postalCode": 12345},  # a number in a column of strings (pandas makes the column float)
        {"postalCode": None, "city": "\u00a0\u2003"},  # whitespace only, beyond ASCII
        {"city": " \t", "state": "", "address1": "  12  Main\tSt \x00"},
        {"firstName": None, "lastName": None, "name": None, "contactName": "a@b.co"},
        {"firstName": "", "lastName": " ", "name": "Grace  Brewster Hopper"},
        {"firstName": ["list"], "lastName": {"a": 1}, "companyName": 7, "businessName": "Biz"},
        {"firstName": True, "lastName": 1.5, "companyName": float("nan")},
        {"phone": "+44 (0) 20 7946 0958", "country": "gb"},
        {"phone": "+4407911123456", "country": "GBR"},
        {"phone": "0612345678", "country": "fr"},
        {"phone": "+14155550123", "country": None},
        {"phone": "call me", "country": "Germany"},
        {"phone": 4155550123, "country": "US"},
        {"phone": "+١٤١٥٥٥٥٠١٢٣", "country": "XX"},
        {"country": "Narnia"},
        {"country": "  deu "},
        {"email": " Ada Lovelace@Example.com ", "contactName": "Ada Lovelace@Example.com"},
        {"email": "x@y.co", "contactName": "x@y.co", "name": None, "firstName": None, "lastName": None},
        {"tags": "not-a-list"},
        {"tags": []},
        {"tags": ["a", 1, None, "  "]},
        {"firstName": long, "lastName": "😀" * 40, "address1": "é" * 200 + "😀", "city": long},
        {"dateUpdated": None},
        {"companyName": "   ", "businessName": "  Fallback  "},
    ]
    out = []
    for i, over in enumerate(odd):
        c = contact(**over)
        c["id"] = f"odd{i:03d}"
        out.append(c)
    bare = {"id": "bare", "email": "bare@example.com"}  # no other column in its row
    return [*out, bare]


@pytest.mark.parametrize("case", ["generated", "hostile", "hostile_without_columns", "numbers", "one"])
def test_column_wise_transform_equals_the_per_row_one(case, tmp_path):
    from sandbox.seed import generate_contacts

    if case == "generated":
        from ghl_shift4shop.ghl.hook import normalize_search_item

        records = [
            normalize_search_item(c) for c in generate_contacts(3000, seed=11, dirty_share=0.3, location_id="loc")
        ]
    elif case == "hostile":
        records = hostile_contacts()
    elif case == "hostile_without_columns":  # a batch where phone, country and name columns are missing
        records = [
            {k: v for k, v in c.items() if k not in ("phone", "country", "name", "contactName", "tags")}
            for c in hostile_contacts()
        ]
    elif case == "numbers":  # columns pandas makes numeric: ints with a gap become floats, bools stay bools
        records = [contact(postalCode=10001 + i if i % 3 else None, companyName=bool(i % 2)) for i in range(7)]
        for i, r in enumerate(records):
            r["id"] = f"n{i}"
    else:
        records = [contact()]
    expected = transform_by_row(records, MAPPING)
    assert transform_records(records, MAPPING) == expected
    assert [json.dumps(r, ensure_ascii=False) for r in transform_records(records, MAPPING)] == [
        json.dumps(r, ensure_ascii=False) for r in expected
    ]  # equal as text too (1 == 1.0 == True would pass ==)
    write_jsonl(tmp_path / "rows.jsonl", transform_records(records, MAPPING))  # the batch file's lines
    lines = (tmp_path / "rows.jsonl").read_bytes().splitlines()
    for line, old in zip(lines, expected, strict=True):
        assert line == json.dumps(old, ensure_ascii=False, separators=(",", ":")).encode()
    # With the CRM summary and tag groups (real config, undated tasks so both calls see the same parts).
    from ghl_shift4shop.crm_config import load_crm_config
    from ghl_shift4shop.transform import crm_enrichment

    crm = load_crm_config(ROOT / "include" / "mappings")
    children = {"tasks": {r["id"]: [{"title": f"T{i}", "completed": False}] for i, r in enumerate(records) if i % 3}}
    enrich = crm_enrichment(records, crm, children, None)
    assert any("Comments" in e for e in enrich.values())
    got = transform_records(records, MAPPING, crm=crm, children=children)
    assert got == transform_by_row(records, MAPPING, enrich)


def test_a_country_that_is_not_text_does_not_crash_the_phone_of_its_batch():
    """A number where GHL sends a country name (hostile input) crashed the whole batch's transform
    (``len(12)``) in the phone step; the phone is read in the default region instead."""
    rec = {
        "id": "c1",
        "email": "a@b.co",
        "phone": "(555) 201-3344",
        "country": 12,
        "dateUpdated": "2026-11-01T00:00:00.000Z",
    }
    (row,) = transform_records([rec], MAPPING)
    assert row["payload"]["BillingPhoneNumber"] == "+15552013344"
