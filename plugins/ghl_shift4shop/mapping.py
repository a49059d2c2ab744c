"""Field mappings: load the YAML files in ``include/mappings/`` and apply them to records.

The YAML is the one place mapping rules live; this module only knows how to read and apply them.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import phonenumbers
import pycountry
import yaml

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
    return _phone(value, country.upper() if country and len(country) == 2 else "US")


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


def _normalize(step: str, value: str, record: dict) -> str:
    if step == "strip":
        return value.strip()
    if step == "lower":
        return value.lower()
    if step == "upper":
        return value.upper()
    if step == "text":
        return clean_text(value)
    if step == "email":
        return clean_text(value).replace(" ", "")
    if step == "phone_e164":
        return normalize_phone(value, record.get("country"))
    if step == "country_alpha2":
        return normalize_country(value)
    raise MappingError(f"unknown normalizer {step!r}")


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
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
