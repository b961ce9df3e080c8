"""AOI: the river buffered by buffer_m, on the image grid."""

import numpy as np
import pytest
from shapely.geometry import LineString

from sandmine.aoi import from_vector, from_water_index
from sandmine.core.config import AoiParams
from sandmine.core.raster import Image, rasterize, to_crs


def test_vector_buffer_distance(grid):
    left, bottom, right, top = grid.bounds
    river = LineString([(left, top - 300), (right, top - 300)])  # along row 30
    lonlat = to_crs(river, grid.crs, "EPSG:4326")
    mask = rasterize([from_vector([lonlat], grid, AoiParams(buffer_m=100, simplify_m=0))], grid)
    rows = np.flatnonzero(mask[:, 40])
    assert rows.min() == 20 and rows.max() == 39  # centres within 100 m of y = row 30


def test_no_river_gives_empty_aoi(grid):
    assert not rasterize([from_vector([], grid, AoiParams())], grid).any()


def test_water_index_buffer(grid):
    data = np.zeros((2, 64, 80), np.float32)
    data[0], data[1] = 0.1, 0.3  # land: MNDWI < 0
    data[0, 30:34], data[1, 30:34] = 0.08, 0.01  # a river 4 rows wide
    img = Image(data, ["B3", "B11"], grid, {})
    mask = from_water_index(img, AoiParams(buffer_m=50))
    assert mask[30:34].all()
    assert mask[26, 0] and not mask[24, 0]
    with pytest.raises(Exception, match="B11"):
        from_water_index(Image(data[:1], ["B3"], grid, {}), AoiParams())
