"""COG writing and reading: scales, band names, atomicity, clear errors."""

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import box

from sandmine.core.errors import SandmineError
from sandmine.core.raster import (
    CogWriter,
    Grid,
    grid_for_bounds,
    rasterize,
    read_image,
    read_mask,
    utm_crs,
    write_cog,
)


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
    write_cog(tmp_path / "a.tif", data, grid, ["B2"], nodata=-32768, scales=[1e-4])
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


CLASSES = {0, 1, 3, 255}


def _big_grid(height: int = 1024, width: int = 1024) -> Grid:
    """A 10 m grid in UTM 44N, large enough by default for two overview levels."""
    return Grid(utm_crs(80.0, 25.0), from_origin(500_000, 2_800_000, 10, 10), height, width)


def _overview_levels(path) -> list[np.ndarray]:
    """Band 1 of every overview level of `path`, finest first."""
    with rasterio.open(path) as src:
        n = len(src.overviews(1))
    levels = []
    for k in range(n):
        with rasterio.open(path, overview_level=k) as ov:
            levels.append(ov.read(1))
    return levels


def _assert_valid_cog(path) -> None:
    from rio_cogeo.cogeo import cog_validate

    is_valid, errors, warnings = cog_validate(str(path), quiet=True)
    assert is_valid and not errors and not warnings, (path, errors, warnings)


def test_write_cog_mask_overviews_keep_classes(tmp_path):
    rng = np.random.default_rng(0)
    mask = rng.choice(np.array(sorted(CLASSES), np.uint8), size=(1024, 1024))
    write_cog(tmp_path / "m.tif", mask, _big_grid(), ["label"])  # the default is for classes
    levels = _overview_levels(tmp_path / "m.tif")
    assert [lv.shape for lv in levels] == [(512, 512), (256, 256)]
    for k, lv in enumerate(levels):
        assert set(np.unique(lv).tolist()) <= CLASSES, f"overview level {k} invents classes"
    _assert_valid_cog(tmp_path / "m.tif")


def test_write_cog_mode_overviews_skip_nodata(tmp_path):
    mask = np.zeros((1024, 1024), np.uint8)
    mask[0, :2], mask[1, 0] = 255, 1  # the first 2×2 block: two nodata, one mine, one not
    write_cog(tmp_path / "m.tif", mask, _big_grid(), ["aoi"], nodata=255)
    assert _overview_levels(tmp_path / "m.tif")[0][0, 0] in (0, 1)


def test_cog_writer_probability_overviews_are_averaged(tmp_path):
    prob = np.where((np.indices((1024, 1024)).sum(axis=0) % 2) == 0, 0, 255).astype(np.uint8)  # checkerboard
    with CogWriter(tmp_path / "p.tif", _big_grid(), "uint8", "mine_probability", resampling="average") as out:
        for row in range(0, 1024, 300):
            out.write_rows(row, prob[row : row + 300])
    levels = _overview_levels(tmp_path / "p.tif")
    assert len(levels) == 2 and levels[0][10, 10] in (127, 128)  # mean of 0, 255, 255, 0
    with rasterio.open(tmp_path / "p.tif") as src:
        assert src.descriptions == ("mine_probability",)
        np.testing.assert_array_equal(src.read(1), prob)
    _assert_valid_cog(tmp_path / "p.tif")


def test_write_cog_image_overviews_are_averaged_without_nodata(tmp_path):
    data = np.arange(2 * 1024 * 1024, dtype=np.float32).reshape(2, 1024, 1024) / 1e4
    write_cog(tmp_path / "f.tif", data, _big_grid(), ["B2", "VV"], resampling="average")
    with rasterio.open(tmp_path / "f.tif", overview_level=0) as ov:
        np.testing.assert_allclose(ov.read()[:, 3, 5], data[:, 6:8, 10:12].mean(axis=(1, 2)), rtol=1e-6)
    stored = np.full((1, 1024, 1024), 100, np.int16)
    stored[0, 0, 0], stored[0, 0, 1] = -32768, 200
    write_cog(tmp_path / "i.tif", stored, _big_grid(), ["B4"], nodata=-32768, scales=[1e-4], resampling="average")
    assert _overview_levels(tmp_path / "i.tif")[0][0, 0] == 133  # (200 + 100 + 100) / 3: nodata left out


