"""crm_to_store.yaml: no stream that can e-mail a customer is on unless the file says so twice."""

from __future__ import annotations

import pytest
import yaml
from ghl_shift4shop.crm_config import CrmConfigError, load_crm_config

from tests.builders import ROOT


def write(tmp_path, doc: dict):
    mappings = tmp_path / "mappings"
    mappings.mkdir(exist_ok=True)
    (mappings / "tag_groups.yaml").write_text((ROOT / "include/mappings/tag_groups.yaml").read_text())
    (mappings / "crm_to_store.yaml").write_text(yaml.safe_dump(doc))
    return mappings


def shipped() -> dict:
    return yaml.safe_load((ROOT / "include/mappings/crm_to_store.yaml").read_text())


def test_the_shipped_defaults_write_no_ticket_and_no_message():
    cfg = load_crm_config(ROOT / "include" / "mappings")
    assert cfg.ticket_streams == []
    assert cfg.store_may_email_customers is False
    assert cfg.enabled_children == ["tasks", "notes", "appointments"]  # still fetched, for Comments
    assert cfg.comments_enabled


@pytest.mark.parametrize("stream", ["tasks", "notes", "appointments"])
def test_tickets_without_the_acknowledgement_are_refused(tmp_path, stream):
    doc = shipped()
    doc[stream]["ticket" if stream == "notes" else "tickets"] = True
    with pytest.raises(CrmConfigError, match="e-mails the customer"):
        load_crm_config(write(tmp_path, doc))
    doc["store_may_email_customers"] = True
    assert load_crm_config(write(tmp_path, doc)).ticket_streams == [stream]


def test_the_acknowledgement_must_be_a_boolean(tmp_path):
    doc = shipped()
    doc["store_may_email_customers"] = "yes"
    with pytest.raises(CrmConfigError, match="true or false"):
        load_crm_config(write(tmp_path, doc))


def test_the_mapping_file_warns_in_words():
    text = (ROOT / "include/mappings/crm_to_store.yaml").read_text()
    assert "e-mail your customers" in text and "store_may_email_customers: false" in text
