"""Registry of encoders and decoders; any valid pair builds a segmentation model by name."""

from __future__ import annotations

from typing import Any

import segmentation_models_pytorch as smp
import torch
from torch import nn

from sandmine.errors import SandmineError

# name in params.yaml -> encoder name in segmentation-models-pytorch (timm ones as `tu-…`)
ENCODERS: dict[str, str] = {
    "resnet18": "resnet18",
    "resnet34": "resnet34",
    "resnet50": "resnet50",
    "mobilenet_v2": "mobilenet_v2",
    "efficientnet_b0": "tu-efficientnet_b0",
}
DECODERS: dict[str, str] = {"unet": "Unet", "fpn": "FPN", "linknet": "Linknet"}
CHECKPOINT_FORMAT = 1


def check(encoder: str, decoder: str) -> None:
    """Refuse unknown names (or `tu-` timm names that timm does not have), listing valid ones."""
    if decoder not in DECODERS:
        raise SandmineError(
            f"unknown decoder '{decoder}'", "params.yaml: model.decoder", f"use one of: {', '.join(DECODERS)}"
        )
    if encoder in ENCODERS:
        return
    if encoder.startswith("tu-"):
        import timm

        if timm.is_model(encoder[3:]):
            return
    raise SandmineError(
        f"unknown encoder '{encoder}'",
        "params.yaml: model.encoder",
        f"use one of: {', '.join(ENCODERS)}, or 'tu-<timm model name>'",
    )


def build(encoder: str, decoder: str, in_channels: int) -> nn.Module:
    """A randomly initialised model: (B, in_channels, H, W) -> (B, 1, H, W) logits."""
    check(encoder, decoder)
    return smp.create_model(
        DECODERS[decoder],
        encoder_name=ENCODERS.get(encoder, encoder),
        encoder_weights=None,
        in_channels=in_channels,
        classes=1,
    )


def save_checkpoint(model: nn.Module, meta: dict[str, Any]) -> dict[str, Any]:
    """A self-describing checkpoint: state dict plus everything needed to rebuild and use it."""
    return {"format": CHECKPOINT_FORMAT, "state_dict": model.state_dict(), **meta}


def load_checkpoint(path: str) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a model from its checkpoint alone (loaded with weights_only=True)."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise SandmineError("checkpoint not found", path, "run the train stage first") from exc
    except Exception as exc:
        raise SandmineError(f"not a loadable checkpoint ({exc})", path, "re-run the train stage") from exc
    if ckpt.get("format") != CHECKPOINT_FORMAT:
        raise SandmineError(f"checkpoint format {ckpt.get('format')} is not {CHECKPOINT_FORMAT}", path)
    model = build(ckpt["encoder"], ckpt["decoder"], len(ckpt["bands"]))
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    return model, ckpt
