"""Prediction of many observations, and of tiles of very large rasters, across Dask workers.

Each task streams one tile (a range of rows) of one image into its own COG; a second task per
image joins the tiles into the final COG. With `workers == 0` the same tasks run in this
process, in order. A task loads the model from its checkpoint path once per worker process, on
the device its device string names (resolved in the worker: `auto` is that worker's GPU if any).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.windows
import torch

from sandmine import models
from sandmine.core.config import PredictParams
from sandmine.core.raster import CogWriter, check_metric_grid, read_grid
from sandmine.device import resolve_device
from sandmine.prediction import Stitch, predict_file

log = logging.getLogger(__name__)
_MODELS: dict[tuple[str, float, str], tuple[torch.nn.Module, dict]] = {}


@dataclass(frozen=True)
class Job:
    """Predict image `src` into COG `dst`, adding `tags`."""

    src: Path
    dst: Path
    tags: tuple[tuple[str, str], ...] = ()


def tiles(height: int, tile_rows: int) -> list[tuple[int, int]]:
    """Row ranges of at most `tile_rows` rows covering [0, height)."""
    return [(a, min(a + tile_rows, height)) for a in range(0, height, tile_rows)]


def _model(path: str, device: torch.device) -> tuple[torch.nn.Module, dict]:
    key = (path, Path(path).stat().st_mtime, str(device))
    if key not in _MODELS:
        _MODELS.clear()
        _MODELS[key] = models.load_checkpoint(path, device)
    return _MODELS[key]


def _tile_path(dst: Path, i: int, run: str) -> Path:
    """Tile `i` of `dst` for the run `run` (pid + random): two runs on one output never share a tile file."""
    return dst.with_name(f".tmp-{dst.name}-{run}.tile{i:04d}.tif")


def _run_id() -> str:
    return f"{os.getpid()}-{secrets.token_hex(4)}"


def predict_tile(
    model_path: str,
    job: Job,
    s: Stitch,
    rows: tuple[int, int] | None,
    i: int,
    threads: int,
    device: str = "cpu",
    run: str = "",
) -> str:
    """One task: predict `rows` of `job.src` (all rows if None) into a tile COG, or the final COG, on `device`."""
    torch.set_num_threads(threads)
    model, ckpt = _model(model_path, resolve_device(device, "predict.device"))
    out = job.dst if rows is None else _tile_path(job.dst, i, run or _run_id())
    predict_file(model, ckpt, job.src, out, s, dict(job.tags), rows=rows)
    return str(out)


def join_tiles(job: Job, parts: list[str]) -> str:
    """One task: copy tile COGs, top to bottom, into the final COG, then delete them."""
    grid = read_grid(job.src)
    with rasterio.open(parts[0]) as first:
        tags = first.tags()
    with CogWriter(job.dst, grid, "uint8", "mine_probability", tags, resampling="average") as out:
        row = 0
        for part in parts:
            with rasterio.open(part) as ds:
                for _, window in ds.block_windows(1):
                    if window.col_off == 0:  # one strip of blocks at a time, all columns
                        w = rasterio.windows.Window(0, window.row_off, ds.width, window.height)
                        out.write_rows(row + window.row_off, np.asarray(ds.read(1, window=w)))
                row += ds.height
    for part in parts:
        Path(part).unlink()
    return str(job.dst)


def predict_many(
    model_path: Path,
    jobs: list[Job],
    s: Stitch,
    workers: int,
    scheduler: str | None = None,
    tile_rows: int = 4096,
    threads: int = 1,
    device: str = "cpu",
    where: str = "params.yaml: predict.device",
) -> None:
    """Predict every job; images taller than `tile_rows` are split into row tiles.

    Args:
        workers: local worker processes (0: run here, in order); ignored with `scheduler`.
        scheduler: address of a running Dask scheduler (e.g. tcp://10.0.0.5:8786); paths must
            then be on storage that the workers share.
        threads: torch threads per task.
        device: `auto | cpu | cuda | cuda:N`, sent to each task as text and resolved there.
        where: what set `device`, for the error when this machine lacks it.
    """
    from tqdm import tqdm

    if scheduler is None:  # local tasks: a device this machine lacks stops here, before any worker starts
        resolve_device(device, where)

    plan = []
    for job in jobs:
        g = read_grid(job.src)
        check_metric_grid(g, str(job.src))  # before any task starts (the tasks check the resolution too)
        h = g.height
        parts = tiles(h, tile_rows) if h > tile_rows else [None]
        plan.append((job, parts))
    n_tasks = sum(len(parts) for _, parts in plan)
    run = _run_id()
    if workers == 0 and scheduler is None:
        with tqdm(total=n_tasks, desc="predict", unit="tile") as bar:
            for job, parts in plan:
                done = []
                for i, rows in enumerate(parts):
                    done.append(predict_tile(str(model_path), job, s, rows, i, threads, device, run))
                    bar.update()
                if parts != [None]:
                    join_tiles(job, done)
        return
    from dask.distributed import as_completed

    with dask_client(workers, scheduler) as client:
        futures, joins = [], []
        for job, parts in plan:
            tile_futs = [
                client.submit(predict_tile, str(model_path), job, s, rows, i, threads, device, run, pure=False)
                for i, rows in enumerate(parts)
            ]
            futures += tile_futs
            if parts != [None]:
                joins.append(client.submit(join_tiles, job, tile_futs, pure=False))
        with tqdm(
            total=n_tasks, desc=f"predict ({len(client.scheduler_info()['workers'])} workers)", unit="tile"
        ) as bar:
            for fut in as_completed(futures):
                fut.result()  # raises the task's error here
                bar.update()
        client.gather(joins)


@contextlib.contextmanager
def dask_client(workers: int, scheduler: str | None = None) -> Iterator[Any]:
    """A Dask client on `scheduler`, or on a LocalCluster of `workers` processes (one thread each, no
    dashboard, no memory limit) that is closed afterwards. Distributed's logs are kept to warnings."""
    from dask.distributed import Client, LocalCluster

    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")  # worker processes inherit it
    logging.getLogger("distributed").setLevel(logging.WARNING)
    cluster = None
    if scheduler is None:
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None, memory_limit=0
        )
    try:
        with Client(scheduler or cluster) as client:
            yield client
    finally:
        if cluster is not None:
            cluster.close()


def run_many(fn: Callable[..., object], args: list[tuple], workers: int, scheduler: str | None, desc: str) -> None:
    """`fn(*a)` for every `a`, with a progress bar: in this process with no workers and no scheduler,
    else as Dask tasks; the first task that fails raises here."""
    from tqdm import tqdm

    if not args:
        return
    if workers == 0 and scheduler is None:
        for a in tqdm(args, desc=desc, unit="task"):
            fn(*a)
        return
    from dask.distributed import as_completed

    with dask_client(workers, scheduler) as client:
        futures = [client.submit(fn, *a, pure=False) for a in args]
        for fut in tqdm(as_completed(futures), total=len(futures), desc=desc, unit="task"):
            fut.result()


def stitch(q: PredictParams) -> Stitch:
    """The stitching that `predict` params ask for."""
    return Stitch(q.window_px, q.stride_px, q.discard_px, q.batch_size, q.blend, q.precision)


def predict_observations(q: PredictParams, model_path: Path, jobs: list[tuple[Path, Path]]) -> None:
    """Predict (image, output COG) pairs with the params' stitching, over Dask workers, on `predict.device`."""
    predict_many(
        model_path,
        [Job(src, dst) for src, dst in jobs],
        stitch(q),
        q.workers,
        q.scheduler,
        q.tile_rows,
        q.threads,
        q.device,
    )
