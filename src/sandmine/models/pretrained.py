"""Encoder weights from local files: SSL4EO-S12 MoCo ResNets, SatMAE ViTs, and our own SSL stage.

Nothing downloads: `model.weights` names a file. The layout is recognised from its keys:
- SSL4EO-S12 MoCo ResNet18/50: a torchvision/timm ResNet state dict (`conv1.weight`,
  `layer1.0.conv1.weight`, …), possibly wrapped in `state_dict` and prefixed `module.encoder_q.`
  (the MoCo training checkpoints); 13 Sentinel-2 L1C bands B1…B12 with B8A and B10 (12 without
  B10, 2 for S1 VV/VH, 3 for RGB).
- SatMAE group-channel ViT: `patch_embed.G.proj.weight` per band group, `channel_embed`,
  `cls_token`, `blocks.N.*`, `norm.*` (in `model`); MAE decoder keys are ignored.
- `sandmine-ssl`: what the pretrain stage writes (`kind`, `encoder`, `channels`, `state_dict`).
ResNet weights go into the timm network inside smp's `tu-` encoder (`TimmEncoder.body`), whose
parameter names are the checkpoints' own (conv1, bn1, layer1…layer4).
Input channels are remapped by band name: a channel the checkpoint knows takes its kernel, a new
channel (S1 for an S2 checkpoint, index channels) takes the mean kernel, a checkpoint band the
model lacks (B10 for an L2A export) is dropped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from sandmine.core.errors import SandmineError
from sandmine.models.encoders import SATMAE_GROUPS, GroupedViT, TimmEncoder, upgrade_keys

SSL4EO_BANDS = {
    13: ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12"],
    12: ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12"],
    2: ["VV", "VH"],
    3: ["B4", "B3", "B2"],
}
_PREFIXES = ("module.", "encoder_q.", "backbone.", "encoder.", "body.")


def _read(path: Path) -> dict[str, Any]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise SandmineError("pretrained weights not found", str(path), "fix 'model.weights' in params.yaml") from exc
    except Exception as exc:
        raise SandmineError(
            f"not a loadable weights file ({exc})", str(path), "give a PyTorch state dict saved with torch.save"
        ) from exc
    if not isinstance(obj, dict):
        raise SandmineError(f"weights file holds a {type(obj).__name__}, not a state dict", str(path))
    return obj


def _strip(sd: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Drop wrapper prefixes (DataParallel, MoCo's query encoder) and the momentum encoder."""
    out = {}
    for k, v in sd.items():
        if not isinstance(v, torch.Tensor) or "encoder_k." in k:
            continue
        changed = True
        while changed:
            changed = False
            for p in _PREFIXES:
                if k.startswith(p):
                    k, changed = k[len(p) :], True
        out[k] = v
    return out


def remap_input(weight: torch.Tensor, ckpt_bands: list[str], channels: list[str]) -> torch.Tensor:
    """Re-order a first-layer kernel (out, len(ckpt_bands), kh, kw) to the model's `channels`."""
    mean = weight.mean(1)
    cols = [weight[:, ckpt_bands.index(c)] if c in ckpt_bands else mean for c in channels]
    return torch.stack(cols, 1)


def load_into(model: nn.Module, path: Path, channels: list[str]) -> str:
    """Load encoder weights from `path` into `model.encoder`; returns what was loaded."""
    raw = _read(path)
    encoder = getattr(model, "encoder", None)
    if encoder is None:
        raise SandmineError("a classical baseline takes no pretrained weights", str(path), "set model.weights: null")
    if raw.get("kind") == "sandmine-ssl":
        if raw.get("method") == "none":
            raise SandmineError(
                "model.weights is 'ssl' but the pretrain stage ran with ssl.method: none",
                str(path),
                "set ssl.method: moco, or model.weights: null",
            )
        if list(raw["channels"]) != list(channels) or raw["encoder_class"] != type(encoder).__name__:
            raise SandmineError(
                f"pretrained encoder is {raw['encoder']} on {raw['channels']}; the model has {channels}",
                str(path),
                "pretrain with the same model.encoder, model.bands and model.indices",
            )
        encoder.load_state_dict(upgrade_keys(raw["state_dict"]))  # an SSL file of format 2 still loads
        return f"sandmine SSL ({raw['method']}) encoder"
    sd = _strip(raw.get("state_dict", raw.get("model", raw)))
    if isinstance(encoder, GroupedViT):
        return _load_satmae(encoder, sd, channels, path)
    if isinstance(encoder, TimmEncoder) and "conv1.weight" in sd:
        return _load_resnet(encoder, sd, channels, path)
    raise SandmineError(
        f"weights layout not recognised for encoder {type(encoder).__name__} (first keys: {list(sd)[:4]})",
        str(path),
        "use an SSL4EO-S12 ResNet checkpoint for resnet18/50, a SatMAE checkpoint for vit_*",
    )


