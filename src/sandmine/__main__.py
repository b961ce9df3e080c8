"""`sandmine predict`: mining probability for any GeoTIFF with the bands a model was trained on.

    sandmine predict IMAGE.tif --model models/model.pt --out pred.tif [--polygons mines.geojson]
    sandmine select --first 2025-10-01/2025-12-31 --second 2026-03-01/2026-05-31 --project P
    sandmine labelbox-push --project ID --dataset NAME --url https://storage.googleapis.com/b/{file}
    sandmine survey [--rivers my_rivers.gpkg] [--period 2025-10-01/2025-12-31 ...] [--out data/my_survey]
    sandmine review-stats decisions.geojson [--labels-dir data/reviewed]

The image needs band descriptions naming its bands (B2, B3, …, VV, VH) in the units of an
Earth Engine export (reflectance, dB); the output is a uint8 COG (probability = value / 255).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sandmine.core.config import PredictParams, check_grid, knob


def _predict(a: argparse.Namespace) -> None:
    from sandmine.core.files import check_outputs, output_lock
    from sandmine.core.raster import read_grid

    check_grid(a.window, a.stride, a.discard, "sandmine predict", names=("--window", "--stride", "--discard"))
    g = read_grid(a.image)  # before any work: outputs that would destroy an input, unwritable, or too big
    check_outputs(
        {"IMAGE": a.image, "--model": a.model},
        {"--out": a.out, "--mask": a.mask, "--polygons": a.polygons},
        sizes={"--out": g.height * g.width},  # uint8 probability, before compression
    )
    with output_lock(a.out, a.mask, a.polygons):
        _predict_locked(a)


def _predict_locked(a: argparse.Namespace) -> None:
    from sandmine import models, scale, strips
    from sandmine.core.files import write_text
    from sandmine.core.raster import read_grid
    from sandmine.prediction import Stitch, predict_file

    s = Stitch(a.window, a.stride, a.discard, a.batch_size, a.blend, a.precision)
    ckpt = None
    where = "sandmine predict --device"
    if a.workers:
        job = scale.Job(a.image, a.out)
        scale.predict_many(a.model, [job], s, a.workers, a.scheduler, a.tile_rows, a.threads, a.device, where)
    else:
        import torch

        from sandmine.device import resolve_device

        device = resolve_device(a.device, where)
        torch.set_num_threads(a.threads)
        model, ckpt = models.load_checkpoint(str(a.model), device)
        predict_file(model, ckpt, a.image, a.out, s, progress=True)
    if a.polygons or a.mask:
        threshold = _threshold(a, lambda: ckpt if ckpt is not None else models.load_checkpoint(str(a.model))[1])
        grid = read_grid(a.out)
        min_pixels = max(1, round(a.min_area_ha / grid.pixel_area_ha))
        # a strip of rows at a time: a 30,000 px square raster never sits in memory whole
        feats = strips.mask_and_polygons(a.out, threshold, min_pixels, a.min_area_ha, {"image": a.image.name}, a.mask)
        if a.polygons:
            write_text(a.polygons, json.dumps({"type": "FeatureCollection", "features": feats}) + "\n")
            print(f"{len(feats)} polygons, {sum(f['properties']['area_ha'] for f in feats):.1f} ha -> {a.polygons}")
    print(f"probability -> {a.out}")


def _threshold(a: argparse.Namespace, ckpt: Callable[[], dict[str, Any]]) -> float:
    """--threshold, else the checkpoint's operating threshold for --operating-point, else (older
    checkpoints) 0.5 with a warning (`calibration.decide_threshold`)."""
    from sandmine.calibration import decide_threshold

    value, origin = decide_threshold(a.threshold, a.operating_point, ckpt, str(a.model))
    if origin == "given":
        print(f"threshold {value:g} (--threshold)")
    elif origin == "default":
        print(
            f"warning: {a.model} has no operating threshold (trained before thresholds were chosen on validation); "
            f"using {value:g}: re-run the train stage, or pass --threshold",
            file=sys.stderr,
        )
        print(f"threshold {value:g} (default: the checkpoint has none)")
    else:
        point = a.operating_point
        print(f"threshold {value:g} (the checkpoint's operating threshold for {point}, chosen on validation)")
    return value


def _select(a: argparse.Namespace) -> None:
    from sandmine.core.files import check_outputs, output_lock, write_text
    from sandmine.core.sites import read_sites
    from sandmine.sources import gee, selector

    check_outputs({"--sites": a.sites}, {"--out": a.out})
    with output_lock(a.out):
        gee.initialize(a.project)
        sites = read_sites(a.sites)
        first, second = tuple(a.first.split("/")), tuple(a.second.split("/"))
        lines = selector.select_observations(sites, first, second, a.max_cloud)
        write_text(a.out, "\n".join(lines) + "\n")
    print(f"{len(lines) - 1} observations of {len(sites)} sites -> {a.out}")


class _Placeholders(dict):
    """str.format_map values that leave a tile URL's {z}/{x}/{y} for Labelbox to fill."""

    def __missing__(self, key: str) -> str:
        if key in ("z", "x", "y"):
            return "{" + key + "}"
        raise KeyError(key)


