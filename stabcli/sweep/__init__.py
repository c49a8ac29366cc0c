"""Sweeps: probes over a region of the (β, γ) plane, measured against both theories."""
