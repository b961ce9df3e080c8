"""Encoders: (B, C, H, W) -> a list of feature maps, finest first, with known channels and strides.

Every encoder exposes `channels` and `reductions` (input pixels per feature pixel) so any decoder
can be built on it. Three kinds: a plain U-Net encoder trained from scratch, any timm CNN as
segmentation-models-pytorch wraps it (`tu-<name>`; ResNet18/50 take SSL4EO-S12 MoCo weights), and a
ViT with SatMAE's grouped-channel patch embedding (takes SatMAE weights).
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import torch
from timm.models.vision_transformer import Block
from torch import nn

# SatMAE (fMoW-Sentinel) embeds these band groups separately; other bands get groups of their own.
SATMAE_GROUPS: list[list[str]] = [["B2", "B3", "B4", "B8"], ["B5", "B6", "B7", "B8A"], ["B11", "B12"]]
SAR = ["VV", "VH"]


class Encoder(nn.Module):
    channels: list[int]
    reductions: list[int]


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class PlainUNetEncoder(Encoder):
    """The contracting path of the original U-Net (two 3x3 convolutions per level, max pooling)."""

    def __init__(self, in_channels: int, widths: tuple[int, ...] = (32, 64, 128, 256, 512)):
        super().__init__()
        self.blocks = nn.ModuleList()
        c = in_channels
        for w in widths:
            self.blocks.append(_conv_block(c, w))
            c = w
        self.channels = list(widths)
        self.reductions = [2**i for i in range(len(widths))]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, block in enumerate(self.blocks):
            x = block(x if i == 0 else nn.functional.max_pool2d(x, 2))
            out.append(x)
        return out


class TimmEncoder(Encoder):
    """A timm model as smp's `tu-<name>` encoder (`TimmUniversalEncoder`), randomly initialised.

    smp returns the input itself as the stride-1 feature and an empty stride-2 feature for encoders
    that start at stride 4; both are dropped here (the decoders of `decoders.SmpDecoder` put them
    back), so the features are the network's own, as `FeatureCache` and the linear probe want them.
    `output_stride` 16 dilates the last stage (DeepLabV3+). The timm network is `body`: timm's
    ResNets keep torchvision's parameter names (conv1, bn1, layer1…layer4), the layout of SSL4EO-S12
    MoCo checkpoints.
    """

    def __init__(self, name: str, in_channels: int, output_stride: int = 32):
        super().__init__()
        from segmentation_models_pytorch.encoders import get_encoder

        self.smp = get_encoder(f"tu-{name}", in_channels=in_channels, weights=None, output_stride=output_stride)
        out = list(self.smp.out_channels)
        self.levels = [i for i in range(1, len(out)) if out[i] > 0]  # smp's slot i is at stride 2**i
        self.channels = [out[i] for i in self.levels]
        self.reductions = [min(2**i, output_stride) for i in self.levels]

    @property
    def body(self) -> nn.Module:
        """The timm network (`features_only`) inside smp's encoder."""
        return self.smp.model

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = self.smp(x)
        return [feats[i] for i in self.levels]


