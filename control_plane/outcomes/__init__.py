"""Outcomes: what happened after a run (a conversion, a rating), per named metric."""
