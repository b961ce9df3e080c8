"""Registry cells build and train a step; loaders read checkpoints in the real key layouts;
checkpoints rebuild their model on their own; baselines equal the scikit-learn models they copy."""

import numpy as np
import pytest
import timm
import torch
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier

from sandmine import models
from sandmine.core.config import Params
from sandmine.core.errors import SandmineError
from sandmine.models import baselines, decoders, encoders, pretrained

P = Params()
CHANNELS = [*P.model.bands, "NDWI"]
WINDOW = P.train.window_px

CELLS = [tuple(p.split("+")) for p in models.valid_pairs() if "<" not in p and not p.endswith("+none")]


def test_the_grid_has_every_smp_decoder_on_every_cnn_encoder():
    assert len(CHANNELS) == 15 and WINDOW == 128
    for decoder in ("unet", "fpn", "deeplabv3plus", "upernet", "segformer"):
        assert all((e, decoder) in CELLS for e in models.ENCODERS if e not in models.SINGLE_SCALE)
    assert ("vit_small", "progressive") in CELLS and ("vit_base", "linear") in CELLS


@pytest.mark.parametrize(("encoder", "decoder"), CELLS, ids=["+".join(c) for c in CELLS])
def test_every_cell_runs_forward_and_backward(encoder, decoder):
    """Every cell of the grid at the training window (128 px) and 15 channels, in training mode with
    the smallest batch batch norm allows (DeepLabV3+'s image pooling fails on a batch of one)."""
    torch.manual_seed(0)
    model = models.build(encoder, decoder, CHANNELS).train()
    x = torch.randn(2, len(CHANNELS), WINDOW, WINDOW)
    out = model(x)
    assert out.shape == (2, 1, WINDOW, WINDOW)
    out.mean().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


# few bands, yet three patch-embedding groups (SatMAE's first and third, the rest), and a window of 20 ViT
# patches a side: two attention tiles with padding; every CNN reaches stride 32 on it
META_BANDS = ["B2", "B3", "B4", "B8", "B11", "B12", "VV"]
META_WINDOW = 160


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize(("encoder", "decoder"), CELLS, ids=["+".join(c) for c in CELLS])
def test_every_cell_keeps_to_its_inputs_device_and_dtype(encoder, decoder, dtype):
    """Forward and backward on the `meta` device: a tensor that a forward makes on the CPU (or in
    float32 under a bf16 input) meets the input's tensors and fails, as it would on a GPU. Meta
    tensors have shapes only, so this costs no arithmetic and needs no GPU."""
    with torch.device("meta"):
        model = models.build(encoder, decoder, META_BANDS).to(dtype).train()
    x = torch.randn(2, len(META_BANDS), META_WINDOW, META_WINDOW, device="meta", dtype=dtype, requires_grad=True)
    out = model(x)
    assert (out.device.type, out.dtype, out.shape) == ("meta", dtype, (2, 1, META_WINDOW, META_WINDOW))
    out.float().mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and g.device.type == "meta" and g.dtype == dtype for g in grads)
    assert x.grad is not None and x.grad.device.type == "meta"


def test_random_forest_keeps_to_its_inputs_device():
    """The pixel forest on the `meta` device (the superpixel baseline segments on the CPU by design)."""
    with torch.device("meta"):
        model = baselines.build("random_forest", META_BANDS, n_trees=3, n_nodes=7, depth=2, mode="mean")
    out = model(torch.zeros(2, len(META_BANDS), 8, 8, device="meta"))
    assert (out.device.type, out.dtype, out.shape) == ("meta", torch.float32, (2, 1, 8, 8))


def _smp_key(key: str) -> str:
    """Our Segmenter's state-dict key -> the key of the same tensor in smp's own model."""
    for ours, theirs in (
        ("encoder.smp.", "encoder."),
        ("decoder.decoder.", "decoder."),
        ("decoder.head.", "segmentation_head."),
    ):
        if key.startswith(ours):
            return theirs + key[len(ours) :]
    return key


