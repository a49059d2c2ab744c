"""The Shift4Shop v1 Customer object as the store documents it: field names and maximum lengths.

Source: ../shared/specs/shift4shop-api.md §2.3 (apirest.3dcart.com object definitions). What the
real API does with a longer value is undocumented, so the transform cuts every string to these.
"""

CUSTOMER_MAX_LENGTHS: dict[str, int] = {
    "Email": 100,
    "Password": 50,
    "BillingCompany": 255,
    "BillingFirstName": 50,
    "BillingLastName": 50,
    "BillingAddress1": 255,
    "BillingAddress2": 50,
    "BillingCity": 100,
    "BillingState": 100,
    "BillingCountry": 100,
    "BillingZipCode": 20,
    "BillingPhoneNumber": 50,
    "BillingTaxID": 50,
    "ShippingCompany": 255,
    "ShippingFirstName": 50,
    "ShippingLastName": 50,
    "ShippingAddress1": 255,
    "ShippingAddress2": 50,
    "ShippingCity": 100,
    "ShippingState": 100,
    "ShippingCountry": 100,
    "ShippingZipCode": 20,
    "ShippingPhoneNumber": 50,
    "Comments": 255,
    "AdditionalField1": 250,
    "AdditionalField2": 250,
    "AdditionalField3": 150,
}

CUSTOMER_NON_STRING_FIELDS = {
    "CustomerID",
    "ShippingAddressType",
    "CustomerGroupID",
    "Enabled",
    "MailList",
    "NonTaxable",
    "DisableBillingSameAsShipping",
    "TotalStoreCredit",
    "ResetPassword",
}
