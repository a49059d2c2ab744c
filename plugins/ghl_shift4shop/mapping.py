"""Field mappings: load the YAML files in ``include/mappings/`` and apply them to records.

The YAML is the one place mapping rules live; this module only knows how to read and apply them.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import phonenumbers
import pycountry
import yaml

from ghl_shift4shop.batches import dumps
from ghl_shift4shop.errors import PermanentError
from ghl_shift4shop.shift4shop.fields import CUSTOMER_MAX_LENGTHS
from ghl_shift4shop.text import cut

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SPACES = re.compile(r"\s+")


class MappingError(PermanentError, ValueError):
    """The mapping file is wrong (unknown normalizer, missing keys): fix the YAML."""


def clean_text(value: str) -> str:
    """NFC, no NUL or control characters, single spaces, trimmed."""
    if value.isascii() and value.isprintable() and "  " not in value and value == value.strip():
        return value  # already clean: ASCII is NFC, printable means no controls, tabs or newlines
    value = unicodedata.normalize("NFC", value)
    value = _CONTROL.sub("", value)
    return _SPACES.sub(" ", value).strip()


def normalize_phone(value: str, country: str | None) -> str:
    """E.164 when the number parses (using the contact's country for local forms); else cleaned."""
    region = country.upper() if isinstance(country, str) and len(country) == 2 else "US"
    if _is_plain_e164(value):
        return value  # what phonenumbers returns for it (tests/unit/test_phone_shortcut.py)
    return _phone(value, region)


def _country_code_rules() -> dict[str, tuple[frozenset[int], re.Pattern | None] | None]:
    """Per country calling code (as digits): the national number lengths phonenumbers calls possible
    (its own metadata, local-only lengths left out) and its national-prefix pattern; None: no metadata."""
    rules: dict[str, tuple[frozenset[int], re.Pattern | None] | None] = {}
    for cc in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
        meta = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(
            cc, phonenumbers.region_code_for_country_code(cc)
        )
        desc = meta.general_desc if meta is not None else None
        lengths = tuple(desc.possible_length or ()) if desc is not None else ()
        if not lengths or lengths[0] == -1:
            rules[str(cc)] = None
            continue
        local = frozenset(desc.possible_length_local_only or ())
        prefix = meta.national_prefix_for_parsing
        rules[str(cc)] = (frozenset(lengths) - local, re.compile(prefix) if prefix else None)
    return rules


_CC_RULES = _country_code_rules()


def _is_plain_e164(value: str) -> bool:
    """True when ``value`` is "+<country code><national number>" that phonenumbers' parse +
    is_possible_number + E.164 format gives back unchanged, whatever the region: ASCII digits only,
    a known country code (the shortest that matches, as phonenumbers reads it), a national number
    of a length its metadata calls possible, not matching the country's national-prefix pattern
    (phonenumbers may strip that: the test fails without this check). Leading zeros and lengths
    possible only locally are left to phonenumbers too: they give the same answer today, but that
    rests on details of its parsing a shortcut need not copy. Anything else goes through phonenumbers."""
    if len(value) < 4 or value[0] != "+":
        return False
    digits = value[1:]
    if not (digits.isascii() and digits.isdigit()) or digits[0] == "0":
        return False
    for size in (1, 2, 3):
        cc = digits[:size]
        if cc in _CC_RULES:
            break
    else:
        return False
    rules = _CC_RULES[cc]
    national = digits[size:]
    if rules is None or not national or national[0] == "0":
        return False
    lengths, prefix = rules
    return len(national) in lengths and (prefix is None or prefix.match(national) is None)


@lru_cache(maxsize=20_000)
def _phone(value: str, region: str) -> str:
    # Cached per distinct (value, region): parsing is the costliest step of the transform, and
    # shared numbers (a switchboard, a placeholder) come again and again.
    try:
        parsed = phonenumbers.parse(value, region)
        if phonenumbers.is_possible_number(parsed):
            return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    except phonenumbers.NumberParseException:
        pass
    return clean_text(value)


@cache
def normalize_country(value: str) -> str:
    """ISO 3166 alpha-2 from a code or a name; an unknown value is kept, cleaned."""
    text = clean_text(value)
    if not text:
        return text
    for lookup in (
        lambda v: pycountry.countries.get(alpha_2=v.upper()),
        lambda v: pycountry.countries.get(alpha_3=v.upper()),
        lambda v: pycountry.countries.lookup(v),
    ):
        try:
            found = lookup(text)
        except LookupError:
            found = None
        if found:
            return found.alpha_2
    return text


def _is_empty(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or value == []


@dataclass(frozen=True)
class FieldRule:
    target: str
    sources: tuple[str, ...]
    normalize: tuple[str, ...]
    default: object = None


NORMALIZERS = {"strip", "lower", "upper", "email", "phone_e164", "country_alpha2", "text"}


@dataclass(frozen=True)
class Mapping:
    stream: str
    target: str
    source_id_field: str
    match_field: str
    rules: tuple[FieldRule, ...]
    create_defaults: tuple[tuple[str, object], ...] = ()

    def apply(self, record: dict) -> dict:
        """One source record (with derived columns) → one target payload, cut to store limits."""
        out: dict = {}
        for rule in self.rules:
            value = None
            for source in rule.sources:
                candidate = record.get(source)
                if not _is_empty(candidate):
                    value = candidate
                    break
            else:
                value = rule.default
            if isinstance(value, str):
                for step in rule.normalize:
                    value = _normalize(step, value, record)
            if isinstance(value, str):
                limit = CUSTOMER_MAX_LENGTHS.get(rule.target)
                value = cut(value, limit) if limit else value
            if not _is_empty(value):
                out[rule.target] = value
        return out

    def apply_columns(self, columns: dict[str, list], rows: int) -> list[dict]:
        """:meth:`apply` over a whole batch held as columns (name → one value per row): the same payloads
        (tests/unit/test_transform.py compares the two), one rule at a time over whole columns instead of
        one row at a time, without a dict per source row or the per-value choice of normalizer."""
        out: list[dict] = [{} for _ in range(rows)]
        country = columns.get("country") or [None] * rows
        for rule in self.rules:
            values = _first_non_empty([columns[s] for s in rule.sources if s in columns], rule.default, rows)
            for step in [_COLUMN_STEPS.get(step) or _unknown_step(step) for step in rule.normalize]:
                # Steps return str, so "is it a str" before each step is "was it one before the first".
                values = [step(v, c) if isinstance(v, str) else v for v, c in zip(values, country, strict=True)]
            limit = CUSTOMER_MAX_LENGTHS.get(rule.target)
            if limit:  # cut() returns a text of 2 x len <= limit as it is
                values = [cut(v, limit) if isinstance(v, str) and 2 * len(v) > limit else v for v in values]
            target = rule.target
            for payload, value in zip(out, values, strict=True):
                if value.strip() if value.__class__ is str else not _is_empty(value):
                    payload[target] = value
        return out


_NOTHING = object()


def _first_non_empty(columns: list[list], default, rows: int) -> list:
    """Per row, the first non-empty value of ``columns``, else ``default`` (as Mapping.apply picks)."""
    if not columns:
        return [default] * rows
    values = [v if (v.strip() if v.__class__ is str else not _is_empty(v)) else _NOTHING for v in columns[0]]
    for column in columns[1:]:
        values = [
            c if v is _NOTHING and (c.strip() if c.__class__ is str else not _is_empty(c)) else v
            for v, c in zip(values, column, strict=True)
        ]
    return [default if v is _NOTHING else v for v in values]


def _unknown_step(step: str):
    def fail(value: str, country) -> str:
        raise MappingError(f"unknown normalizer {step!r}")

    return fail


def _email(value: str) -> str:
    return clean_text(value).replace(" ", "")


# The normalizers as functions of (value, the row's country), for Mapping.apply_columns.
_COLUMN_STEPS = {
    "strip": lambda value, country: value.strip(),
    "lower": lambda value, country: value.lower(),
    "upper": lambda value, country: value.upper(),
    "text": lambda value, country: clean_text(value),
    "email": lambda value, country: _email(value),
    "phone_e164": normalize_phone,
    "country_alpha2": lambda value, country: normalize_country(value),
}
assert set(_COLUMN_STEPS) == NORMALIZERS


def _normalize(step: str, value: str, record: dict) -> str:
    """One normalizer on one record's value (the same functions ``Mapping.apply_columns`` runs)."""
    return (_COLUMN_STEPS.get(step) or _unknown_step(step))(value, record.get("country"))


def load_mapping(path: Path) -> Mapping:
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise MappingError(f"{path}: {exc}") from exc
    missing = [k for k in ("stream", "target", "source_id_field", "match_field", "fields") if k not in doc]
    if missing:
        raise MappingError(f"{path}: missing keys {missing}")
    rules = []
    for target, spec in doc["fields"].items():
        sources = spec.get("from", [])
        sources = (sources,) if isinstance(sources, str) else tuple(sources)
        normalize = spec.get("normalize", [])
        normalize = (normalize,) if isinstance(normalize, str) else tuple(normalize)
        unknown = set(normalize) - NORMALIZERS
        if unknown:
            raise MappingError(f"{path}: field {target}: unknown normalizer(s) {sorted(unknown)}")
        if not sources and "default" not in spec:
            raise MappingError(f"{path}: field {target} needs `from` or `default`")
        rules.append(FieldRule(target, sources, normalize, spec.get("default")))
    targets = {r.target for r in rules}
    for key in ("source_id_field", "match_field"):
        if doc[key] not in targets:
            raise MappingError(f"{path}: {key} {doc[key]!r} is not one of the mapped fields")
    defaults = doc.get("create_defaults") or {}
    if not isinstance(defaults, dict):
        raise MappingError(f"{path}: create_defaults must be a mapping of field → value")
    return Mapping(
        doc["stream"],
        doc["target"],
        doc["source_id_field"],
        doc["match_field"],
        tuple(rules),
        tuple(defaults.items()),
    )


def payload_hash(payload: dict) -> str:
    """Stable digest of what we would send: equal digests mean nothing to write."""
    # json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":")), UTF-8
    return hashlib.sha256(dumps(payload, sort_keys=True)).hexdigest()