@pytest.mark.parametrize("decoder", list(decoders.SMP))
@pytest.mark.parametrize("encoder", ["resnet18", "tu-convnext_atto"])  # features from stride 2, and from stride 4
def test_smp_cells_are_what_smp_create_model_builds(encoder, decoder):
    import segmentation_models_pytorch as smp

    timm_name = models.TIMM.get(encoder, encoder.removeprefix("tu-"))
    torch.manual_seed(0)
    ours = models.build(encoder, decoder, CHANNELS).eval()
    torch.manual_seed(0)
    theirs = smp.create_model(
        decoders.SMP[decoder], f"tu-{timm_name}", encoder_weights=None, in_channels=len(CHANNELS), classes=1
    ).eval()
    mine = {_smp_key(k): v for k, v in ours.state_dict().items()}
    ref = theirs.state_dict()
    assert set(mine) == set(ref)
    assert all(torch.equal(mine[k], ref[k]) for k in ref)  # same initialisation, tensor for tensor
    x = torch.randn(2, len(CHANNELS), 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=0)
        torch.testing.assert_close(ours.decode(ours.encoder(x), (64, 64)), ours(x))  # the split FeatureCache uses
    assert all(f.shape[1] > 0 for f in ours.encoder(x))  # smp's input and empty placeholders stay inside the decoder


def test_unknown_names_and_pairs_list_valid_ones():
    with pytest.raises(SandmineError, match="resnet18"):
        models.check("resnet19", "unet")
    with pytest.raises(SandmineError, match="deeplabv3plus, upernet, segformer, progressive"):
        models.check("resnet18", "segformerx")
    for decoder in decoders.SMP:
        with pytest.raises(SandmineError, match="vit_small\\+progressive") as err:
            models.check("vit_small", decoder)  # a single feature map has no pyramid
        assert "resnet18+deeplabv3plus" in str(err.value) and "vit_small+unet" not in str(err.value)
    with pytest.raises(SandmineError, match="decoder: none"):
        models.check("random_forest", "unet")
    models.check("tu-resnet10t", "fpn")  # any timm encoder by name
    model = models.build("tu-resnet10t", "fpn", CHANNELS)
    assert model(torch.randn(2, len(CHANNELS), 64, 64)).shape == (2, 1, 64, 64)
    with pytest.raises(SandmineError, match="cannot use 'tu-vit_tiny_patch16_224'"):
        models.build("tu-vit_tiny_patch16_224", "unet", CHANNELS)  # one stride: smp cannot number its features


def test_frozen_encoder_takes_no_gradient_and_keeps_batchnorm_statistics():
    model = models.build("resnet18", "linear", CHANNELS, frozen=True)
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    model.train()
    model(torch.randn(4, len(CHANNELS), 64, 64)).mean().backward()
    assert all(p.grad is None for p in model.encoder.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.encoder.state_dict().items())  # running stats too
    assert all(p.weight.grad is not None for p in model.decoder.proj)


def _meta(encoder, decoder, channels, **extra):
    return {
        "encoder": encoder,
        "decoder": decoder,
        "bands": channels[:-1],
        "indices": channels[-1:],
        "mean": [0.0] * len(channels),
        "std": [1.0] * len(channels),
        "window_px": 64,
        "train": {"lr": 0.001},
        **extra,
    }


