"""Adapters to the outside world (GOV.UK Pay, GOV.UK Notify, the task queue)."""
