"""What a search of a file returns: one (beta1, beta2) and where it was found."""

from __future__ import annotations

from dataclasses import dataclass

from stabcli.theory.domain import HyperPoint


@dataclass(frozen=True)
class FoundBetas:
    """One Adam point found in a file, in PyTorch's order ``betas=(beta1, beta2)``.

    PyTorch's beta1 is the paper's γ and beta2 its β (docs/theory.md §1); both values were
    checked to be in range (beta1 in [0, 1), beta2 in (0, 1)) when found.
    """

    file: str  # the file as the user named it
    key: str  # key path inside it, e.g. "optimizer.param_groups[0].betas"
    beta1: float  # first-moment decay: the paper's γ
    beta2: float  # second-moment decay: the paper's β

    @property
    def source(self) -> str:
        """Where the pair was found, as shown to users: ``"file: key.path"``."""
        return f"{self.file}: {self.key}"

    @property
    def point(self) -> HyperPoint:
        """The point in the paper's order (β, γ) = (beta2, beta1)."""
        return HyperPoint.from_torch(self.beta1, self.beta2)
