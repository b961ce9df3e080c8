"""Registry cells build and train a step; checkpoints rebuild the model on their own."""

import pytest
import torch

from sandmine import models
from sandmine.errors import SandmineError


@pytest.mark.parametrize("encoder", list(models.ENCODERS))
@pytest.mark.parametrize("decoder", list(models.DECODERS))
def test_every_cell_runs_forward_and_backward(encoder, decoder):
    torch.manual_seed(0)
    model = models.build(encoder, decoder, 14)
    x = torch.randn(2, 14, 64, 64)
    out = model(x)
    assert out.shape == (2, 1, 64, 64)
    out.mean().backward()
    assert any(p.grad is not None for p in model.parameters())


def test_unknown_names_list_valid_ones():
    with pytest.raises(SandmineError, match="resnet18"):
        models.check("resnet19", "unet")
    with pytest.raises(SandmineError, match="fpn"):
        models.check("resnet18", "segformerx")
    models.check("tu-resnet10t", "unet")  # any timm encoder by name


def test_checkpoint_roundtrip_weights_only(tmp_path):
    model = models.build("resnet18", "unet", 3).eval()
    meta = {
        "encoder": "resnet18",
        "decoder": "unet",
        "bands": ["B2", "B3", "B4"],
        "mean": [0.0] * 3,
        "std": [1.0] * 3,
        "window_px": 64,
        "train": {"lr": 0.001},
    }
    torch.save(models.save_checkpoint(model, meta), tmp_path / "m.pt")
    loaded, ckpt = models.load_checkpoint(str(tmp_path / "m.pt"))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    assert ckpt["bands"] == ["B2", "B3", "B4"]


def test_missing_checkpoint_is_clear(tmp_path):
    with pytest.raises(SandmineError, match="checkpoint not found"):
        models.load_checkpoint(str(tmp_path / "none.pt"))
