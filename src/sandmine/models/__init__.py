"""Registry of encoders, decoders and classical baselines; any valid pair builds a model by name.

A deep model is a `Segmenter`: an encoder (list of feature maps with known strides) and a decoder
(logits at its finest stride), upsampled to the input. CNN cells are segmentation-models-pytorch's
(timm encoders as its `tu-` encoders; its U-Net, FPN, DeepLabV3+, UPerNet and Segformer decoders).
The classical baselines (per-pixel random forest, superpixels + gradient boosting) are torch modules
too, so every model trains in the train stage, predicts through the same stitched inference and
lands in the same `dvc exp show`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sandmine.core.errors import SandmineError
from sandmine.device import place
from sandmine.models import decoders as dec
from sandmine.models import encoders as enc

# 3: U-Net/FPN decoders and timm encoders built by segmentation-models-pytorch, superpixels by
# scikit-image's SLIC; format 2 checkpoints load where their cell still computes the same (`_upgrade`)
CHECKPOINT_FORMAT = 3

TIMM = {  # registry name -> timm name, built as smp's `tu-` encoder
    "resnet18": "resnet18",
    "resnet34": "resnet34",
    "resnet50": "resnet50",
    "mobilenet_v2": "mobilenetv2_100",
    "efficientnet_b0": "efficientnet_b0",
}


def _timm(name: str) -> Callable[[list[str], int], enc.Encoder]:
    return lambda ch, stride: enc.TimmEncoder(name, len(ch), stride)


# name in params.yaml -> builder(channel names, output stride) -> Encoder
ENCODERS: dict[str, Callable[[list[str], int], enc.Encoder]] = {
    "unet": lambda ch, stride: enc.PlainUNetEncoder(len(ch)),
    **{k: _timm(t) for k, t in TIMM.items()},
    "vit_small": lambda ch, stride: enc.GroupedViT(ch, "small"),
    "vit_base": lambda ch, stride: enc.GroupedViT(ch, "base"),
}
# smp's decoders need a feature pyramid; ours also take the single feature map of a ViT
OWN_DECODERS: dict[str, Any] = {"progressive": dec.ProgressiveDecoder, "linear": dec.LinearDecoder}
DECODERS = [*dec.SMP, *OWN_DECODERS]
SINGLE_SCALE = {"vit_small", "vit_base"}  # one feature map: decoders that need a pyramid do not apply
BASELINES = {"random_forest", "superpixel_gbm"}  # decoder: none


def valid_pairs() -> list[str]:
    pairs = [f"{e}+{d}" for e in ENCODERS for d in DECODERS if e not in SINGLE_SCALE or d in OWN_DECODERS]
    return pairs + [f"{b}+none" for b in sorted(BASELINES)] + ["tu-<timm model>+<any decoder>"]


def check(encoder: str, decoder: str) -> None:
    """Refuse unknown names or pairs that do not fit, listing the valid ones."""
    where = "params.yaml: model.encoder / model.decoder"
    if encoder in BASELINES:
        if decoder != "none":
            raise SandmineError(
                f"the {encoder} baseline has no decoder; got decoder '{decoder}'", where, "set model.decoder: none"
            )
        return
    known = encoder in ENCODERS or (encoder.startswith("tu-") and _timm_has(encoder[3:]))
    if not known:
        raise SandmineError(
            f"unknown encoder '{encoder}'",
            "params.yaml: model.encoder",
            f"use one of: {', '.join([*ENCODERS, *sorted(BASELINES)])}, or 'tu-<timm model name>'",
        )
    if decoder not in DECODERS:
        raise SandmineError(
            f"unknown decoder '{decoder}'", "params.yaml: model.decoder", f"use one of: {', '.join(DECODERS)}"
        )
    if encoder in SINGLE_SCALE and decoder not in OWN_DECODERS:
        raise SandmineError(
            f"decoder '{decoder}' needs a feature pyramid; encoder '{encoder}' gives one feature map",
            where,
            f"valid pairs: {', '.join(valid_pairs())}",
        )


def _timm_has(name: str) -> bool:
    import timm

    return bool(timm.is_model(name))


class Segmenter(nn.Module):
    """Encoder + decoder -> (B, 1, H, W) logits at the input size.

    With `frozen`, the encoder's parameters take no gradient and it stays in eval mode (batch-norm
    statistics fixed): a linear probe when the decoder is `linear`.
    """

    def __init__(self, encoder: enc.Encoder, decoder: nn.Module, frozen: bool = False):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.frozen = frozen
        if frozen:
            self.encoder.requires_grad_(False)

    def train(self, mode: bool = True) -> Segmenter:
        super().train(mode)
        if self.frozen:
            self.encoder.eval()
        return self

    def decode(self, feats: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        logits = self.decoder(feats)
        if logits.shape[-2:] != size:
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encoder(x), (x.shape[-2], x.shape[-1]))


def build(encoder: str, decoder: str, channels: list[str], frozen: bool = False, **baseline: Any) -> nn.Module:
    """A randomly initialised model for inputs whose channels are named `channels` (bands, indices)."""
    check(encoder, decoder)
    if encoder in BASELINES:
        from sandmine.models import baselines

        return baselines.build(encoder, channels, **baseline)
    stride = dec.OUTPUT_STRIDE.get(decoder, 32)
    try:
        if encoder in ENCODERS:
            e = ENCODERS[encoder](channels, stride)
        else:
            e = enc.TimmEncoder(encoder[3:], len(channels), stride)
    except ValueError as exc:  # smp's timm wrapper refuses feature strides it cannot number
        raise SandmineError(
            f"segmentation-models-pytorch cannot use '{encoder}' as an encoder ({exc})",
            "params.yaml: model.encoder",
            "pick a timm CNN whose features come at strides 2..32 or 4..32",
        ) from exc
    if decoder in dec.SMP:
        d: nn.Module = dec.SmpDecoder(decoder, e.channels, e.reductions)
    else:
        d = OWN_DECODERS[decoder](e.channels, e.reductions)
    return Segmenter(e, d, frozen)


def save_checkpoint(model: nn.Module, meta: dict[str, Any]) -> dict[str, Any]:
    """A self-describing checkpoint: state dict plus everything needed to rebuild and use it.

    `meta` holds encoder, decoder, bands, indices, mean, std, window_px, train params, and for a
    baseline the shapes of its tree arrays (`baseline`). Tensors are stored from the CPU, whatever
    device the model is on, so a plain `torch.load` opens the file anywhere.
    """
    state = model.state_dict()
    for k in list(state):  # in place: the state dict keeps its version metadata; on the CPU each tensor is itself
        state[k] = state[k].cpu()
    return {"format": CHECKPOINT_FORMAT, "state_dict": state, **meta}


def channels(ckpt: dict[str, Any]) -> list[str]:
    """Input channel names of a checkpoint's model: its bands, then its index channels."""
    return [*ckpt["bands"], *ckpt.get("indices", [])]


