"""COG writing and reading: scales, band names, atomicity, clear errors."""

import numpy as np
import pytest
import rasterio

from sandmine.errors import SandmineError
from sandmine.raster import grid_for_bounds, read_image, read_mask, utm_crs, write_cog


def test_write_read_roundtrip_with_scales_and_names(tmp_path, grid):
    data = np.stack([np.full((64, 80), 1234, np.int16), np.full((64, 80), -1500, np.int16)])
    path = tmp_path / "img.tif"
    write_cog(path, data, grid, ["B4", "VV"], {"source": "synthetic"}, nodata=-32768, scales=[1e-4, 1e-2])
    img = read_image(path)
    assert img.bands == ["B4", "VV"]
    assert img.tags["source"] == "synthetic"
    np.testing.assert_allclose(img.data[0], 0.1234, rtol=1e-5)
    np.testing.assert_allclose(img.data[1], -15.0, rtol=1e-5)
    only = read_image(path, ["VV"])
    assert only.bands == ["VV"] and only.data.shape == (1, 64, 80)
    with rasterio.open(path) as src:
        assert src.profile["tiled"] and src.crs == grid.crs


def test_nodata_reads_as_nan(tmp_path, grid):
    data = np.ones((1, 64, 80), np.int16)
    data[0, :5] = -32768
    write_cog(tmp_path / "a.tif", data, grid, ["B2"], nodata=-32768)
    img = read_image(tmp_path / "a.tif")
    assert np.isnan(img.data[0, :5]).all() and np.isfinite(img.data[0, 5:]).all()


def test_missing_band_names_file_and_band(tmp_path, grid):
    write_cog(tmp_path / "a.tif", np.ones((1, 64, 80), np.float32), grid, ["B2"])
    with pytest.raises(SandmineError, match="B11") as err:
        read_image(tmp_path / "a.tif", ["B2", "B11"])
    assert "a.tif" in str(err.value)


def test_corrupt_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"II*\x00garbage")
    with pytest.raises(SandmineError, match="not a readable raster"):
        read_image(bad)


def test_image_without_crs_refused(tmp_path):
    path = tmp_path / "nocrs.tif"
    with rasterio.open(path, "w", driver="GTiff", width=8, height=8, count=1, dtype="uint8") as dst:
        dst.write(np.zeros((1, 8, 8), np.uint8))
    with pytest.raises(SandmineError, match="no CRS"):
        read_image(path)


def test_failed_write_leaves_no_file(tmp_path, grid):
    with pytest.raises(ValueError):
        write_cog(tmp_path / "x.tif", np.ones((3, 10, 10), np.float32), grid)
    assert list(tmp_path.iterdir()) == []


def test_mask_on_other_grid_refused(tmp_path, grid):
    write_cog(tmp_path / "m.tif", np.zeros((64, 80), np.uint8), grid)
    other = grid_for_bounds((80.0, 16.0, 80.01, 16.01))
    with pytest.raises(SandmineError, match="not on the image grid"):
        read_mask(tmp_path / "m.tif", other)


def test_utm_zone_and_grid_snapping():
    assert utm_crs(79.95, 25.9).to_epsg() == 32644
    assert utm_crs(-70.0, -33.0).to_epsg() == 32719
    g = grid_for_bounds((79.94, 25.92, 79.96, 25.94))
    assert g.res_m == 10 and g.transform.c % 10 == 0 and g.transform.f % 10 == 0
    assert 190 < g.width < 215 and 215 < g.height < 230