def _labelbox_push(a: argparse.Namespace) -> None:
    import csv

    from rasterio.warp import transform_bounds

    from sandmine.core.errors import SandmineError
    from sandmine.core.raster import read_grid
    from sandmine.sources import labelbox

    with a.manifest.open(newline="") as fh:
        recs = [r for r in csv.DictReader(fh) if r["role"] in a.roles]
    if not recs:
        raise SandmineError(f"no observation with role {a.roles}", str(a.manifest), "check --roles")
    rows = []
    for r in recs:
        try:
            url = a.url.format_map(
                _Placeholders(obs_id=r["obs_id"], file=r["file"], site_id=r["site_id"], date=r["date"])
            )
        except KeyError as exc:
            raise SandmineError(
                f"unknown placeholder {exc} in --url", a.url, "use {obs_id} {file} {site_id} {date}"
            ) from exc
        bounds = None
        if a.geo:
            g = read_grid(a.manifest.parent / r["file"])
            bounds = tuple(transform_bounds(g.crs, "EPSG:4326", *g.bounds))
        rows.append(labelbox.row_data(r["obs_id"], url, bounds))  # type: ignore[arg-type]
    keys = labelbox.push(a.project, a.dataset, rows)
    print(f"{len(keys)} data rows -> dataset '{a.dataset}', batch sent to project {a.project}")


def _survey(a: argparse.Namespace) -> None:
    import logging

    from sandmine.core.config import load_params
    from sandmine.steps import survey

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")  # as the stage logs
    p = load_params(a.params)
    for key, value in (
        ("rivers", a.rivers),
        ("rivers_layer", a.rivers_layer),
        ("river_field", a.river_field),
        ("region", a.region),
    ):
        if value is not None:
            setattr(p.survey, key, str(value))
    if a.period:
        p.survey.periods = list(a.period)
    if a.workers is not None:
        p.predict.workers = a.workers
    survey.run(p, a.model, a.out, a.report, a.metrics, a.params)


def _review_stats(a: argparse.Namespace) -> None:
    from sandmine import review

    features = review.read_decisions(a.decisions)
    print(review.report(review.summarise(features), str(a.decisions)))
    if a.labels_dir:
        files = review.split_labels(features, a.labels_dir)
        print(
            f"{len(files)} label file(s) ({{obs_id}}.geojson) -> {a.labels_dir}: set labels.source: geojson, "
            f"labels.folder: {a.labels_dir}"
        )


def _option(key: str, flag: str) -> Callable[[str], Any]:
    """An argparse `type=` that reads `flag` as params field `key` and applies that field's range check."""
    k = knob(key)
    default = "the checkpoint's value" if k.default is None else f"the default {k.shown_default}"

    def parse(text: str) -> Any:
        try:
            return k.parse(text)
        except ValueError as exc:
            fix = f"change {flag}, or leave it out for {default}"
            raise argparse.ArgumentTypeError(f"{key} {exc}\nHow to fix: {fix}") from None

    return parse


def _add(p: argparse.ArgumentParser, flag: str, key: str, help: str = "", default: Any = ...) -> None:
    """Option `flag` for params field `key`: default from the schema (unless given), values checked as the field's."""
    k = knob(key)
    value = k.default if default is ... else default
    shown = "the checkpoint's operating threshold" if value is None else value
    rule = f"{k.valid}; " if k.valid else ""
    p.add_argument(flag, type=_option(key, flag), default=value, help=f"{help}{rule}default {shown} ({key})")


