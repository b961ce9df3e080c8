"""Window arithmetic: training centres in the AOI, prediction grids that cover the raster."""

import numpy as np
import pytest

from sandmine.core.windows import crop, dihedral, grid, keep_region, sample_centres, starts


@pytest.mark.parametrize("length,window,stride", [(100, 32, 16), (256, 256, 192), (300, 256, 192), (20, 64, 32)])
def test_starts_cover_axis_flush_with_end(length, window, stride):
    s = starts(length, window, stride)
    assert s[0] == 0
    assert s[-1] == max(0, length - window)
    assert all(b - a <= stride for a, b in zip(s, s[1:]))


def test_kept_regions_cover_every_pixel():
    h, w, window, stride, discard = 300, 410, 128, 64, 32
    seen = np.zeros((h, w), int)
    for r, c in grid(h, w, window, stride):
        rs, cs = keep_region(r, c, window, h, w, discard)
        seen[r + rs.start : r + rs.stop, c + cs.start : c + cs.stop] += 1
    assert seen.min() >= 1


def test_sample_centres_lie_in_aoi(rng):
    masks = [np.zeros((50, 60), bool), np.zeros((40, 40), bool)]
    masks[0][10:20, 30:35] = True
    masks[1][0, 0] = True
    centres = sample_centres(masks, 500, rng)
    assert len(centres) == 500
    assert all(masks[i][r, c] for i, r, c in centres)
    # proportional to AOI size: image 0 has 50 px, image 1 one px
    assert sum(i == 0 for i, _, _ in centres) > 450


def test_crop_pads_outside_with_fill():
    arr = np.arange(25, dtype=np.float32).reshape(5, 5)
    out = crop(arr, 0, 0, 4, -1)
    assert out.shape == (4, 4)
    assert out[0, 0] == -1 and out[2, 2] == arr[0, 0]


@pytest.mark.parametrize("k", range(4))
@pytest.mark.parametrize("flip", [False, True])
def test_dihedral_same_for_numpy_and_torch(k, flip):
    import torch

    a = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    out = dihedral(a, k, flip)
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, np.rot90(a, k, axes=(2, 3))[..., ::-1] if flip else np.rot90(a, k, axes=(2, 3)))
    np.testing.assert_array_equal(dihedral(torch.from_numpy(a), k, flip).numpy(), out)


def test_dihedral_gives_the_eight_distinct_turns():
    a = np.arange(9).reshape(3, 3)
    assert len({dihedral(a, k, f).tobytes() for k in range(4) for f in (False, True)}) == 8
