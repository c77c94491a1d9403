"""The domain: models and rules. Never imports Flask; routes call in with plain values."""
