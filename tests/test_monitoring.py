"""Known answers for change classes, the temporal median and small-object cleaning."""

import numpy as np

from sandmine import monitoring as m


def _mask(shape, *boxes):
    out = np.zeros(shape, bool)
    for r0, r1, c0, c1 in boxes:
        out[r0:r1, c0:c1] = True
    return out


def test_change_classes():
    before = _mask((20, 20), (0, 4, 0, 4), (10, 14, 10, 14))
    # first mine grows by two columns; second is gone; a new mine appears
    after = _mask((20, 20), (0, 4, 0, 6), (16, 19, 0, 3))
    c = m.change(before, after)
    assert (c[0:4, 4:6] == m.EXPANDED).all() and (c == m.EXPANDED).sum() == 8
    assert (c[10:14, 10:14] == m.ABANDONED).all() and (c == m.ABANDONED).sum() == 16
    assert (c[16:19, 0:3] == m.NEW).all() and (c == m.NEW).sum() == 9
    assert (c[0:4, 0:4] == m.NONE).all()  # mined on both dates: no change


def test_change_diagonal_neighbour_counts_as_same_mine():
    before = _mask((10, 10), (0, 2, 0, 2))
    after = _mask((10, 10), (0, 2, 0, 2), (2, 4, 2, 4))  # touches only at a corner
    assert (m.change(before, after)[2:4, 2:4] == m.EXPANDED).all()


def test_temporal_median_ignores_one_bad_date():
    clear = np.full((3, 3), 200, np.uint8)
    cloudy = np.zeros((3, 3), np.uint8)
    assert (m.temporal_median([clear, cloudy, clear]) == 200).all()
    assert m.temporal_median([np.uint8([[10]]), np.uint8([[21]])])[0, 0] == 16  # 15.5 rounds to even


def test_clean_drops_small_objects():
    mask = _mask((10, 10), (0, 1, 0, 1), (5, 8, 5, 8))
    assert m.clean(mask, 4).sum() == 9
    assert m.clean(np.zeros((3, 3), bool), 4).sum() == 0
