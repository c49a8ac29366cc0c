"""Content-derived identities: a point's id comes from what it computes, not from its order.

Re-running a sweep with a reordered or extended point list then never duplicates or mixes
results: a finished point is recognised by its id.
"""

from __future__ import annotations

import hashlib
import json


def fingerprint(settings: object) -> str:
    """A short stable hash of JSON-serialisable settings (key order does not matter)."""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def point_id(
    settings_fingerprint: str,
    beta: float,
    gamma: float,
    lr: float | None = None,
    weight_decay: float | None = None,
) -> str:
    """Id of the point (β, γ), with its own learning rate η and weight decay λ when given,
    under the settings with the given fingerprint.

    Floats enter by their exact hex form, so 0.1 and 0.1000000000000001 differ. η and λ
    enter only when given (``None``: the settings' own), so a plain (β, γ) point keeps the
    id it always had and runs made before per-point η and λ existed resume.
    """
    text = f"{settings_fingerprint}|{float(beta).hex()}|{float(gamma).hex()}"
    if lr is not None:
        text += f"|lr={float(lr).hex()}"
    if weight_decay is not None:
        text += f"|wd={float(weight_decay).hex()}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]
