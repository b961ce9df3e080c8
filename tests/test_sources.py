"""The source interface (sources/base.py): the registry by source.kind and what every source provides."""

from __future__ import annotations

import json

import pytest

from sandmine.core.config import Params
from sandmine.core.errors import SandmineError
from sandmine.core.sites import read_observations, read_sites
from sandmine.sources.base import ChunkImage, Source, cache_key
from sandmine.sources.registry import SOURCES, create


@pytest.mark.parametrize("kind", sorted(SOURCES))
def test_create_builds_the_source_of_each_kind(kind):
    p = Params()
    p.source.kind = kind
    source = create(p)
    assert isinstance(source, Source) and source.kind == kind and source.p is p
    assert source.covers()  # every source says what an empty image means


def test_create_refuses_an_unknown_kind_and_lists_the_known_ones():
    p = Params()
    p.source.kind = "sentinelhub"
    with pytest.raises(SandmineError, match="unknown source.kind 'sentinelhub'") as err:
        create(p)
    assert all(kind in str(err.value) for kind in SOURCES)


def test_cache_key_is_stable_and_decided_by_content():
    assert cache_key({"a": 1, "b": [2]}) == cache_key({"b": [2], "a": 1})
    assert cache_key({"a": 1}) != cache_key({"a": 2}) and len(cache_key({})) == 16
    assert ChunkImage(__file__).truth is None and not ChunkImage(__file__).cached


def test_synthetic_rivers_are_what_the_export_writes(tmp_path, tiny_inputs):
    from sandmine.steps import export

    p = Params()
    p.bands = ["B2", "B3", "B4", "B8"]
    sites_path, obs_path = tiny_inputs
    export.run(p, sites_path, obs_path, tmp_path / "images", tmp_path / "source")
    written = json.loads((tmp_path / "source" / "rivers.geojson").read_text())
    sites = read_sites(sites_path)
    read_observations(obs_path, sites)
    assert json.loads(json.dumps(create(p).rivers(sites))) == written and len(written["features"]) == len(sites)


def test_local_rivers_come_from_the_rivers_file_or_are_empty(tmp_path, tiny_inputs):
    p = Params()
    p.source.kind = "local"
    sites = read_sites(tiny_inputs[0])
    assert create(p).rivers(sites) == {"type": "FeatureCollection", "features": []}
    line = {
        "type": "Feature",
        "properties": {"name": "Son"},
        "geometry": {"type": "LineString", "coordinates": [[82.5, 24.4], [82.52, 24.405]]},
    }
    (tmp_path / "rivers.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [line]}))
    p.source.rivers_file = str(tmp_path / "rivers.geojson")
    got = create(p).rivers(sites)
    assert [f["properties"]["name"] for f in got["features"]] == ["Son"]
