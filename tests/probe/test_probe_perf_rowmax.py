"""The engine's chunked row maximum (stabcli.probe.optim.row_max) against ``torch.max(dim=1)``.

The max-update record and its tensor name come from it, so it must give torch's values and
indices exactly: NaN propagating to its first index, ties to the first index, the tail past
the last whole chunk included.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from stabcli.probe.optim import row_max

torch.set_num_threads(1)

CHUNK = 8  # small chunks so that every case crosses several, and has a tail


def _random(n: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(n)
    return torch.rand((5, n), generator=gen, dtype=torch.float64)


def _ties(n: int) -> torch.Tensor:  # Adam's first step: |u_0| = 1 nearly everywhere
    x = torch.ones((4, n), dtype=torch.float64)
    x[1, ::3] = 0.5
    x[2, :] = 0.0
    return x


def _nan(n: int) -> torch.Tensor:
    x = _random(n)
    x[0, n // 2] = torch.nan
    x[1, n - 1] = torch.nan  # in the tail
    x[2, 1] = x[2, n - 2] = torch.nan  # two: the first is the index
    return x


def _inf(n: int) -> torch.Tensor:
    x = _random(n)
    x[0, n - 1] = torch.inf
    x[1, 0] = x[1, n // 2] = torch.inf
    return x


def _max_in_tail(n: int) -> torch.Tensor:
    x = _random(n)
    x[:, n - 1] = 2.0
    x[1, n - 2] = 2.0  # a tie inside the tail
    return x


def _max_at_chunk_edges(n: int) -> torch.Tensor:
    x = _random(n)
    edge = min(CHUNK, n - 1)  # the first index of the second chunk (or the last)
    x[0, edge - 1] = x[0, edge] = 3.0  # tie across a chunk boundary: the earlier index
    x[1, 0] = 3.0
    return x


CASES: dict[str, Callable[[int], torch.Tensor]] = {
    "random": _random,
    "ties": _ties,
    "nan": _nan,
    "inf": _inf,
    "max-in-tail": _max_in_tail,
    "tie-across-chunks": _max_at_chunk_edges,
}
WIDTHS = {
    "shorter-than-a-chunk": CHUNK - 3,
    "whole-chunks": 4 * CHUNK,
    "with-tail": 4 * CHUNK + 5,
}


@pytest.mark.parametrize("width", list(WIDTHS.values()), ids=list(WIDTHS))
@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_row_max_gives_torch_max_values_and_first_indices(case: str, width: int) -> None:
    x = CASES[case](width)
    values, index = row_max(x, chunk=CHUNK)
    want_values, want_index = x.max(dim=1)
    torch.testing.assert_close(values, want_values, rtol=0.0, atol=0.0, equal_nan=True)
    assert torch.equal(index, want_index)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_row_max_at_the_engine_chunk_on_a_parameter_sized_buffer(dtype: torch.dtype) -> None:
    """The default chunk on a (P, N) buffer like tiny-char's (N not a multiple of it)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn((16, 14688), generator=gen, dtype=dtype).abs()
    x[3, 14687] = 10.0
    values, index = row_max(x)
    want_values, want_index = x.max(dim=1)
    torch.testing.assert_close(values, want_values, rtol=0.0, atol=0.0)
    assert torch.equal(index, want_index)