def parser() -> argparse.ArgumentParser:
    """The `sandmine` command line; predict's defaults and checks come from the params schema."""
    parser = argparse.ArgumentParser(
        prog="sandmine", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("predict", help="predict mining probability for a GeoTIFF")
    p.add_argument("image", type=Path)
    p.add_argument("--model", type=Path, required=True, help="checkpoint written by the train stage")
    p.add_argument("--out", type=Path, required=True, help="output COG (uint8, probability = value / 255)")
    p.add_argument("--polygons", type=Path, help="also write polygons of mining (GeoJSON, EPSG:4326)")
    p.add_argument("--mask", type=Path, help="also write the binary mask (COG)")
    _add(p, "--threshold", "predict.threshold", "probability at which a pixel is mined; ")
    _add(p, "--operating-point", "predict.operating_point", "which stored threshold without --threshold; ")
    _add(p, "--min-area-ha", "infer.min_area_ha", "smallest mine kept in the mask and polygons; ")
    _add(p, "--window", "predict.window_px")
    _add(p, "--stride", "predict.stride_px")
    _add(p, "--discard", "predict.discard_px")
    _add(p, "--batch-size", "predict.batch_size")
    _add(p, "--blend", "predict.blend")
    _add(p, "--device", "predict.device", "where the model runs (auto: a GPU when torch sees one); ")
    _add(p, "--precision", "predict.precision", "bf16: autocast to bfloat16; ")
    # one image is predicted here by default: a Dask cluster (params.yaml's workers: 1) pays off over many
    _add(p, "--workers", "predict.workers", "Dask worker processes (0: this process); ", default=0)
    p.add_argument("--scheduler", default=PredictParams().scheduler, help="address of a running Dask scheduler")
    _add(p, "--tile-rows", "predict.tile_rows")
    _add(p, "--threads", "predict.threads", "torch threads (per task with Dask); ")
    q = sub.add_parser("select", help="choose two clear dates per site with the most change (Earth Engine)")
    q.add_argument("--sites", type=Path, default=Path("data/sites.geojson"))
    q.add_argument("--first", required=True, help="first season window, START/END (e.g. 2025-10-01/2025-12-31)")
    q.add_argument("--second", required=True, help="second season window, START/END")
    q.add_argument("--max-cloud", type=float, default=0.2)
    q.add_argument("--project", required=True, help="Cloud project registered for Earth Engine")
    q.add_argument("--out", type=Path, default=Path("data/observations.csv"))
    lb = sub.add_parser("labelbox-push", help="send observations to a Labelbox project for annotation")
    lb.add_argument("--project", required=True, help="Labelbox project id (LABELBOX_API_KEY in the environment)")
    lb.add_argument("--dataset", required=True, help="name of the dataset to create")
    lb.add_argument(
        "--url",
        required=True,
        help="where Labelbox finds each image: a COG URL, or with --geo a tile URL with {z}/{x}/{y};\n"
        "placeholders {obs_id} {file} {site_id} {date}, e.g. https://storage.googleapis.com/b/{file}",
    )
    lb.add_argument("--geo", action="store_true", help="geospatial project: a tile layer with the image's bounds")
    lb.add_argument("--manifest", type=Path, default=Path("data/images/manifest.csv"))
    lb.add_argument("--roles", nargs="+", default=["labelled"], help="manifest roles to send")
    sv = sub.add_parser(
        "survey", help="map mining along whole rivers for each period (params.yaml's survey:, overridable here)"
    )
    sv.add_argument("--params", type=Path, default=Path("params.yaml"))
    sv.add_argument("--model", type=Path, default=Path("models/model.pt"))
    sv.add_argument("--rivers", type=Path, help="vector file of rivers, any CRS (survey.rivers)")
    sv.add_argument("--rivers-layer", help="its layer, for a GeoPackage of several (survey.rivers_layer)")
    sv.add_argument("--river-field", help="the field naming each river (survey.river_field)")
    sv.add_argument("--region", type=Path, help="polygon file: only the rivers inside it (survey.region)")
    sv.add_argument("--period", action="append", help="START/END, repeat for several (survey.periods)")
    sv.add_argument("--workers", type=_option("predict.workers", "--workers"), help="Dask workers (predict.workers)")
    sv.add_argument("--out", type=Path, default=Path("data/survey"), help="mosaics, chunks and survey.gpkg")
    sv.add_argument("--report", type=Path, default=Path("reports/survey.html"))
    sv.add_argument("--metrics", type=Path, default=Path("metrics/survey.json"))
    rv = sub.add_parser("review-stats", help="precision of the map from review decisions (reports' Review panel)")
    rv.add_argument("decisions", type=Path, help="the GeoJSON downloaded from reports/map.html or reports/survey.html")
    rv.add_argument("--labels-dir", type=Path, help="also write one {obs_id}.geojson per observation there (labels)")
    return parser


def main(argv: list[str] | None = None) -> None:
    from sandmine.core.errors import SandmineError

    a = parser().parse_args(argv)
    commands = {"predict": _predict, "select": _select, "labelbox-push": _labelbox_push, "survey": _survey,
                "review-stats": _review_stats}  # fmt: skip
    try:
        commands[a.command](a)
    except SandmineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
