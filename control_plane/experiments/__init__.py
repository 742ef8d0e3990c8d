"""Experiments: versions of one workflow compared on live traffic, with per-arm statistics.

``schemas`` (what the API takes and returns), ``service`` (start, read, stop), ``stats`` (the
sufficient statistics in the store), ``guard`` (what a running experiment forbids), ``routes``.
"""
