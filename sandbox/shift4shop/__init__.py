"""Local simulator of the Shift4Shop (3dcart) REST API v1: customers, customer groups, CRM, rate limit.

``Shift4ShopState`` holds the data and knobs; ``create_app(state)`` serves it over HTTP. See
``BEHAVIOR.md`` beside this file for every quirk reproduced and every choice made where the
public documentation is silent.
"""

from sandbox.shift4shop.app import create_app
from sandbox.shift4shop.state import CRM_FIELDS, CRM_MESSAGE_FIELDS, CUSTOMER_FIELDS, FIELD_MAX_LENGTHS, Shift4ShopState

__all__ = [
    "CRM_FIELDS",
    "CRM_MESSAGE_FIELDS",
    "CUSTOMER_FIELDS",
    "FIELD_MAX_LENGTHS",
    "Shift4ShopState",
    "create_app",
]
