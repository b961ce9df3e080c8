"""LoRA with peft: only adapters and the decoder learn, the counts add up, adapters merge into a plain
checkpoint that predicts through `sandmine predict`, an encoder without adaptable layers is refused."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.crs import CRS
from rasterio.transform import from_origin
from torch import nn

from sandmine import models
from sandmine.__main__ import main
from sandmine.core.config import ModelParams, Params, PredictParams, TrainParams
from sandmine.core.errors import SandmineError
from sandmine.core.raster import Grid, write_cog
from sandmine.models import encoders, lora
from sandmine.sources.stored import NODATA, store

BANDS = ["B2", "B3", "B4", "B8", "B11", "B12", "VV"]  # three ViT band groups
CELLS = [("vit_small", "progressive"), ("resnet18", "unet"), ("mobilenet_v2", "fpn"), ("unet", "linear")]


def _adapter_size(module: nn.Module, rank: int) -> int:
    """Parameters of one LoRA adapter on `module`: A (in -> r) and B (r -> out), no bias."""
    if isinstance(module, nn.Linear):
        return rank * (module.in_features + module.out_features)
    assert isinstance(module, nn.Conv2d)
    kh, kw = module.kernel_size
    return rank * (module.in_channels * kh * kw + module.out_channels)  # A: the conv's kernel, B: 1x1


@pytest.mark.parametrize(("encoder", "decoder"), CELLS, ids=["+".join(c) for c in CELLS])
def test_apply_trains_only_adapters_and_the_decoder(encoder, decoder):
    with torch.device("meta"):
        model = models.build(encoder, decoder, BANDS)
        plain = models.build(encoder, decoder, BANDS)
        wrapped = dict(plain.encoder.named_modules())
        targets = lora.targets(model.encoder)
        info = lora.apply(model, encoder, rank=4, alpha=8)
    assert info == {"rank": 4, "alpha": 8, "dropout": 0.0, "modules": len(targets)} and targets
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in model.named_parameters() if n.startswith("decoder.") or ".lora_" in n}
    assert all(p.requires_grad for p in model.decoder.parameters())
    decoder_size = sum(p.numel() for p in plain.decoder.parameters())
    adapters = sum(_adapter_size(wrapped[t], 4) for t in targets)
    total = sum(p.numel() for p in plain.parameters())
    assert lora.parameter_counts(model) == (decoder_size + adapters, total + adapters)
    if encoder.startswith("vit"):
        assert targets == [f"blocks.{i}.attn.qkv" for i in range(12)]


@pytest.mark.parametrize("encoder", list(models.ENCODERS))
def test_every_registered_encoder_takes_adapters_and_keeps_to_its_inputs_device(encoder):
    """What `lora.lora_encoders` promises in its refusal message; the adapters' own tensors follow the
    input on the `meta` device, forward and backward, as the plain cells do in test_models."""
    decoder = "progressive" if encoder in models.SINGLE_SCALE else "unet"
    with torch.device("meta"):
        model = models.build(encoder, decoder, BANDS).train()
        lora.apply(model, encoder, rank=4, alpha=4, dropout=0.1)
    out = model(torch.zeros(2, len(BANDS), 64, 64, device="meta"))
    out.mean().backward()
    assert all(p.grad is not None and p.grad.device.type == "meta" for p in model.parameters() if p.requires_grad)
    assert encoder in lora.lora_encoders()


class _DepthwiseOnly(encoders.Encoder):
    """An encoder of grouped convolutions only: nothing peft can merge an adapter into."""

    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1, groups=c)
        self.channels, self.reductions = [c], [1]

    def forward(self, x):
        return [self.conv(x)]


def test_an_encoder_without_adaptable_layers_or_a_baseline_is_refused():
    model = models.Segmenter(_DepthwiseOnly(3), models.dec.LinearDecoder([3], [1]))
    with pytest.raises(SandmineError, match="encoder 'tu-depthwise' has no layer LoRA can adapt") as err:
        lora.apply(model, "tu-depthwise", 8, 16)
    assert "vit_base" in err.value.fix and "full or frozen" in err.value.fix
    with pytest.raises(SandmineError, match="classical baseline"):
        lora.apply(nn.Identity(), "random_forest", 8, 16)


@pytest.mark.parametrize(("encoder", "decoder"), [("vit_small", "linear"), ("resnet18", "linear")])
def test_merged_adapters_give_a_plain_checkpoint_that_predicts_the_same(tmp_path, encoder, decoder):
    torch.manual_seed(0)
    model = models.build(encoder, decoder, BANDS[:4])
    base = {k: v.clone() for k, v in model.state_dict().items()}
    targets = lora.targets(model.encoder)
    lora.apply(model, encoder, rank=4, alpha=8)
    with torch.no_grad():  # trained adapters: B is zero when peft makes it
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    model.eval()
    x = torch.randn(2, 4, 64, 64)
    with torch.no_grad():
        before = model(x)
    assert lora.merge(model) == (12 if encoder == "vit_small" else 20)
    plain = models.build(encoder, decoder, BANDS[:4])
    assert list(model.state_dict()) == list(plain.state_dict())  # the keys of a full fine-tune
    meta = {"encoder": encoder, "decoder": decoder, "bands": BANDS[:4], "mean": [0.0] * 4, "std": [1.0] * 4}
    torch.save(models.save_checkpoint(model, meta), tmp_path / "m.pt")
    loaded, _ = models.load_checkpoint(str(tmp_path / "m.pt"))  # weights_only=True, no peft layer in it
    with torch.no_grad():
        torch.testing.assert_close(model(x), before, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    adapted = {f"encoder.{t}.weight" for t in targets}
    for k, v in loaded.state_dict().items():  # the adapted weights moved, nothing else did
        assert torch.equal(v, base[k]) != (k in adapted), k


# --- the train stage's code with model.finetune: lora, then `sandmine predict` on its checkpoint ---


def _write_world(root: Path) -> tuple[Path, Path, Path, Path]:
    """Three small observations (train, val, test) of bright square mines, with AOI and a split."""
    for d in ("images", "labels", "aoi"):
        (root / d).mkdir()
    rows = []
    for k, role in enumerate(("train", "val", "test")):
        rng = np.random.default_rng(k)
        grid = Grid(CRS.from_epsg(32644), from_origin(500_000 + 5_000 * k, 2_800_000, 10, 10), 96, 96)
        label = np.zeros((96, 96), np.uint8)
        for r, c in rng.integers(4, 70, (3, 2)):
            label[r : r + 20, c : c + 20] = 1
        data = rng.uniform(0.02, 0.1, (len(BANDS), 96, 96)).astype(np.float32)
        data[:6] += 0.25 * label  # mines are bright in the optical bands
        data[-1] = rng.uniform(-25, -5, (96, 96))  # VV in dB
        stored, scales = store(data, BANDS)
        obs = f"o{k}"
        write_cog(root / "images" / f"{obs}.tif", stored, grid, BANDS, nodata=NODATA, scales=scales)
        write_cog(root / "labels" / f"{obs}.tif", label, grid, ["label"], nodata=None)
        doc = {"type": "FeatureCollection", "all_touched": False, "features": []}  # every polygon weighs 1
        (root / "labels" / f"{obs}.geojson").write_text(json.dumps(doc))
        write_cog(root / "aoi" / f"{obs}.tif", np.ones((96, 96), np.uint8), grid, ["aoi"], nodata=None)
        rows.append({"obs_id": obs, "role": role})
    split = root / "split.csv"
    with split.open("w", newline="") as fh:
        w = csv.DictWriter(fh, ["obs_id", "role"])
        w.writeheader()
        w.writerows(rows)
    return root / "images", root / "labels", root / "aoi", split


def _params(finetune: str) -> Params:
    return Params(
        model=ModelParams(encoder="vit_small", decoder="progressive", bands=BANDS, finetune=finetune, lora_rank=4),
        train=TrainParams(
            window_px=32, batch_size=4, epochs=2, windows_per_epoch=8, val_windows=4, threads=1, device="cpu"
        ),
        predict=PredictParams(window_px=64, stride_px=48, discard_px=8, device="cpu", workers=0),
    )


def test_a_lora_run_writes_counts_and_a_checkpoint_that_sandmine_predict_uses(tmp_path):
    from sandmine.steps import train

    images, labels, aoi, split = _write_world(tmp_path)
    out = tmp_path / "out"
    metrics = {}
    for mode in ("lora", "frozen"):
        torch.manual_seed(0)
        train.run(_params(mode), images, labels, aoi, split, out / f"{mode}.pt", out / f"{mode}.json",
                  out / "timing.json", lambda e, m: None, state=tmp_path / "state.pt")  # fmt: skip
        metrics[mode] = json.loads((out / f"{mode}.json").read_text())
    lora_m, frozen = metrics["lora"], metrics["frozen"]
    adapters = 12 * 4 * (384 + 3 * 384)  # rank 4 on qkv (384 -> 1152) of 12 blocks
    assert lora_m["trainable_parameters"] == frozen["trainable_parameters"] + adapters
    assert lora_m["parameters"] == frozen["parameters"] + adapters
    ckpt = torch.load(out / "lora.pt", weights_only=True)
    assert ckpt["finetune"] == "lora" and ckpt["lora"]["modules"] == 12 and not ckpt["frozen"]
    assert not any("lora" in k for k in ckpt["state_dict"])  # merged: the plain model's keys
    pred = tmp_path / "pred.tif"
    main(["predict", str(images / "o2.tif"), "--model", str(out / "lora.pt"), "--out", str(pred),
          "--window", "64", "--stride", "48", "--discard", "8", "--device", "cpu"])  # fmt: skip
    with rasterio.open(pred) as ds, rasterio.open(images / "o2.tif") as src:
        p = ds.read(1)
        assert ds.transform == src.transform and p.shape == (96, 96)
    assert p.min() < p.max()  # a probability map, not a constant


def test_finetune_of_a_baseline_is_refused(tmp_path):
    from sandmine.steps import train

    p = replace(
        _params("lora"), model=ModelParams(encoder="random_forest", decoder="none", bands=BANDS, finetune="lora")
    )
    with pytest.raises(SandmineError, match="classical baseline"):
        train.run(p, *(tmp_path / n for n in ("i", "l", "a", "s.csv", "m.pt", "m.json", "t.json")), lambda e, m: None)
