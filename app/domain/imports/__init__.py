"""Imports: reading payment files (formats), the templates that describe them, and the rules
that route, change or hold back each row before the pipeline posts it."""
