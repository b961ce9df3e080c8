"""Stitching: a translation-equivariant model gives the whole-raster answer away from borders."""

import numpy as np
import torch
from torch import nn

from sandmine.prediction import predict


def _conv_model(k: int) -> nn.Module:
    torch.manual_seed(0)
    m = nn.Conv2d(3, 1, k, padding=k // 2)
    return m.eval()


def _whole(model: nn.Module, image: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return torch.sigmoid(model(torch.from_numpy(image)[None]))[0, 0].numpy()


def test_pointwise_model_stitched_equals_whole_pass(rng):
    image = rng.standard_normal((3, 150, 170)).astype(np.float32)
    model = _conv_model(1)
    stitched = predict(model, image, window=64, stride=32, discard=16, batch_size=4)
    np.testing.assert_allclose(stitched, _whole(model, image), atol=1e-6)


def test_conv_model_equal_away_from_window_edges(rng):
    # a 5x5 conv sees 2 px beyond each pixel: the discarded 16 px hide window-edge effects
    image = rng.standard_normal((3, 140, 140)).astype(np.float32)
    model = _conv_model(5)
    stitched = predict(model, image, window=64, stride=32, discard=16, batch_size=3)
    np.testing.assert_allclose(stitched[2:-2, 2:-2], _whole(model, image)[2:-2, 2:-2], atol=1e-6)


def test_raster_smaller_than_window(rng):
    image = rng.standard_normal((3, 20, 30)).astype(np.float32)
    out = predict(_conv_model(1), image, window=64, stride=32, discard=8, batch_size=2)
    assert out.shape == (20, 30)
    assert np.isfinite(out).all()