@pytest.mark.parametrize(("encoder", "decoder"), [("resnet18", "unet"), ("vit_small", "progressive")])
def test_checkpoint_roundtrip_weights_only(tmp_path, encoder, decoder):
    torch.manual_seed(1)
    model = models.build(encoder, decoder, CHANNELS, frozen=True).eval()
    torch.save(models.save_checkpoint(model, _meta(encoder, decoder, CHANNELS, frozen=True)), tmp_path / "m.pt")
    loaded, ckpt = models.load_checkpoint(str(tmp_path / "m.pt"))
    x = torch.randn(1, len(CHANNELS), 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    assert models.channels(ckpt) == CHANNELS
    assert loaded.frozen


def test_missing_or_foreign_checkpoint_is_clear(tmp_path):
    with pytest.raises(SandmineError, match="checkpoint not found"):
        models.load_checkpoint(str(tmp_path / "none.pt"))
    torch.save({"format": 1, "state_dict": {}}, tmp_path / "old.pt")
    with pytest.raises(SandmineError, match="format 1 is not 3"):
        models.load_checkpoint(str(tmp_path / "old.pt"))


def _format2(model, meta):
    """A checkpoint as the registry before smp wrote it: timm encoders' tensors under `encoder.body.`."""
    sd = {k.replace("encoder.smp.model.", "encoder.body."): v for k, v in model.state_dict().items()}
    return {**models.save_checkpoint(model, meta), "format": 2, "state_dict": sd}


@pytest.mark.parametrize(("encoder", "decoder"), [("resnet18", "linear"), ("vit_small", "progressive")])
def test_format2_checkpoint_of_an_unchanged_cell_loads(tmp_path, encoder, decoder):
    torch.manual_seed(4)
    model = models.build(encoder, decoder, CHANNELS, frozen=True).eval()
    torch.save(_format2(model, _meta(encoder, decoder, CHANNELS, frozen=True)), tmp_path / "m.pt")
    loaded, ckpt = models.load_checkpoint(str(tmp_path / "m.pt"))
    assert ckpt["format"] == models.CHECKPOINT_FORMAT
    x = torch.randn(1, len(CHANNELS), 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


@pytest.mark.parametrize(
    ("encoder", "decoder", "why"),
    [("resnet18", "unet", "decoder came from smp"), ("unet", "fpn", "decoder came from smp"),
     ("superpixel_gbm", "none", "superpixels came from scikit-image")],
)  # fmt: skip
def test_format2_checkpoint_of_a_rebuilt_cell_says_to_retrain(tmp_path, encoder, decoder, why):
    torch.save({"format": 2, "encoder": encoder, "decoder": decoder, "state_dict": {}}, tmp_path / "old.pt")
    with pytest.raises(SandmineError, match="retrain") as err:
        models.load_checkpoint(str(tmp_path / "old.pt"))
    assert f"format 2 holds a {encoder}+{decoder} model made before its {why}" in str(err.value)
    assert "dvc repro train" in str(err.value)


# --- SSL4EO-S12 MoCo ResNet checkpoints ---------------------------------------------------------


def _ssl4eo_moco(depth: str, tmp_path, prefix="module.encoder_q.", wrap=True):
    """A checkpoint as SSL4EO-S12's MoCo training saves it: query and key encoders, MLP head."""
    torch.manual_seed(2)
    net = timm.create_model(depth, in_chans=13, num_classes=0, pretrained=False)
    sd = {prefix + k: v for k, v in net.state_dict().items()}
    width = 512 if depth == "resnet18" else 2048
    sd[prefix + "fc.0.weight"], sd[prefix + "fc.2.weight"] = torch.randn(width, width), torch.randn(128, width)
    sd.update({k.replace("encoder_q", "encoder_k"): torch.zeros_like(v) for k, v in sd.items() if "encoder_q" in k})
    path = tmp_path / f"B13_{depth}_moco.pth"
    torch.save({"epoch": 99, "arch": depth, "state_dict": sd} if wrap else sd, path)
    return net.state_dict(), path


@pytest.mark.parametrize(
    ("depth", "prefix", "wrap"), [("resnet18", "module.encoder_q.", True), ("resnet50", "", False)]
)
def test_ssl4eo_loader_remaps_bands_by_name(tmp_path, depth, prefix, wrap):
    ref, path = _ssl4eo_moco(depth, tmp_path, prefix, wrap)
    model = models.build(depth, "unet", CHANNELS)
    what = pretrained.load_into(model, path, CHANNELS)
    assert "SSL4EO" in what
    got = model.encoder.body.state_dict()
    assert torch.equal(got["layer4.1.conv1.weight"], ref["layer4.1.conv1.weight"])
    assert torch.equal(got["bn1.running_var"], ref["bn1.running_var"])
    l1c = pretrained.SSL4EO_BANDS[13]
    w, ckpt_w = got["conv1.weight"], ref["conv1.weight"]
    assert w.shape[1] == len(CHANNELS)
    for i, name in enumerate(CHANNELS):
        expect = ckpt_w[:, l1c.index(name)] if name in l1c else ckpt_w.mean(1)  # VV, VH, NDWI: mean kernel
        torch.testing.assert_close(w[:, i], expect)
    assert "B10" not in CHANNELS  # the L2A export has no B10: its kernel is dropped


def test_ssl_encoder_saved_before_smp_still_loads(tmp_path):
    torch.manual_seed(5)
    enc = models.build("resnet18", "linear", CHANNELS).encoder
    old = {k.replace("smp.model.", "body."): v for k, v in enc.state_dict().items()}  # format 2 layout
    record = {"kind": "sandmine-ssl", "method": "moco", "encoder": "resnet18", "encoder_class": "TimmEncoder"}
    torch.save({**record, "channels": CHANNELS, "state_dict": old}, tmp_path / "ssl.pt")
    fresh = models.build("resnet18", "unet", CHANNELS)
    pretrained.load_into(fresh, tmp_path / "ssl.pt", CHANNELS)
    assert all(torch.equal(v, enc.state_dict()[k]) for k, v in fresh.encoder.state_dict().items())


def test_loader_refuses_wrong_depth_and_layout(tmp_path):
    _, path = _ssl4eo_moco("resnet18", tmp_path)
    with pytest.raises(SandmineError, match="lacks|differ"):
        pretrained.load_into(models.build("resnet50", "unet", CHANNELS), path, CHANNELS)
    with pytest.raises(SandmineError, match="not found"):
        pretrained.load_into(models.build("resnet18", "unet", CHANNELS), tmp_path / "nope.pth", CHANNELS)
    with pytest.raises(SandmineError, match="no pretrained weights"):
        pretrained.load_into(models.build("random_forest", "none", CHANNELS, **_forest_shape()), path, CHANNELS)


# --- SatMAE group-channel ViT checkpoints -------------------------------------------------------

SATMAE_10 = ["B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12"]  # fMoW-Sentinel, B1/B9/B10 dropped


def _satmae(tmp_path):
    """A SatMAE pretraining checkpoint: groups (0,1,2,6), (3,4,5,7), (8,9) of its 10 bands, fixed
    pos_embed with a cls row, channel_embed, MAE decoder keys; small width to keep the test fast."""
    torch.manual_seed(3)
    ref = encoders.GroupedViT(SATMAE_10, "small")
    assert [[SATMAE_10[i] for i in g] for g in ref.groups] == encoders.SATMAE_GROUPS
    sd = dict(ref.state_dict())
    sd["pos_embed"] = torch.zeros(1, 12 * 12 + 1, 384 - 128)
    sd["mask_token"] = torch.zeros(1, 1, 512)
    sd["decoder_embed.weight"] = torch.zeros(512, 384)
    sd["decoder_blocks.0.norm1.weight"] = torch.zeros(512)
    path = tmp_path / "checkpoint_ViT_pretrain_fmow_sentinel.pth"
    torch.save({"model": sd, "epoch": 199}, path)
    return ref, path


def test_satmae_loader_matches_band_groups(tmp_path):
    ref, path = _satmae(tmp_path)
    model = models.build("vit_small", "progressive", CHANNELS)  # 15 channels: 3 SatMAE groups + SAR + rest
    what = pretrained.load_into(model, path, CHANNELS)
    assert "B2/B3/B4/B8" in what and "B11/B12" in what
    enc = model.encoder
    names = [[CHANNELS[i] for i in g] for g in enc.groups]
    assert names[:3] == encoders.SATMAE_GROUPS and names[3] == ["VV", "VH"] and names[4] == ["B1", "B9", "NDWI"]
    for g in range(3):
        assert torch.equal(enc.patch_embed[g].proj.weight, ref.patch_embed[g].proj.weight)
        assert torch.equal(enc.channel_embed[0, g], ref.channel_embed[0, g])
    assert torch.equal(enc.blocks[11].mlp.fc2.weight, ref.blocks[11].mlp.fc2.weight)
    assert torch.equal(enc.cls_token, ref.cls_token)
    # same bands as SatMAE: the loaded encoder computes what the checkpoint's encoder computes
    same = models.build("vit_small", "linear", SATMAE_10)
    pretrained.load_into(same, path, SATMAE_10)
    x = torch.randn(1, 10, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(same.encoder.eval()(x)[0], ref.eval()(x)[0])


def test_satmae_width_mismatch_is_refused(tmp_path):
    _, path = _satmae(tmp_path)
    with pytest.raises(SandmineError, match="width 384"):
        pretrained.load_into(models.build("vit_base", "linear", CHANNELS), path, CHANNELS)
    with pytest.raises(SandmineError, match="not recognised"):
        pretrained.load_into(models.build("resnet18", "linear", CHANNELS), path, CHANNELS)


def test_vit_attention_tiles_make_a_big_window_equal_its_tiles():
    model = models.build("vit_small", "linear", CHANNELS).eval()
    x = torch.randn(1, len(CHANNELS), 256, 256)
    with torch.no_grad():
        whole = model.encoder(x)[0]
        tile = model.encoder(x[:, :, 128:, :128])[0]
    torch.testing.assert_close(whole[:, :, 16:, :16], tile)


# --- classical baselines ------------------------------------------------------------------------


def _forest_shape():
    return {"n_trees": 2, "n_nodes": 3, "depth": 1, "mode": "mean"}


def test_tree_ensembles_equal_scikit_learn():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 6)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 3] ** 2 + rng.normal(0, 0.3, 3000)) > 0.8
    rf = RandomForestClassifier(n_estimators=7, max_depth=6, random_state=0).fit(x, y)
    ens = baselines.TreeEnsemble.from_sklearn(list(rf.estimators_), "mean")
    np.testing.assert_allclose(ens(torch.from_numpy(x)).numpy(), rf.predict_proba(x)[:, 1], atol=1e-6)
    gb = GradientBoostingClassifier(n_estimators=15, max_depth=3, random_state=0).fit(x, y)
    ens = baselines.TreeEnsemble.from_sklearn([t[0] for t in gb.estimators_], "sum", scale=gb.learning_rate)
    ens.init.fill_(float(gb.decision_function(x[:1])[0] - ens(torch.from_numpy(x[:1]))[0]))
    np.testing.assert_allclose(ens(torch.from_numpy(x)).numpy(), gb.decision_function(x), atol=1e-4)


