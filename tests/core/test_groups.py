"""Ragged group statistics against a loop reference; arbitrary (non-contiguous, unsorted) ids."""

from __future__ import annotations

import statistics

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dynamo_rl.core.groups import compact_group_ids, group_count, group_mean, group_std


def _loop_reference(values: list[float], ids: list[int], unbiased: bool):
    means, stds, counts = [], [], []
    for gid in ids:
        members = [v for v, g in zip(values, ids) if g == gid]
        means.append(sum(members) / len(members))
        counts.append(len(members))
        if len(members) == 1:
            stds.append(0.0 if unbiased else 0.0)
        else:
            stds.append(statistics.stdev(members) if unbiased else statistics.pstdev(members))
    return means, stds, counts


ragged = st.lists(st.tuples(st.integers(-50, 50), st.floats(-10, 10, allow_nan=False)), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(ragged, st.booleans())
def test_matches_loop_reference(rows, unbiased):
    ids = [r[0] for r in rows]
    values = [r[1] for r in rows]
    v = torch.tensor(values, dtype=torch.float64)
    g = torch.tensor(ids)
    means, stds, counts = _loop_reference(values, ids, unbiased)
    torch.testing.assert_close(group_mean(v, g), torch.tensor(means, dtype=torch.float64), atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(group_std(v, g, unbiased=unbiased), torch.tensor(stds, dtype=torch.float64),
                               atol=1e-7, rtol=1e-7)
    torch.testing.assert_close(group_count(g), torch.tensor(counts, dtype=torch.float32))


def test_hand_worked_ragged_groups():
    v = torch.tensor([1.0, 0.0, 1.0, 5.0, 2.0, 4.0])
    g = torch.tensor([7, 7, 7, -3, 100, 100])
    torch.testing.assert_close(group_mean(v, g), torch.tensor([2 / 3, 2 / 3, 2 / 3, 5.0, 3.0, 3.0]))
    torch.testing.assert_close(group_count(g), torch.tensor([3.0, 3.0, 3.0, 1.0, 2.0, 2.0]))
    std3 = (((1 - 2 / 3) ** 2 * 2 + (2 / 3) ** 2) / 2) ** 0.5
    torch.testing.assert_close(group_std(v, g), torch.tensor([std3, std3, std3, 0.0, 2 ** 0.5, 2 ** 0.5]))


def test_compact_ids_and_permutation_equivariance():
    g = torch.tensor([9, 2, 9, 5])
    index, num = compact_group_ids(g)
    assert num == 3
    assert index.tolist() == [2, 0, 2, 1]
    v = torch.randn(4, dtype=torch.float64)
    perm = torch.tensor([3, 1, 0, 2])
    torch.testing.assert_close(group_mean(v[perm], g[perm]), group_mean(v, g)[perm])
    torch.testing.assert_close(group_std(v[perm], g[perm]), group_std(v, g)[perm])


@pytest.mark.parametrize("values, ids, match", [
    (torch.zeros(2, 2), torch.zeros(2, 2, dtype=torch.long), "1-D"),
    (torch.zeros(3), torch.zeros(2, dtype=torch.long), "shape"),
    (torch.zeros(3), torch.zeros(3), "integer"),
])
def test_bad_input(values, ids, match):
    with pytest.raises(ValueError, match=match):
        group_mean(values, ids)
