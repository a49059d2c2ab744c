"""E-mails are masked in log lines and errors, also inside URLs (percent-encoded)."""

from __future__ import annotations

import json
import logging
import socket
import traceback

import pytest
import requests
from ghl_shift4shop.shift4shop.hook import Shift4ShopHook
from ghl_shift4shop.transport import ApiError, mask_email


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("jane.doe@example.com", "j***@example.com"),
        ("GET /Customers?email=jane.doe%40example.com&limit=10", "GET /Customers?email=j***%40example.com&limit=10"),
        ("email=JANE.DOE%40EXAMPLE.COM", "email=J***%40EXAMPLE.COM"),
        ("email=jane.doe%2540example.com", "email=j***%2540example.com"),  # encoded twice
        ("email=jane%2Bvip%40example.com&offset=1", "email=j***%40example.com&offset=1"),  # "+" as %2B
        ("email=jane%2bvip%40example.com", "email=j***%40example.com"),
        ("email=jane+vip@example.com", "email=j***@example.com"),
        ("to a@b.co and b.c%40d.org", "to a***@b.co and b***%40d.org"),
    ],
)
def test_mask_email_in_text_and_urls(text, masked):
    assert mask_email(text) == masked


def test_mask_email_leaves_other_percent_escapes_alone():
    text = "GET /Customers?name=Jane%20Doe&limit=10 answered 50%"
    assert mask_email(text) == text


def test_mask_email_in_api_error_messages():
    err = ApiError("shift4shop", 404, "GET /Customers?email=jane.doe%40example.com: no record for jane.doe@example.com")
    assert "jane.doe" not in str(err) and "j***%40example.com" in str(err) and "j***@example.com" in str(err)


EMAIL = "Jane.Doe+VIP@Example.com"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_mask_email_in_the_retry_log_line_and_the_final_error(tmp_path, monkeypatch, caplog, capfd):
    """A connection error quotes the URL, e-mail and all; the retry warning, HttpHook's own
    warning and the error raised in the end carry it masked."""
    conn = {
        "conn_type": "http",
        "host": f"http://127.0.0.1:{_closed_port()}",
        "extra": {"secure_url": "store.example", "private_key": "pk", "token": "tk"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_DEAD_STORE", json.dumps(conn))
    hook = Shift4ShopHook(
        "dead_store", timeout=1, max_attempts=2, backoff_max=0.01, rate_backend=f"sqlite:///{tmp_path / 'b.db'}"
    )
    with (
        caplog.at_level(logging.WARNING, logger="ghl_shift4shop.transport"),
        pytest.raises(requests.ConnectionError) as raised,
    ):
        hook.find_customers_by_email(EMAIL)
    retry_lines = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert len(retry_lines) == 1 and "/Customers?email=" in retry_lines[0]
    for text in (*retry_lines, str(raised.value)):
        assert "Jane.Doe" not in text and "J***%40Example.com" in text, text
    # The traceback a task log shows does not bring the original (unmasked) back either.
    assert "Jane.Doe" not in "".join(traceback.format_exception(raised.value))
    out, err = capfd.readouterr()
    assert "Tenacity will retry" in out + err + caplog.text  # HttpHook's own line, masked too
    assert "Jane.Doe" not in out + err + caplog.text