def load_checkpoint(path: str, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a model from its checkpoint alone (loaded with weights_only=True), on `device`.

    Tensors are mapped to `device` as they load, whatever device they were saved from.
    """
    device = torch.device(device)
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError as exc:
        raise SandmineError("checkpoint not found", path, "run the train stage first") from exc
    except Exception as exc:
        raise SandmineError(f"not a loadable checkpoint ({exc})", path, "re-run the train stage") from exc
    if isinstance(ckpt, dict) and ckpt.get("format") == 2:
        ckpt = _upgrade(ckpt, path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise SandmineError(
            f"checkpoint format {found} is not {CHECKPOINT_FORMAT}", path, "re-run the train stage with this version"
        )
    _check_fields(ckpt, path)
    model = build(
        ckpt["encoder"], ckpt["decoder"], channels(ckpt), bool(ckpt.get("frozen", False)), **ckpt.get("baseline", {})
    )
    try:
        place(model, device).load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:  # missing / unexpected keys, or tensors of another shape
        raise _weights_error(ckpt, path, model, exc) from exc
    model.eval()
    return model, ckpt


def _check_fields(ckpt: dict[str, Any], path: str) -> None:
    """The fields a checkpoint needs to rebuild and feed its model: named, not a KeyError later."""
    missing = [k for k in ("encoder", "decoder", "bands", "state_dict") if k not in ckpt]
    if missing:
        raise SandmineError(
            f"checkpoint lacks {missing}", path, "use a checkpoint written by the train stage (models/model.pt)"
        )
    chans = channels(ckpt)
    for key in ("mean", "std"):
        value = ckpt.get(key)
        if value is None or len(value) != len(chans):
            found = "nothing" if value is None else f"{len(value)} values"
            raise SandmineError(
                f"checkpoint has no normalisation statistics: '{key}' must hold one value per input channel "
                f"({len(chans)}: {chans}), found {found}",
                path,
                "re-run the train stage, which stores the training images' mean and std with the weights",
            )


def _weights_error(ckpt: dict[str, Any], path: str, model: nn.Module, exc: RuntimeError) -> SandmineError:
    """A checkpoint whose weights do not fit the architecture it names, said with a few of the keys."""
    want, have = set(model.state_dict()), set(ckpt["state_dict"])
    missing, unexpected = sorted(want - have), sorted(have - want)
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
    if not parts:  # same keys, other shapes
        parts.append(str(exc).strip().splitlines()[-1].strip()[:300])
    return SandmineError(
        f"the weights do not fit the architecture the checkpoint names ({ckpt['encoder']}+{ckpt['decoder']}, "
        f"{len(channels(ckpt))} input channels): {'; '.join(parts)}",
        path,
        "use the checkpoint exactly as the train stage wrote it (weights and architecture from one run), "
        "or re-run the train stage",
    )


def _upgrade(ckpt: dict[str, Any], path: str) -> dict[str, Any]:
    """A format 2 checkpoint (sandmine's own U-Net and FPN decoders, hand-written SLIC) as format 3.

    Cells that compute what they computed then load: the progressive and linear decoders on any
    encoder (a timm encoder's keys move under smp's wrapper) and the random forest. The others were
    rebuilt from segmentation-models-pytorch or scikit-image and must be trained again.
    """
    encoder, decoder = ckpt.get("encoder", "?"), ckpt.get("decoder", "?")
    if not (encoder == "random_forest" or (decoder in OWN_DECODERS and encoder not in BASELINES)):
        since = "superpixels came from scikit-image" if encoder in BASELINES else "decoder came from smp"
        raise SandmineError(
            f"checkpoint format 2 holds a {encoder}+{decoder} model made before its {since}; this version cannot "
            "load it (segmentation-models-pytorch and scikit-image now build that cell)",
            path,
            "retrain the model: dvc repro train (its weights do not fit the new cell)",
        )
    return {**ckpt, "format": CHECKPOINT_FORMAT, "state_dict": enc.upgrade_keys(ckpt["state_dict"], "encoder.")}
