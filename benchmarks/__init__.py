"""Reproducible performance measurements that print JSON."""
