"""Measurement of a max-update trace: slopes, their uncertainty, classes and bound checks.

Torch-free (numpy only) and the one place where these are computed: the sweep, the report
and the live monitor all use it (docs/theory.md §9).
"""
