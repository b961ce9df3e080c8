"""Decoders: encoder features (finest first) -> one-channel logits at the finest stride they reach.

`Segmenter` (in `sandmine.models`) upsamples the logits to the input size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class UNetDecoder(nn.Module):
    """U-Net expanding path: upsample x2, concatenate the skip at that stride, two 3x3 convolutions;
    past the finest skip it keeps upsampling (without skips) down to stride 1."""

    min_scales = 2

    def __init__(self, channels: list[int], reductions: list[int], widths: tuple[int, ...] = (256, 128, 64, 32, 16)):
        super().__init__()
        skips = {r: c for r, c in zip(reductions, channels)}
        self.reductions = reductions
        c, r = channels[-1], reductions[-1]
        self.blocks = nn.ModuleList()
        self.skip_at: list[int] = []
        i = 0
        while r > 1:
            r //= 2
            w = widths[min(i, len(widths) - 1)]
            skip = skips.get(r, 0)
            self.blocks.append(nn.Sequential(_conv(c + skip, w), _conv(w, w)))
            self.skip_at.append(r if skip else 0)
            c, i = w, i + 1
        self.upsample = bool(self.blocks)
        if not self.blocks:  # finest feature already at stride 1: still refine once
            self.blocks.append(nn.Sequential(_conv(c, widths[-1]), _conv(widths[-1], widths[-1])))
            self.skip_at.append(0)
            c = widths[-1]
        self.head = nn.Conv2d(c, 1, 3, padding=1)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        by_r = dict(zip(self.reductions, feats))
        x = feats[-1]
        for block, r in zip(self.blocks, self.skip_at):
            if self.upsample:
                size = by_r[r].shape[-2:] if r else (x.shape[-2] * 2, x.shape[-1] * 2)
                x = F.interpolate(x, size=size, mode="nearest")
            if r:
                x = torch.cat([x, by_r[r]], 1)
            x = block(x)
        return self.head(x)


class FPNDecoder(nn.Module):
    """Feature Pyramid Network for segmentation (Kirillov et al., panoptic FPN head): lateral 1x1,
    top-down sum, each level brought to the finest pyramid stride by 3x3 conv + x2 upsampling,
    summed, then a 3x3 head."""

    min_scales = 2

    def __init__(self, channels: list[int], reductions: list[int], width: int = 128, seg: int = 64):
        super().__init__()
        # levels at stride >= 4 (as in FPN), or all of them if the encoder has none finer
        keep = [i for i, r in enumerate(reductions) if r >= 4] or list(range(len(reductions)))
        self.keep = keep[-4:] if len(keep) > 4 else keep
        self.lateral = nn.ModuleList(nn.Conv2d(channels[i], width, 1) for i in self.keep)
        base = reductions[self.keep[0]]
        self.up_steps = [int(math.log2(reductions[i] // base)) for i in self.keep]
        self.seg = nn.ModuleList(
            nn.Sequential(*[_conv(width if k == 0 else seg, seg) for k in range(max(n, 1))]) for n in self.up_steps
        )
        self.head = nn.Conv2d(seg, 1, 3, padding=1)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        lat = [conv(feats[i]) for conv, i in zip(self.lateral, self.keep)]
        for k in range(len(lat) - 2, -1, -1):  # top-down
            lat[k] = lat[k] + F.interpolate(lat[k + 1], size=lat[k].shape[-2:], mode="nearest")
        size = lat[0].shape[-2:]
        outs = []
        for x, n, block in zip(lat, self.up_steps, self.seg):
            for k, layer in enumerate(block.children()):
                x = layer(x)
                if k < n:
                    x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            outs.append(F.interpolate(x, size=size, mode="bilinear", align_corners=False))
        return self.head(torch.stack(outs).sum(0))


class ProgressiveDecoder(nn.Module):
    """Progressive upsampling (SETR-PUP style) of the coarsest feature map: 3x3 conv + x2 bilinear
    upsampling until stride 1. The decoder for single-scale ViT features; works on CNNs too."""

    min_scales = 1

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

    min_scales = 1

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
