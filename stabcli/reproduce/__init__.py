"""Reproducing the papers' analyses: one function (and one command) per figure, each with
the paper's claim beside what was measured here."""