def upgrade_keys(sd: dict[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
    """State-dict keys of a `TimmEncoder` saved before smp wrapped it (`{prefix}body.*`) -> `{prefix}smp.model.*`."""
    old, new = f"{prefix}body.", f"{prefix}smp.model."
    return {(new + k[len(old) :] if k.startswith(old) else k): v for k, v in sd.items()}


def band_groups(bands: list[str]) -> list[list[int]]:
    """Channel indices per patch-embedding group: SatMAE's three groups, then SAR, then the rest.

    A group keeps SatMAE's position (so its weights can load) only if all its bands are present;
    otherwise its bands join the rest.
    """
    groups: list[list[int]] = []
    used: set[int] = set()
    for names in [*SATMAE_GROUPS, SAR]:
        if all(n in bands for n in names):
            idx = [bands.index(n) for n in names]
            groups.append(idx)
            used.update(idx)
    rest = [i for i in range(len(bands)) if i not in used]
    if rest:
        groups.append(rest)
    return groups


def sincos_2d(dim: int, h: int, w: int) -> torch.Tensor:
    """(h*w, dim) fixed 2-D sine-cosine position embedding, laid out as in MAE and SatMAE.

    A float32 tensor on the CPU; a `forward` moves it to its input's device and dtype.
    """
    gy, gx = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")

    def one(d: int, pos: np.ndarray) -> np.ndarray:
        omega = 1.0 / 10000 ** (np.arange(d // 2, dtype=np.float64) / (d / 2.0))
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    # MAE builds the grid as meshgrid(w, h) and embeds grid[0] (columns) first
    emb = np.concatenate([one(dim // 2, gx), one(dim // 2, gy)], axis=1)
    return torch.from_numpy(emb).float()


class PatchEmbed(nn.Module):
    """Patches of `patch` px of some channels -> tokens (same names as timm's PatchEmbed)."""

    def __init__(self, in_channels: int, dim: int, patch: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, L, D)


# width, depth, heads, channel-embedding width (SatMAE base and large use 256)
VIT_SIZES = {"small": (384, 12, 6, 128), "base": (768, 12, 12, 256), "large": (1024, 24, 16, 256)}


class GroupedViT(Encoder):
    """A ViT whose tokens are (patch, band group) pairs, as in SatMAE's group-channel model.

    Each group of bands has its own patch embedding; a token carries a position embedding
    (fixed sine-cosine, `dim - channel_dim` wide, counted within the tile) concatenated with its group's learned
    `channel_embed` (`channel_dim` wide). Attention runs within tiles of `tile` patches per side,
    so cost grows linearly with the window (a 512 px window is 16 tiles of 128 px at patch 8).
    Output: one feature map at stride `patch`, the mean of the groups' tokens at each position.
    Parameter names match SatMAE checkpoints (patch_embed.G.proj, channel_embed, cls_token,
    blocks.N.*, norm).
    """

    def __init__(
        self,
        bands: list[str],
        size: str = "small",
        patch: int = 8,
        tile: int = 16,
    ):
        super().__init__()
        dim, depth, heads, channel_dim = VIT_SIZES[size]
        self.groups = band_groups(bands)
        self.patch, self.tile, self.dim = patch, tile, dim
        self.channel_dim = channel_dim
        self.patch_embed = nn.ModuleList(PatchEmbed(len(g), dim, patch) for g in self.groups)
        self.channel_embed = nn.Parameter(torch.zeros(1, len(self.groups), self.channel_dim))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.blocks = nn.ModuleList(
            Block(dim, heads, mlp_ratio=4.0, qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6))  # type: ignore[arg-type]
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        nn.init.normal_(self.channel_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=0.02)
        self.channels, self.reductions = [dim], [patch]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        b, _, h, w = x.shape
        gh, gw = h // self.patch, w // self.patch
        # positions count within each attention tile, so a 512 px window sees what 128 px training windows saw
        ty, tx = min(self.tile, gh), min(self.tile, gw)
        ny, nx = math.ceil(gh / ty), math.ceil(gw / tx)
        pos = sincos_2d(self.dim - self.channel_dim, ty, tx).to(device=x.device, dtype=x.dtype).view(ty, tx, -1)
        pos = pos.repeat(ny, nx, 1)[:gh, :gw].reshape(gh * gw, -1)  # (L, D - cd)
        g = len(self.groups)
        tokens = torch.stack([emb(x[:, idx]) for emb, idx in zip(self.patch_embed, self.groups)], 1)  # (B,G,L,D)
        chan = self.channel_embed[0][:, None, :].expand(g, gh * gw, self.channel_dim)
        tokens = tokens + torch.cat([pos[None].expand(g, -1, -1), chan], -1)[None]
        # tiles of at most `tile` x `tile` positions attend within themselves
        grid = tokens.view(b, g, gh, gw, self.dim)
        grid = nn.functional.pad(grid, (0, 0, 0, nx * tx - gw, 0, ny * ty - gh))
        seq = (
            grid.view(b, g, ny, ty, nx, tx, self.dim).permute(0, 2, 4, 1, 3, 5, 6).reshape(b * ny * nx, g * ty * tx, -1)
        )
        cls = self.cls_token + torch.cat(
            [self.cls_token.new_zeros(1, 1, self.dim - self.channel_dim), self.channel_embed[:, :1]], -1
        )
        seq = torch.cat([cls.expand(seq.shape[0], -1, -1), seq], 1)
        for block in self.blocks:
            seq = block(seq)
        seq = self.norm(seq)[:, 1:]
        out = seq.view(b, ny, nx, g, ty, tx, self.dim).mean(3)  # mean over groups
        out = out.permute(0, 5, 1, 3, 2, 4).reshape(b, self.dim, ny * ty, nx * tx)
        return [out[:, :, :gh, :gw].contiguous()]