def test_slic_follows_a_boundary_and_numbers_segments_densely():
    img = np.zeros((3, 48, 48), np.float32)
    img[:, :, 20:] = 3.0  # a vertical edge off the 12 px grid
    seg = baselines.slic(img, step=12, compactness=0.3)
    assert seg.shape == (48, 48) and set(np.unique(seg)) == set(range(1, seg.max() + 1))
    for s in np.unique(seg):
        cols = np.nonzero(seg == s)[1]
        assert cols.max() < 20 or cols.min() >= 20  # no superpixel straddles the edge
    feats = baselines.segment_features(img, seg)
    assert feats.shape == (seg.max() + 1, 2 * 3 + 1)  # row 0: pixels outside the mask (none here)
    np.testing.assert_allclose(feats[:, 3:6], 0, atol=1e-6)  # each segment is flat


def _textured(seed=0, size=160):
    """Blobs of two materials under pixel noise: the hand-written SLIC made 93 % of its superpixels
    here of several disconnected pieces."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.normal(size=(size, size)), 6) > 0
    img = rng.normal(0, 0.3, (5, size, size)).astype(np.float32)
    img += 2.0 * field
    return img


@pytest.mark.parametrize("masked", [False, True])
def test_slic_superpixels_are_each_one_connected_piece(masked):
    from scipy import ndimage

    img = _textured()
    mask = None
    if masked:  # a river AOI: a band across the scene
        yy, xx = np.mgrid[0:160, 0:160]
        mask = np.abs(yy - 80 - 20 * np.sin(xx / 25)) < 35
    seg = baselines.slic(img, step=12, compactness=0.3, mask=mask)
    ids = np.unique(seg[seg > 0])
    assert len(ids) > (40 if masked else 100)  # roughly one per 12 x 12 px (178 of the scene, 78 of the mask)
    pieces = {int(s): ndimage.label(seg == s)[1] for s in ids}  # 4-connected components
    assert all(n == 1 for n in pieces.values()), {s: n for s, n in pieces.items() if n != 1}
    if masked:
        assert (seg[~mask] == 0).all() and (seg[mask] > 0).all()


def _scenes(n=3, size=96, seed=0):
    """Scenes whose mines are bright in channel 0 (a pixel problem) and come in blobs."""
    from sandmine.training import Scene

    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        label = np.zeros((size, size), np.uint8)
        for _ in range(4):
            r, c = rng.integers(8, size - 20, 2)
            label[r : r + 14, c : c + 14] = 1
        img = rng.normal(0, 1, (len(CHANNELS), size, size)).astype(np.float32)
        img[0] += 4.0 * label
        weight = np.where(label == 1, 0.5, 1.0).astype(np.float32)
        out.append(Scene(f"s{k}", img, label, np.ones((size, size), bool), weight))
    return out


@pytest.mark.parametrize("name", ["random_forest", "superpixel_gbm"])
def test_baselines_learn_and_roundtrip_through_a_checkpoint(tmp_path, name):
    from sandmine import classical
    from sandmine.core.config import BaselineParams, TrainParams

    # compactness 1: with iid noise in every channel SLIC needs more weight on space than on real scenes,
    # or connectivity enforcement merges the colour fragments into a few giant superpixels
    bp = BaselineParams(pixels=5000, trees=10, depth=6, superpixel_px=8, boost_trees=30, compactness=1.0)
    tp = TrainParams(window_px=64, val_windows=8, batch_size=4, threads=1)
    model, summary = classical.fit(name, _scenes(), _scenes(1, seed=9), CHANNELS, bp, tp)
    assert summary["best_val_ap"] > 0.8  # random AP here is about 0.08
    meta = _meta(name, "none", CHANNELS, baseline=baselines.shape_of(model))
    torch.save(models.save_checkpoint(model, meta), tmp_path / "b.pt")
    loaded, _ = models.load_checkpoint(str(tmp_path / "b.pt"))
    x = torch.from_numpy(_scenes(1, seed=5)[0].image[None, :, :64, :64].copy())
    torch.testing.assert_close(loaded(x), model(x))
    assert sum(p.numel() for p in loaded.parameters()) == 0  # nothing for an optimiser: trees are buffers


# --- training options ---------------------------------------------------------------------------


def test_linear_probe_trains_only_the_probe_on_cached_features():
    from sandmine import training
    from sandmine.core.config import TrainParams

    torch.manual_seed(0)
    model = models.build("resnet18", "linear", CHANNELS, frozen=True)
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    tp = TrainParams(window_px=64, epochs=3, windows_per_epoch=16, val_windows=8, batch_size=8, lr=0.01, threads=1)
    model, summary = training.fit(model, _scenes(2), _scenes(1, seed=9), tp)
    assert all(torch.equal(before[k], v) for k, v in model.encoder.state_dict().items())
    assert summary["best_val_ap"] > 0.3  # the probe learns the bright channel from random features


@pytest.mark.parametrize("frozen", [False, True])
def test_deeplabv3plus_trains_when_the_last_batch_would_be_one_window(frozen):
    from sandmine import training
    from sandmine.core.config import TrainParams

    torch.manual_seed(0)
    model = models.build("resnet18", "deeplabv3plus", CHANNELS, frozen=frozen)
    tp = TrainParams(window_px=64, epochs=1, windows_per_epoch=5, val_windows=3, batch_size=2, threads=1)
    _, summary = training.fit(model, _scenes(1), _scenes(1, seed=9), tp)  # batches of 2, 2, then 1 (skipped)
    assert summary["epochs_run"] == 1


def test_encoder_learns_at_its_own_rate():
    from sandmine.core.config import TrainParams
    from sandmine.training import _optimizer

    model = models.build("resnet18", "unet", CHANNELS)
    opt = _optimizer(model, TrainParams(lr=0.01, encoder_lr_scale=0.1))
    assert [g["lr"] for g in opt.param_groups] == [0.01, pytest.approx(0.001)]
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))


def test_confidence_weights_lower_the_loss_of_uncertain_pixels():
    from sandmine.training import loss_fn

    logits = torch.zeros(1, 4, 4)
    y = torch.ones(1, 4, 4, dtype=torch.uint8)
    y[0, 0] = 0
    w = torch.ones(1, 4, 4)
    loss = loss_fn("wbce", 1.0)
    base = loss(logits, y, w)
    w[0, 1:] = 0.5  # low-confidence mine pixels: the (equal) per-pixel loss is averaged with weights
    torch.testing.assert_close(loss(logits, y, w), base)
    logits[0, 1:] = -2.0  # now the low-confidence pixels are wrong: they count less than before
    assert loss(logits, y, w) < loss(logits, y, torch.ones(1, 4, 4))


def test_fit_in_bf16_on_the_cpu_learns_and_predicts_close_to_fp32():
    from sandmine import training
    from sandmine.core.config import TrainParams
    from sandmine.prediction import Stitch, predict

    torch.manual_seed(0)
    model = models.build("resnet18", "linear", CHANNELS, frozen=True)
    tp = TrainParams(window_px=64, epochs=2, windows_per_epoch=16, val_windows=8, batch_size=8, lr=0.01, threads=1)
    tp.device, tp.precision = "cpu", "bf16"
    model, summary = training.fit(model, _scenes(2), _scenes(1, seed=9), tp)
    assert summary["best_val_ap"] > 0.3
    image = _scenes(1, seed=3)[0].image[:, :96, :96]
    fp32, bf16 = (predict(model, image, Stitch(64, 48, 8, 2, precision=q)) for q in ("32", "bf16"))
    assert fp32.dtype == bf16.dtype == np.float32
    assert np.abs(fp32 - bf16).max() < 0.05 and not np.array_equal(fp32, bf16)


# --- checkpoints across devices -----------------------------------------------------------------


def _saved_as_if_on_gpu(obj, path):
    """torch.save `obj` with every storage tagged 'cuda:0', as a file written from a GPU is."""
    from torch import serialization

    def tag(storage):
        return "cuda:0" if storage.device.type == "cpu" else None

    registry = serialization._package_registry[:]
    serialization._package_registry.insert(0, (0, tag, lambda storage, location: None))
    try:
        torch.save(obj, path)
    finally:
        serialization._package_registry[:] = registry


def test_checkpoint_saved_from_a_gpu_loads_on_the_cpu(tmp_path, monkeypatch):
    torch.manual_seed(1)
    model = models.build("resnet18", "unet", CHANNELS).eval()
    path = tmp_path / "gpu.pt"
    _saved_as_if_on_gpu(models.save_checkpoint(model, _meta("resnet18", "unet", CHANNELS)), path)
    if not torch.cuda.is_available():  # the file really names a GPU: a plain load fails here
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(path, weights_only=True)
    seen = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: seen.append(k["map_location"]) or real_load(*a, **k))
    loaded, _ = models.load_checkpoint(str(path), "cpu")
    assert seen == [torch.device("cpu")]  # tensors are mapped to the target device as they load
    assert all(t.device.type == "cpu" for t in loaded.state_dict().values())
    x = torch.randn(1, len(CHANNELS), 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


def test_save_checkpoint_on_the_cpu_keeps_the_tensors_and_their_metadata():
    model = models.build("resnet18", "unet", CHANNELS)
    state = models.save_checkpoint(model, _meta("resnet18", "unet", CHANNELS))["state_dict"]
    own = model.state_dict()
    assert all(state[k].data_ptr() == v.data_ptr() for k, v in own.items())  # no copy: the same bytes are saved
    assert state._metadata == own._metadata  # batch-norm versions kept