@pytest.mark.parametrize("height,width", [(64, 80), (700, 600)])
def test_write_cog_and_cog_writer_write_valid_cogs(tmp_path, height, width):
    grid = _big_grid(height, width)
    image = np.full((2, height, width), 500, np.int16)
    write_cog(tmp_path / "img.tif", image, grid, ["B2", "B3"], {"source": "synthetic"}, -32768, [1e-4, 1e-4], "average")
    write_cog(tmp_path / "mask.tif", np.ones((height, width), np.uint8), grid, ["mine"], {"site_id": "a"})
    with CogWriter(tmp_path / "prob.tif", grid, "uint8", "mine_probability", {"date": "2026-01-01"}) as out:
        out.write_rows(0, np.full((height, width), 200, np.uint8))
    for name in ("img.tif", "mask.tif", "prob.tif"):
        with rasterio.open(tmp_path / name) as src:
            assert bool(src.overviews(1)) == (height > 512)
        _assert_valid_cog(tmp_path / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.tif", "mask.tif", "prob.tif"]


def test_unknown_overview_resampling_refused(tmp_path, grid):
    with pytest.raises(ValueError, match="cubic"):
        write_cog(tmp_path / "x.tif", np.zeros((64, 80), np.uint8), grid, resampling="cubic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cubic"):
        CogWriter(tmp_path / "y.tif", grid, "uint8", "p", resampling="cubic")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_digital_numbers_read_as_reflectance_once_with_one_log_line(tmp_path, grid, caplog):
    from sandmine.core.raster import ImageReader

    dn = np.random.default_rng(0).integers(1, 5000, (2, 64, 80)).astype(np.uint16)
    dn[:, :3] = 0  # Sentinel-2's nodata
    write_cog(tmp_path / "dn.tif", dn, grid, ["B2", "B4"])
    with caplog.at_level("INFO", logger="sandmine.core.raster"):
        with ImageReader(tmp_path / "dn.tif", ["B4"]) as reader:
            rows = reader.read_rows(0, 64)
    np.testing.assert_array_equal(rows[0, 3:], dn[1, 3:].astype(np.float32) / np.float32(10_000))
    assert np.isnan(rows[:, :3]).all()
    (record,) = caplog.records
    assert "dn.tif" in record.getMessage() and "DN / 10000" in record.getMessage()


def test_units_are_decided_for_the_whole_file_whatever_bands_are_read(tmp_path, grid):
    dn = np.stack([np.full((64, 80), 120), np.full((64, 80), 3000)]).astype(np.uint16)  # dark B2, bright B4
    write_cog(tmp_path / "dn.tif", dn, grid, ["B2", "B4"])
    np.testing.assert_allclose(read_image(tmp_path / "dn.tif", ["B2"]).data, 0.012)


def test_offset_applied_only_where_the_file_says_so(tmp_path, grid):
    dn = np.full((1, 64, 80), 3000, np.uint16)
    write_cog(tmp_path / "old.tif", dn, grid, ["B8"])
    tags = {"BOA_ADD_OFFSET_B08": "-1000", "BOA_QUANTIFICATION_VALUE": "10000"}  # as ESA's metadata names them
    write_cog(tmp_path / "new.tif", dn, grid, ["B8"], tags)
    np.testing.assert_allclose(read_image(tmp_path / "old.tif").data, 0.3)
    np.testing.assert_allclose(read_image(tmp_path / "new.tif").data, 0.2)


def test_pipeline_and_reflectance_files_read_exactly_as_before(tmp_path, grid, monkeypatch):
    from sandmine.core import raster

    stored = np.random.default_rng(1).integers(-2000, 9000, (3, 64, 80)).astype(np.int16)
    stored[:, :2] = -32768
    write_cog(tmp_path / "own.tif", stored, grid, ["B2", "VV", "CLOUD"], nodata=-32768, scales=[1e-4, 1e-2, 1e-4])
    refl = np.random.default_rng(2).uniform(0, 0.4, (2, 64, 80)).astype(np.float32)
    write_cog(tmp_path / "refl.tif", refl, grid, ["B2", "B3"])
    scaled = read_image(tmp_path / "own.tif").data
    expected = stored.astype(np.float32) * np.array([1e-4, 1e-2, 1e-4], np.float32)[:, None, None]
    expected[:, :2] = np.nan
    np.testing.assert_array_equal(scaled, expected)
    np.testing.assert_array_equal(read_image(tmp_path / "refl.tif").data, refl)
    monkeypatch.setattr(raster, "_sample", lambda *a: pytest.fail("a file with scales needs no sample"))
    read_image(tmp_path / "own.tif")


def test_linear_power_radar_becomes_db(tmp_path, grid, caplog):
    power = np.random.default_rng(3).uniform(0.001, 0.5, (2, 64, 80)).astype(np.float32)
    write_cog(tmp_path / "s1.tif", power, grid, ["VV", "VH"])
    with caplog.at_level("INFO", logger="sandmine.core.raster"):
        img = read_image(tmp_path / "s1.tif")
    np.testing.assert_allclose(img.data, 10 * np.log10(power), rtol=1e-5)
    assert "linear power" in caplog.text and "dB" in caplog.text


@pytest.mark.parametrize(
    ("data", "bands", "fragment"),
    [
        (np.full((1, 64, 80), -1500, np.int16), ["VV"], "gdal_edit -scale 0.01"),  # dB × 100 without its scale
        (np.full((1, 64, 80), 120.0, np.float32), ["B3"], "8-bit"),  # a float 0–255 rendering
        (np.full((1, 64, 80), -0.3, np.float32), ["B3"], "negative reflectance"),
        (np.full((1, 64, 80), 50_000, np.uint16), ["B3"], "beyond the range"),  # 16-bit stretched
    ],
)
def test_units_that_fit_nothing_are_refused(tmp_path, grid, data, bands, fragment):
    write_cog(tmp_path / "x.tif", data, grid, bands)
    with pytest.raises(SandmineError, match="How to fix") as err:
        read_image(tmp_path / "x.tif")
    assert fragment in str(err.value) and "x.tif" in str(err.value)


def test_large_raster_units_come_from_a_sample(tmp_path, grid):
    import rasterio as rio

    from sandmine.core import raster

    big = raster.Grid(grid.crs, grid.transform, 640, 640)
    dn = np.full((1, 640, 640), 2500, np.uint16)
    write_cog(tmp_path / "cog.tif", dn, big, ["B4"])  # has overviews
    profile = {"driver": "GTiff", "tiled": True, "width": 640, "height": 640, "count": 1, "dtype": "uint16",
               "crs": big.crs, "transform": big.transform}  # fmt: skip
    with rio.open(tmp_path / "plain.tif", "w", **profile) as dst:  # none: 8 × 8 windows
        dst.write(dn)
        dst.set_band_description(1, "B4")
    for name in ("cog.tif", "plain.tif"):
        with rio.open(tmp_path / name) as src:
            (values,) = raster._sample(src, [0])
        assert 0 < values.size <= 8 * 8 * 32 * 32 < 640 * 640 and (values == 2500).all()
        np.testing.assert_allclose(read_image(tmp_path / name).data, 0.25)


def test_has_valid_pixel(tmp_path, grid):
    from sandmine.core.raster import has_valid_pixel

    data = np.full((2, 64, 80), np.nan, np.float32)
    write_cog(tmp_path / "empty.tif", data, grid, ["B2", "B3"])
    data[1, 60, 70] = 0.1
    write_cog(tmp_path / "one.tif", data, grid, ["B2", "B3"])
    assert not has_valid_pixel(tmp_path / "empty.tif") and has_valid_pixel(tmp_path / "one.tif", rows=8)
    write_cog(tmp_path / "zeros.tif", np.zeros((2, 64, 80), np.uint16), grid, ["B2", "B3"])  # masked DN, no nodata tag
    assert not has_valid_pixel(tmp_path / "zeros.tif")


def test_rasterize_mask_and_burn(grid):
    left, _, _, top = grid.bounds
    square = box(left + 200, top - 200, left + 300, top - 100)  # rows 10-19, cols 20-29
    mask = rasterize([square], grid)
    assert mask.dtype == bool and mask.shape == (grid.height, grid.width)
    assert mask[10:20, 20:30].all() and mask.sum() == 100
    assert not rasterize([box(0, 0, 0, 0)], grid).any() and not rasterize([], grid).any()
    out = np.full((grid.height, grid.width), 7, np.uint8)
    assert rasterize([square], grid, value=255, out=out) is out
    assert (out[10:20, 20:30] == 255).all() and (out == 7).sum() == out.size - 100
    # all_touched: a polygon off the pixel centres draws nothing by centre, its pixels when touched
    sliver = box(left + 201, top - 199, left + 204, top - 196)
    assert not rasterize([sliver], grid).any() and rasterize([sliver], grid, all_touched=True).sum() == 1
