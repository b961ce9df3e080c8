"""Decoders: encoder features (finest first) -> one-channel logits at the finest stride they reach.

U-Net, FPN, DeepLabV3+, UPerNet and Segformer are segmentation-models-pytorch's; the progressive
(ViT) decoder and the linear probe are ours. `Segmenter` (in `sandmine.models`) upsamples the
logits to the input size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class SmpDecoder(nn.Module):
    """One of segmentation-models-pytorch's decoders and its segmentation head, built as smp's own
    model class builds them (decoder widths, head kernel and upsampling, smp's initialisation), on
    any encoder of ours; `arch` is a key of `SMP`.

    smp numbers features by slot, slot i at stride 2**i with slot 0 the input; the encoder's
    features fill the last slots (a dilated stage repeats a stride and takes the next slot) and the
    slots before them get empty (B, 0, h, w) placeholders, as smp's own timm encoders give them.
    """

    def __init__(self, arch: str, channels: list[int], reductions: list[int]):
        super().__init__()
        from segmentation_models_pytorch.base import SegmentationHead
        from segmentation_models_pytorch.base import initialization as smp_init

        slots: list[int] = []
        for r in reductions:
            slots.append(max(int(math.log2(r)), slots[-1] + 1 if slots else 0))
        self.slots = slots
        decoder, head_in, kernel, up = _smp_decoder(arch, [0] * slots[0] + list(channels), slots[-1], reductions[-1])
        self.decoder = decoder
        self.head = SegmentationHead(head_in, 1, kernel_size=kernel, upsampling=up)
        if arch != "deeplabv3plus":  # smp's DeepLabV3Plus keeps PyTorch's default initialisation
            smp_init.initialize_decoder(self.decoder)
            smp_init.initialize_head(self.head)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        b, (h, w) = feats[0].shape[0], feats[0].shape[-2:]
        h0, w0 = h * 2 ** self.slots[0], w * 2 ** self.slots[0]
        empty = [feats[0].new_empty(b, 0, h0 >> i, w0 >> i) for i in range(self.slots[0])]
        return self.head(self.decoder([*empty, *feats]))


# decoder name -> smp architecture; `_smp_decoder` builds each with its model class's defaults
SMP = {"unet": "Unet", "fpn": "FPN", "deeplabv3plus": "DeepLabV3Plus", "upernet": "UPerNet", "segformer": "Segformer"}
OUTPUT_STRIDE = {"deeplabv3plus": 16}  # the encoder's last stage is dilated (smp's DeepLabV3Plus default)


def _smp_decoder(arch: str, channels: list[int], depth: int, output_stride: int) -> tuple[nn.Module, int, int, int]:
    """smp's decoder for `arch` on smp encoder channels (slot 0 first) -> (decoder, head input channels,
    head kernel, head upsampling), with the arguments smp 0.6's model classes pass."""
    from segmentation_models_pytorch.decoders.deeplabv3.decoder import DeepLabV3PlusDecoder
    from segmentation_models_pytorch.decoders.fpn.decoder import FPNDecoder
    from segmentation_models_pytorch.decoders.segformer.decoder import SegformerDecoder
    from segmentation_models_pytorch.decoders.unet.decoder import UnetDecoder
    from segmentation_models_pytorch.decoders.upernet.decoder import UPerNetDecoder

    if arch == "unet":
        widths = (256, 128, 64, 32, 16)[:depth]
        return UnetDecoder(channels, widths, n_blocks=depth), widths[-1], 3, 1
    if arch == "fpn":  # output at the stride of the fourth-coarsest feature
        return FPNDecoder(channels, encoder_depth=depth), 128, 1, 2 ** (depth - 3)
    if arch == "deeplabv3plus":
        dec = DeepLabV3PlusDecoder(
            channels,
            encoder_depth=depth,  # type: ignore[arg-type]
            out_channels=256,
            atrous_rates=(12, 24, 36),
            output_stride=output_stride,  # type: ignore[arg-type]
            aspp_separable=True,
            aspp_dropout=0.5,
        )
        return dec, 256, 1, 4
    if arch == "upernet":
        return UPerNetDecoder(channels, encoder_depth=depth, decoder_channels=256), 256, 1, 4
    if arch == "segformer":
        return SegformerDecoder(channels, encoder_depth=depth, segmentation_channels=256), 256, 1, 4
    raise ValueError(f"no smp decoder '{arch}'")


class ProgressiveDecoder(nn.Module):
    """Progressive upsampling (SETR-PUP style) of the coarsest feature map: 3x3 conv + x2 bilinear
    upsampling until stride 1. The decoder for single-scale ViT features; works on CNNs too."""

    def __init__(self, channels: list[int], reductions: list[int], width: int = 128):
        super().__init__()
        steps = int(math.log2(reductions[-1]))
        layers: list[nn.Module] = []
        c = channels[-1]
        for k in range(steps):
            w = max(width // (2**k), 16)
            layers += [_conv(c, w), nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)]
            c = w
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv2d(c, 1, 3, padding=1)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return self.head(self.body(feats[-1]))


class LinearDecoder(nn.Module):
    """A linear probe over all encoder features (hypercolumns): each feature map is standardised
    (batch norm without affine terms) and projected to one channel by a 1x1 convolution at its own
    stride, then the projections are resized bilinearly to the finest stride and summed. Resizing
    is linear, so this equals one 1x1 convolution over the resized, concatenated features, at a
    fraction of the cost. Nothing but the probe learns when the encoder is frozen."""

    def __init__(self, channels: list[int], reductions: list[int]):
        super().__init__()
        self.bn = nn.ModuleList(nn.BatchNorm2d(c, affine=False) for c in channels)
        self.proj = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=k == 0) for k, c in enumerate(channels))

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        size = feats[0].shape[-2:]
        out = self.proj[0](self.bn[0](feats[0]))
        for f, bn, proj in zip(feats[1:], self.bn[1:], self.proj[1:]):
            out = out + F.interpolate(proj(bn(f)), size=size, mode="bilinear", align_corners=False)
        return out
