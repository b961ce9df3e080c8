"""Self-supervised pretraining, index channels and confidence weights: the inputs of training."""

import json

import numpy as np
import pytest
import torch
from affine import Affine
from rasterio.crs import CRS

from sandmine import models, ssl
from sandmine.core.bands import channels, read_names
from sandmine.core.config import SslParams
from sandmine.core.errors import SandmineError
from sandmine.core.raster import Grid
from sandmine.labels import confidence_weights
from sandmine.models import pretrained

CH = ["B3", "B4", "B8", "B11", "VV"]


def test_index_channels_are_normalised_differences_of_reflectance():
    bands = ["B4", "VV"]
    names = read_names(bands, ["NDWI", "MNDWI"])
    assert names == ["B4", "VV", "B3", "B8", "B11"]  # index bands the model lacks are read too
    raw = np.zeros((5, 1, 3), np.float32)
    raw[names.index("B3")] = [[0.3, 0.0, np.nan]]
    raw[names.index("B8")] = [[0.1, 0.0, 0.2]]
    raw[names.index("B11")] = [[0.1, 0.2, 0.2]]
    raw[names.index("VV")] = -15.0
    x = channels(raw, names, bands, ["NDWI", "MNDWI"])
    assert x.shape == (4, 1, 3)
    np.testing.assert_allclose(x[2, 0], [0.5, 0.0, 0.0], atol=1e-6)  # (0.3-0.1)/(0.3+0.1); 0/0 -> 0; NaN -> 0
    np.testing.assert_allclose(x[3, 0], [0.5, -1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(x[1, 0], 0.5, atol=1e-6)  # VV in model units: (-15 + 30) / 30


def test_confidence_weights_follow_polygons(tmp_path):
    grid = Grid(CRS.from_epsg(32644), Affine(10, 0, 500000, 0, -10, 1000000), 20, 20)

    def square(x0, y0, conf, cls="mine"):
        # lon/lat of a UTM square: build it in UTM and let the function reproject
        from pyproj import Transformer

        t = Transformer.from_crs(32644, 4326, always_xy=True)
        ring = [
            t.transform(500000 + x, 1000000 - y)
            for x, y in [(x0, y0), (x0 + 50, y0), (x0 + 50, y0 + 50), (x0, y0 + 50), (x0, y0)]
        ]
        return {
            "type": "Feature",
            "properties": {"class": cls, "confidence": conf},
            "geometry": {"type": "Polygon", "coordinates": [ring]},
        }

    path = tmp_path / "o.geojson"
    feats = [square(0, 0, "low"), square(100, 100, "high"), square(150, 0, "low", "ignore")]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    w = confidence_weights(path, grid, {"high": 1.0, "medium": 0.75, "low": 0.5})
    assert w[2, 2] == 0.5 and w[12, 12] == 1.0 and w[2, 17] == 1.0  # ignore polygons are not weighted
    assert (w == 0.5).sum() == 25
    assert confidence_weights(path, grid, {"high": 1.0, "medium": 1.0, "low": 1.0}) is None


def _sites(n=2, size=48, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        base = rng.normal(0, 1, (len(CH), size, size)).astype(np.float32)
        out.append(
            ssl.SiteStack([base, base + rng.normal(0, 0.1, base.shape).astype(np.float32)], np.ones((size, size), bool))
        )
    return out


def test_moco_trains_the_encoder_and_the_train_stage_loads_it(tmp_path):
    torch.set_num_threads(1)
    model = models.build("resnet18", "linear", CH)
    before = model.encoder.body.state_dict()["layer1.0.conv1.weight"].clone()  # the timm net in smp's encoder
    p = SslParams(method="moco", epochs=2, windows_per_epoch=32, window_px=32, batch_size=8, queue=64)
    enc, summary = ssl.pretrain(model.encoder, model.encoder.channels[-1], _sites(), p)
    assert not torch.equal(enc.body.state_dict()["layer1.0.conv1.weight"], before)
    assert summary["epochs"] == 2 and np.isfinite(summary["loss_last"])
    record = {
        "kind": "sandmine-ssl",
        "method": "moco",
        "encoder": "resnet18",
        "encoder_class": type(enc).__name__,
        "channels": CH,
        "state_dict": enc.state_dict(),
    }
    torch.save(record, tmp_path / "ssl.pt")
    fresh = models.build("resnet18", "linear", CH, frozen=True)
    assert "MoCo" in pretrained.load_into(fresh, tmp_path / "ssl.pt", CH).replace("moco", "MoCo")
    assert torch.equal(
        fresh.encoder.body.state_dict()["layer1.0.conv1.weight"], enc.body.state_dict()["layer1.0.conv1.weight"]
    )
    with pytest.raises(SandmineError, match="pretrain with the same"):
        pretrained.load_into(models.build("resnet18", "linear", CH[:4]), tmp_path / "ssl.pt", CH[:4])
    torch.save({**record, "method": "none"}, tmp_path / "none.pt")
    with pytest.raises(SandmineError, match="ssl.method: none"):
        pretrained.load_into(fresh, tmp_path / "none.pt", CH)
