"""Batch files: msgspec reads and writes them where it gives what the standard json module gives.

``batches.dumps``/``loads`` (and so ``write_jsonl``/``read_jsonl``/``payload_hash``) must give exactly
``json.dumps(..., ensure_ascii=False, separators=(",", ":"))``/``json.loads``: compared here over random
nested values (floats of every magnitude, NaN, big ints, every kind of character, odd keys and types),
hand-picked texts, and the generator's contacts.
"""

from __future__ import annotations

import json
import math
import random

import pytest
from ghl_shift4shop.batches import dumps, loads, read_jsonl, write_jsonl

from sandbox.seed import generate_contacts


class Tag(str):
    pass


def random_text(rng: random.Random) -> str:
    pools = (
        [chr(c) for c in range(0, 0x80)],
        [chr(c) for c in range(0x80, 0x800)],
        ["\u2028", "\u2029", "\ufeff", "\u00a0", "\u200f", "é", "ß", "東", "\x7f", "\\", '"', "/"],
        ["😀", "🚀", "\U0010ffff", "𝄞"],
    )
    return "".join(rng.choice(rng.choice(pools)) for _ in range(rng.randint(0, 12)))


def random_float(rng: random.Random) -> float:
    return rng.choice(
        [
            rng.uniform(-1, 1) * 10 ** rng.randint(-30, 30),
            float(rng.randint(-(10**18), 10**18)),
            rng.choice([0.0, -0.0, 1e16, 1e-5, 1e-4, 1e15, 1e-7, 5e-324, 1.7976931348623157e308]),
            rng.choice([math.nan, math.inf, -math.inf]),
        ]
    )


def random_value(rng: random.Random, depth: int = 0):
    kind = rng.randrange(11 if depth < 3 else 7)
    if kind == 0:
        return random_text(rng)
    if kind == 1:
        return rng.choice([0, -1, 7, 2**63, -(2**63) - 1, 10**30, rng.randint(-(10**9), 10**9)])
    if kind == 2:
        return rng.choice([True, False, None])
    if kind == 3:
        return random_float(rng)
    if kind == 4:
        return Tag(random_text(rng))
    if kind == 5:
        return rng.choice(["plain", "", " ", "a@b.co"])
    if kind == 6:
        return rng.randint(0, 99)
    if kind in (7, 8):
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    keys = [random_text(rng) for _ in range(rng.randint(0, 5))]
    if rng.random() < 0.1:
        keys.append(rng.choice([1, 2.5, True, None]))
    value = {k: random_value(rng, depth + 1) for k in keys}
    if rng.random() < 0.1:
        value["t"] = (1, "a")  # a tuple is written as a list
    return value


def reference_dumps(value, sort_keys: bool = False) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=sort_keys).encode("utf-8")


def same_objects(a, b) -> bool:
    """Equal, of the same types, dicts in the same key order (and NaN equal to NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b)) if not (a == 0 == b) else str(a) == str(b)
    if isinstance(a, dict):
        return list(a) == list(b) and all(same_objects(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_objects(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@pytest.mark.parametrize("sort_keys", [False, True])
def test_dumps_writes_what_json_dumps_writes(sort_keys):
    rng = random.Random(1)
    for _ in range(20_000):
        value = {"v": random_value(rng)}
        try:
            expected = reference_dumps(value, sort_keys)
        except (TypeError, ValueError):  # keys json.dumps cannot sort (mixed types)
            with pytest.raises((TypeError, ValueError)):
                dumps(value, sort_keys=sort_keys)
            continue
        assert dumps(value, sort_keys=sort_keys) == expected, value


def test_loads_reads_what_json_loads_reads():
    rng = random.Random(2)
    texts = [reference_dumps({"v": random_value(rng)}).decode() for _ in range(20_000)]
    texts += [
        '{"a":1E400}', '{"a":-1e400}', '{"a":1e-400}', '{"a":NaN}', '{"a":Infinity}', '{"a":"\\ud800"}',
        '{"a":"\\ud83d\\ude00"}', ' {"a" : [1 , 2.50, -0, -0.0, 1E2] } \n', '{"a":1,"b":2,"a":3}',
        '{"\\u00e9":"\\/\\b\\f\\n\\r\\t"}', '{"a":123456789012345678901234567890}', '"x"', "3", "[]",
    ]  # fmt: skip
    for text in texts:
        assert same_objects(loads(text), json.loads(text)), text
    for bad in ('{"a":1,}', '{"a":"x\ty"}', "{'a':1}", '{"a":1} x', "\ufeff{}", "", '{"a":tru}'):
        with pytest.raises(json.JSONDecodeError):
            loads(bad)


def test_batch_files_are_byte_identical_to_the_json_module(tmp_path):
    contacts = generate_contacts(2000, seed=4, dirty_share=0.3, location_id="loc")
    contacts[5]["odd"] = {"float": 1e16, "small": 1e-5, "nan": math.nan, "tuple": (1, 2)}
    path = write_jsonl(tmp_path / "b.jsonl", contacts) and tmp_path / "b.jsonl"
    expected = "".join(json.dumps(c, ensure_ascii=False, separators=(",", ":")) + "\n" for c in contacts)
    assert path.read_bytes() == expected.encode("utf-8")
    back = list(read_jsonl(path))
    assert all(same_objects(a, json.loads(line)) for a, line in zip(back, expected.split("\n")[:-1], strict=True))


def holds_float(value) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(holds_float(v) for v in value.values())
    if isinstance(value, list):
        return any(holds_float(v) for v in value)
    return False


def test_float_free_records_are_written_as_json_dumps_would(tmp_path):
    from ghl_shift4shop.batches import dumps_float_free, read_jsonl_float_free

    rng = random.Random(3)
    values = [{"v": random_value(rng)} for _ in range(20_000)]
    values += [{"a": [1, 2.5]}, {"a": 1e5}, {"a": -1e-5}, {"a": [0, {"b": 3e2}]}]  # noqa: PLR2004
    path = tmp_path / "f.jsonl"
    with path.open("w", encoding="utf-8") as fh:  # whitespace as other writers leave it
        for i, v in enumerate(values):
            fh.write(json.dumps(v, ensure_ascii=False, indent=None if i % 3 else 1).replace("\n", " ") + "\n")
    free_count = 0
    for (record, free), value in zip(read_jsonl_float_free(path), values, strict=True):
        assert same_objects(record, json.loads(json.dumps(value)))
        if holds_float(record):
            assert not free, record
        if free:
            free_count += 1
            assert dumps_float_free(record) == reference_dumps(record)
    assert free_count > 5000
