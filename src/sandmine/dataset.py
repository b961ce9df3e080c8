"""Training data: scenes read window by window from the COGs, AOI-centred windows as a torch Dataset.

Window `i` of epoch `e` is drawn from its own seed `(seed, stream, e, i)`, never from a worker's
random state, so a `DataLoader` gives the same windows in the same order for any number of workers.
Centres are drawn uniformly over AOI pixels from per-block AOI counts (blocks of `BLOCK_PX`, the
COG tile); a scene is read tile by tile into a bounded `TileCache`, and never held whole in memory.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from functools import partial
from pathlib import Path

import numpy as np
import rasterio
import rasterio.windows
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from sandmine.core.bands import channels
from sandmine.core.errors import SandmineError
from sandmine.core.raster import Grid, ImageReader, has_valid_pixel, read_grid
from sandmine.core.schema import IGNORE
from sandmine.core.windows import dihedral
from sandmine.labels import confidence_shapes, weight_window

BLOCK_PX = 256  # AOI counts per block of this size: the COGs' tile, so a centre costs one tile read
STRIP_PX = 1 << 18  # pixels per full-width strip in streaming passes (statistics, label counts, baselines)
TRAIN, VAL, POOL = 0, 1, 2  # independent streams of window draws

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


class Source:
    """One observation's training data: normalised image, label, AOI and loss weight, read by window.

    Subclasses implement `_read` (a rectangle inside the scene) and `shape`; windows that reach
    past an edge are padded (image 0, label IGNORE, AOI false, weight 1).
    """

    obs_id: str

    @property
    def shape(self) -> tuple[int, int]:
        raise NotImplementedError

    def _read(self, r0: int, r1: int, c0: int, c1: int) -> Arrays:
        """Image (C, h, w) float32 standardised, label (h, w) uint8, AOI (h, w) bool, weight (h, w) float32."""
        raise NotImplementedError

    def read(self, row0: int, col0: int, height: int, width: int) -> Arrays:
        """The `height` × `width` rectangle from (row0, col0), padded where it leaves the scene."""
        h, w = self.shape
        r0, c0, r1, c1 = max(row0, 0), max(col0, 0), min(row0 + height, h), min(col0 + width, w)
        if (r0, c0, r1, c1) == (row0, col0, row0 + height, col0 + width):
            return self._read(r0, r1, c0, c1)
        if r1 <= r0 or c1 <= c0:
            raise ValueError(f"rectangle at ({row0}, {col0}) of {height} x {width} px lies outside {self.obs_id}")
        x, y, a, wt = self._read(r0, r1, c0, c1)
        out = (
            np.zeros((x.shape[0], height, width), np.float32),
            np.full((height, width), IGNORE, np.uint8),
            np.zeros((height, width), bool),
            np.ones((height, width), np.float32),
        )
        inner = (slice(r0 - row0, r1 - row0), slice(c0 - col0, c1 - col0))
        out[0][(slice(None), *inner)] = x
        rest: tuple[np.ndarray, ...] = out[1:]
        for o, v in zip(rest, (y, a, wt)):
            o[inner] = v
        return out

    def window(self, row: int, col: int, size: int) -> Arrays:
        """The `size` × `size` window centred at (row, col), as `windows.crop` centres it."""
        return self.read(row - size // 2, col - size // 2, size, size)

    def _masks(self, r0: int, r1: int, c0: int, c1: int) -> tuple[np.ndarray, np.ndarray]:
        """Label (h, w) uint8 and AOI (h, w) bool of a rectangle inside the scene (no image read)."""
        _, y, a, _ = self._read(r0, r1, c0, c1)
        return y, a

    def _strip_rows(self) -> range:
        h, w = self.shape
        return range(0, h, max(1, STRIP_PX // max(w, 1)))

    def strips(self) -> Iterator[tuple[int, Arrays]]:
        """(row0, arrays) of full-width strips of about `STRIP_PX` pixels, top to bottom."""
        h, w = self.shape
        rows = self._strip_rows()
        for r in rows:
            yield r, self._read(r, min(r + rows.step, h), 0, w)

    def mask_strips(self) -> Iterator[tuple[int, tuple[np.ndarray, np.ndarray]]]:
        """(row0, (label, AOI)) of the same strips as `strips`, without reading the image."""
        h, w = self.shape
        rows = self._strip_rows()
        for r in rows:
            yield r, self._masks(r, min(r + rows.step, h), 0, w)

    def aoi_any(self, r0: int, r1: int, c0: int, c1: int) -> bool:
        """Whether the rectangle holds an AOI pixel."""
        return bool(self._masks(r0, r1, c0, c1)[1].any())

    def aoi_block(self, by: int, bx: int) -> np.ndarray:
        """(≤ BLOCK_PX, ≤ BLOCK_PX) bool AOI of block (by, bx)."""
        h, w = self.shape
        r0, c0 = by * BLOCK_PX, bx * BLOCK_PX
        return self._masks(r0, min(r0 + BLOCK_PX, h), c0, min(c0 + BLOCK_PX, w))[1]

    def aoi_counts(self) -> np.ndarray:
        """(blocks down, blocks across) int64 AOI pixels per block; cached."""
        if getattr(self, "_aoi_counts", None) is None:
            h, w = self.shape
            nby, nbx = -(-h // BLOCK_PX), -(-w // BLOCK_PX)
            counts = np.zeros((nby, nbx), np.int64)
            for by in range(nby):
                r0, r1 = by * BLOCK_PX, min((by + 1) * BLOCK_PX, h)
                pad = np.zeros((r1 - r0, nbx * BLOCK_PX), bool)
                pad[:, :w] = self._masks(r0, r1, 0, w)[1]
                counts[by] = pad.reshape(r1 - r0, nbx, BLOCK_PX).sum(axis=(0, 2))
            self._aoi_counts = counts
        return self._aoi_counts

    def label_counts(self) -> tuple[int, int]:
        """(mine pixels, labelled pixels) over the whole scene; cached."""
        if getattr(self, "_label_counts", None) is None:
            mine = known = 0
            for _, (y, _) in self.mask_strips():
                mine += int((y == 1).sum())
                known += int((y != IGNORE).sum())
            self._label_counts = (mine, known)
        return self._label_counts


class Scene(Source):
    """One observation held in memory (tests and small data); reads as a `CogScene` of the same pixels."""

    def __init__(
        self,
        obs_id: str,
        image: np.ndarray,
        label: np.ndarray,
        aoi: np.ndarray,
        weight: np.ndarray | None = None,
    ) -> None:
        self.obs_id = obs_id
        self.image = image  # (C, H, W) float32, standardised
        self.label = label  # (H, W) uint8: 0, 1, 255 = ignore
        self.aoi = aoi  # (H, W) bool
        self.weight = weight  # (H, W) float32 per-pixel loss weight (annotation confidence), or None

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.label.shape[0]), int(self.label.shape[1])

    def _read(self, r0: int, r1: int, c0: int, c1: int) -> Arrays:
        wt = np.ones((r1 - r0, c1 - c0), np.float32) if self.weight is None else self.weight[r0:r1, c0:c1]
        return self.image[:, r0:r1, c0:c1], self.label[r0:r1, c0:c1], self.aoi[r0:r1, c0:c1], wt

    def _masks(self, r0: int, r1: int, c0: int, c1: int) -> tuple[np.ndarray, np.ndarray]:
        return self.label[r0:r1, c0:c1], self.aoi[r0:r1, c0:c1]


class TileCache:
    """Decoded `BLOCK_PX` tiles of many scenes, the least recently used dropped beyond `max_mb`.

    One per process (a pickled or forked copy starts empty): memory stays at `max_mb` whatever the
    number or size of the scenes. GDAL's own block cache would need every file kept open, and an
    open image costs about one decompressed tile of its own.
    """

    def __init__(self, max_mb: float = 256) -> None:
        self.max_bytes = int(max_mb * (1 << 20))
        self._tiles: OrderedDict[tuple, Arrays] = OrderedDict()
        self._bytes = 0
        self._pid = os.getpid()

    def __getstate__(self) -> dict:
        return {"max_bytes": self.max_bytes, "_tiles": OrderedDict(), "_bytes": 0, "_pid": -1}

    def get(self, key: tuple, load: Callable[[], Arrays]) -> Arrays:
        """The tile under `key`, loaded with `load()` when not held."""
        if self._pid != os.getpid():  # a forked worker: its parent's tiles are not its own to count
            self._tiles, self._bytes, self._pid = OrderedDict(), 0, os.getpid()
        tile = self._tiles.get(key)
        if tile is not None:
            self._tiles.move_to_end(key)
            return tile
        tile = load()
        self._tiles[key] = tile
        self._bytes += sum(a.nbytes for a in tile)
        while self._bytes > self.max_bytes and len(self._tiles) > 1:
            _, old = self._tiles.popitem(last=False)
            self._bytes -= sum(a.nbytes for a in old)
        return tile


class CogScene(Source):
    """One observation read from its COGs a tile at a time: image bands and index channels in model
    units, standardised with the training statistics; label and AOI masks; confidence weights
    rasterised from the label polygons that touch the tile. Windows are assembled from tiles held
    in a shared `TileCache`; files are opened for a read and closed again.

    Raises:
        SandmineError: a mask not on the image grid, or an image without a valid pixel.
    """

    def __init__(
        self,
        obs_id: str,
        image: Path,
        label: Path,
        aoi: Path,
        names: list[str],
        bands: list[str],
        indices: list[str],
        mean: np.ndarray,
        std: np.ndarray,
        confidence: dict[str, float] | None = None,
        cache: TileCache | None = None,
    ) -> None:
        self.obs_id = obs_id
        self.paths = (Path(image), Path(label), Path(aoi))
        self.names, self.bands, self.indices = list(names), list(bands), list(indices)
        self.mean = np.asarray(mean, np.float32)[:, None, None]
        self.std = np.asarray(std, np.float32)[:, None, None]
        self.cache = cache if cache is not None else TileCache()
        self.grid: Grid = read_grid(image)
        for path in self.paths[1:]:
            g = read_grid(path)
            if (g.height, g.width, g.transform) != (self.grid.height, self.grid.width, self.grid.transform):
                raise SandmineError("mask is not on the image grid", str(path), "re-run the stage that wrote it")
        if not has_valid_pixel(image, max(1, STRIP_PX // self.grid.width)):
            raise SandmineError("image has no valid pixel", str(image), "re-export it")
        found = confidence_shapes(self.paths[1].with_suffix(".geojson"), self.grid.crs, confidence or {})
        self.weights, self.all_touched = found if found is not None else ([], False)
        self._bounds = np.array([g.bounds for g, _ in self.weights], np.float64).reshape(-1, 4)

    @property
    def shape(self) -> tuple[int, int]:
        return self.grid.height, self.grid.width

    def _read(self, r0: int, r1: int, c0: int, c1: int) -> Arrays:
        out: Arrays = (
            np.empty((len(self.bands) + len(self.indices), r1 - r0, c1 - c0), np.float32),
            np.empty((r1 - r0, c1 - c0), np.uint8),
            np.empty((r1 - r0, c1 - c0), bool),
            np.empty((r1 - r0, c1 - c0), np.float32),
        )
        with ExitStack() as files:
            opened: list = []
            for ty in range(r0 // BLOCK_PX, (r1 - 1) // BLOCK_PX + 1):
                for tx in range(c0 // BLOCK_PX, (c1 - 1) // BLOCK_PX + 1):
                    tile = self.cache.get((self.obs_id, ty, tx), partial(self._load, ty, tx, files, opened))
                    tr, tc = ty * BLOCK_PX, tx * BLOCK_PX
                    rs, re = max(r0, tr), min(r1, tr + BLOCK_PX)
                    cs, ce = max(c0, tc), min(c1, tc + BLOCK_PX)
                    for o, t in zip(out, tile):
                        o[..., rs - r0 : re - r0, cs - c0 : ce - c0] = t[..., rs - tr : re - tr, cs - tc : ce - tc]
        return out

    def _load(self, ty: int, tx: int, files: ExitStack, opened: list) -> Arrays:
        """Tile (ty, tx) from the files (opened once per `_read`, into `opened`)."""
        if not opened:
            image, label, aoi = self.paths
            opened.extend(
                files.enter_context(f)
                for f in (ImageReader(image, self.names), rasterio.open(label), rasterio.open(aoi))
            )
        image, label, aoi = opened
        h, w = self.shape
        r0, c0 = ty * BLOCK_PX, tx * BLOCK_PX
        r1, c1 = min(r0 + BLOCK_PX, h), min(c0 + BLOCK_PX, w)
        win = rasterio.windows.Window(c0, r0, c1 - c0, r1 - r0)
        x = channels(image.read_rows(r0, r1, c0, c1), self.names, self.bands, self.indices)
        x -= self.mean
        x /= self.std
        return x, label.read(1, window=win), aoi.read(1, window=win) > 0, self._weight(r0, r1, c0, c1)

    def aoi_block(self, by: int, bx: int) -> np.ndarray:
        # the window centred in this block is read next: its tile is loaded once, for both
        h, w = self.shape
        r0, c0 = by * BLOCK_PX, bx * BLOCK_PX
        return self._read(r0, min(r0 + BLOCK_PX, h), c0, min(c0 + BLOCK_PX, w))[2]

    def _masks(self, r0: int, r1: int, c0: int, c1: int) -> tuple[np.ndarray, np.ndarray]:
        win = rasterio.windows.Window(c0, r0, c1 - c0, r1 - r0)
        with rasterio.open(self.paths[1]) as label, rasterio.open(self.paths[2]) as aoi:
            return label.read(1, window=win), aoi.read(1, window=win) > 0

    def _weight(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        t = self.grid.transform
        left, top = t.c + c0 * t.a, t.f + r0 * t.e
        right, bottom = t.c + c1 * t.a, t.f + r1 * t.e
        b = self._bounds
        hit = (b[:, 0] <= right) & (b[:, 2] >= left) & (b[:, 1] <= top) & (b[:, 3] >= bottom)
        shapes = [s for s, h in zip(self.weights, hit) if h]
        transform = rasterio.windows.transform(rasterio.windows.Window(c0, r0, c1 - c0, r1 - r0), t)
        return weight_window(shapes, self.all_touched, transform, r1 - r0, c1 - c0)


class Windows(Dataset):
    """`count` AOI-centred windows of `size` px per epoch from `scenes`, each (image, label, AOI, weight).

    Item `(epoch, i)` (or `i`, epoch 0) has its own generator seeded with (seed, stream, epoch, i): its
    centre is uniform over the AOI pixels of all scenes (scenes without any are never drawn; if none
    has any, anywhere), and with `augment` one of the 8 flips and right-angle rotations is applied to
    all four arrays.
    """

    def __init__(
        self,
        scenes: Sequence[Source],
        count: int,
        size: int,
        seed: int,
        stream: int = TRAIN,
        augment: bool = False,
    ) -> None:
        self.scenes = list(scenes)
        self.count, self.size, self.seed, self.stream, self.augment = count, size, seed, stream, augment
        counts = [s.aoi_counts() for s in self.scenes]
        self.anywhere = sum(int(c.sum()) for c in counts) == 0
        if self.anywhere:
            counts = [_block_sizes(s.shape) for s in self.scenes]
        self._across = [c.shape[1] for c in counts]
        self._first = np.cumsum([0] + [c.size for c in counts])  # first block of each scene
        flat = np.concatenate([c.ravel() for c in counts]) if counts else np.zeros(0, np.int64)
        self._flat, self._cum = flat, np.cumsum(flat)

    def __len__(self) -> int:
        return self.count

    def draw(self, epoch: int, i: int) -> tuple[int, int, int, int, bool]:
        """(scene index, row, col, quarter turns, flip) of window `i` of `epoch`."""
        rng = np.random.default_rng([self.seed, self.stream, epoch, i])
        p = int(rng.integers(self._cum[-1]))
        j = int(np.searchsorted(self._cum, p, side="right"))
        local = p - int(self._cum[j] - self._flat[j])
        s = int(np.searchsorted(self._first, j, side="right") - 1)
        by, bx = divmod(j - int(self._first[s]), self._across[s])
        scene = self.scenes[s]
        width = min(BLOCK_PX, scene.shape[1] - bx * BLOCK_PX)
        if self.anywhere:
            r, c = divmod(local, width)
        else:
            r, c = divmod(int(np.flatnonzero(scene.aoi_block(by, bx))[local]), width)
        k, flip = int(rng.integers(4)), bool(rng.integers(2))
        return s, by * BLOCK_PX + r, bx * BLOCK_PX + c, k, flip

    def __getitem__(self, key: int | tuple[int, int]) -> Arrays:
        epoch, i = key if isinstance(key, tuple) else (0, key)
        s, r, c, k, flip = self.draw(epoch, i)
        arrays = self.scenes[s].window(r, c, self.size)
        if not self.augment:
            return arrays
        x, y, a, w = (dihedral(arr, k, flip) for arr in arrays)
        return x, y, a, w


def _block_sizes(shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    rows = np.minimum(BLOCK_PX, h - np.arange(0, h, BLOCK_PX))
    cols = np.minimum(BLOCK_PX, w - np.arange(0, w, BLOCK_PX))
    return np.outer(rows, cols).astype(np.int64)


class _Epoch(Sampler):
    """Keys (epoch, 0…count-1) of the epoch last set; the sampler runs in the main process."""

    def __init__(self, count: int) -> None:
        self.count, self.epoch = count, 0

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return ((self.epoch, i) for i in range(self.count))

    def __len__(self) -> int:
        return self.count


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # workers read and crop; the main process computes


class WindowLoader:
    """Batches of a `Windows` set, epoch by epoch, in order, read by `workers` processes (0: this one).

    Workers live as long as the loader, so their tile caches carry over between epochs. The loader's
    own generator is fixed, so iterating it leaves torch's global random state alone.
    """

    def __init__(self, windows: Windows, batch_size: int, workers: int = 0) -> None:
        self.windows, self._sampler = windows, _Epoch(len(windows))
        self._loader = DataLoader(
            windows,
            batch_size=batch_size,
            sampler=self._sampler,
            num_workers=workers,
            persistent_workers=workers > 0,
            worker_init_fn=_worker_init if workers else None,
            generator=torch.Generator().manual_seed(0),
        )

    def epoch(self, epoch: int = 0) -> Iterator[list[torch.Tensor]]:
        """(image, label, AOI, weight) batches of the windows of `epoch`."""
        self._sampler.epoch = epoch
        return iter(self._loader)

    def __len__(self) -> int:
        return len(self._loader)


def band_stats(
    images: Sequence[Path], aois: Sequence[Path], names: list[str], bands: list[str], indices: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and sd (model units: `bands` then `indices`) over AOI pixels of the images.

    One streaming pass of full-width strips per image (bands `names`, see `bands.read_names`);
    strips are combined with Chan's pairwise update in float64, so the result is the mean and sd
    of all AOI pixels at once without holding them.

    Raises:
        SandmineError: no image has an AOI pixel.
    """
    n, mean, m2 = 0, np.zeros(0), np.zeros(0)
    for image_path, aoi_path in zip(images, aois):
        with ImageReader(image_path, names) as image, rasterio.open(aoi_path) as aoi:
            h, w = image.grid.height, image.grid.width
            rows = max(1, STRIP_PX // max(w, 1))
            for r in range(0, h, rows):
                r1 = min(r + rows, h)
                a = aoi.read(1, window=rasterio.windows.Window(0, r, w, r1 - r)) > 0
                if not a.any():
                    continue
                v = channels(image.read_rows(r, r1), names, bands, indices)[:, a].astype(np.float64)
                nb, mb = v.shape[1], v.mean(axis=1)
                m2b = ((v - mb[:, None]) ** 2).sum(axis=1)
                if n == 0:
                    n, mean, m2 = nb, mb, m2b
                    continue
                delta, total = mb - mean, n + nb
                mean = mean + delta * nb / total
                m2 = m2 + m2b + delta**2 * (n * nb / total)
                n = total
    if n == 0:
        raise SandmineError(
            "no training observation has an AOI pixel",
            str(Path(aois[0]).parent) if aois else "the split",
            "check the aoi stage and the split",
        )
    std = np.sqrt(m2 / n)
    return mean.astype(np.float32), np.maximum(std, 1e-6).astype(np.float32)
