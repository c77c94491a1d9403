"""WTForms classes with GOV.UK widgets and our own GOV.UK-style messages for every check."""