def _load_resnet(encoder: TimmEncoder, sd: dict[str, torch.Tensor], channels: list[str], path: Path) -> str:
    w = sd["conv1.weight"]
    bands = SSL4EO_BANDS.get(w.shape[1])
    if bands is None:
        raise SandmineError(f"conv1 takes {w.shape[1]} bands; SSL4EO-S12 has 13, 12, 3 or 2", str(path))
    if not set(bands) & set(channels):
        raise SandmineError(f"checkpoint bands {bands} share nothing with model channels {channels}", str(path))
    sd = {k: v for k, v in sd.items() if not k.startswith("fc.")}
    sd["conv1.weight"] = remap_input(w, bands, channels)
    target = encoder.body.state_dict()
    missing = [k for k in target if k not in sd]
    if missing:
        raise SandmineError(
            f"checkpoint lacks {len(missing)} encoder tensors (e.g. {missing[:3]}); is it a ResNet of this depth?",
            str(path),
        )
    wrong = [k for k in target if sd[k].shape != target[k].shape]
    if wrong:
        raise SandmineError(f"tensor shapes differ from the encoder (e.g. {wrong[0]})", str(path), "check the depth")
    encoder.body.load_state_dict({k: sd[k] for k in target})
    return f"SSL4EO-S12 ResNet ({len(target)} tensors; bands {bands} -> {len(channels)} channels)"


def _load_satmae(encoder: GroupedViT, sd: dict[str, torch.Tensor], channels: list[str], path: Path) -> str:
    if "patch_embed.0.proj.weight" not in sd:
        raise SandmineError("not a SatMAE group-channel checkpoint (no patch_embed.0.proj)", str(path))
    target = encoder.state_dict()
    new = dict(target)
    dim = sd["cls_token"].shape[-1]
    if dim != encoder.dim or sd["patch_embed.0.proj.weight"].shape[-1] != encoder.patch:
        raise SandmineError(
            f"checkpoint is width {dim}, patch {sd['patch_embed.0.proj.weight'].shape[-1]}; "
            f"encoder is width {encoder.dim}, patch {encoder.patch}",
            str(path),
            "use vit_base for SatMAE-B, or a matching checkpoint",
        )
    matched = []
    for g, idx in enumerate(encoder.groups):
        names = [channels[i] for i in idx]
        if names in SATMAE_GROUPS:
            src = SATMAE_GROUPS.index(names)
            for part in ("weight", "bias"):
                new[f"patch_embed.{g}.proj.{part}"] = sd[f"patch_embed.{src}.proj.{part}"]
            if sd["channel_embed"].shape[-1] == encoder.channel_dim:
                new["channel_embed"][0, g] = sd["channel_embed"][0, src]
            matched.append("/".join(names))
    keys = [k for k in target if k.startswith(("blocks.", "norm.")) or k == "cls_token"]
    missing = [k for k in keys if k not in sd]
    if missing:
        raise SandmineError(
            f"checkpoint lacks {len(missing)} transformer tensors (e.g. {missing[:3]}); depth differs?", str(path)
        )
    for k in keys:
        if sd[k].shape != target[k].shape:
            raise SandmineError(f"tensor {k} is {tuple(sd[k].shape)}, encoder has {tuple(target[k].shape)}", str(path))
        new[k] = sd[k]
    encoder.load_state_dict(new)
    return f"SatMAE ViT ({len(keys)} tensors; band groups {matched or 'none'} from the checkpoint)"
