"""Sites and observations: the input contract and its errors."""

import json

import pytest

from sandmine.errors import SandmineError
from sandmine.sites import read_observations, read_sites


def test_read_sites_and_observations(tiny_inputs):
    sites_path, obs_path = tiny_inputs
    sites = read_sites(sites_path)
    obs = read_observations(obs_path, sites)
    assert set(sites) == {"betwa_a", "betwa_b", "son_a", "krishna_a"}
    assert {o.role for o in obs} == {"labelled", "infer"}
    assert all(o.obs_id == f"{o.site_id}_{o.date.isoformat()}" for o in obs)


def test_read_sites_missing_file(tmp_path):
    with pytest.raises(SandmineError, match="sites file not found") as err:
        read_sites(tmp_path / "sites.geojson")
    assert "sites.geojson" in str(err.value)


def test_read_sites_out_of_range_coordinates(tmp_path, tiny_inputs):
    doc = json.loads(tiny_inputs[0].read_text())
    doc["features"][1]["geometry"]["coordinates"][0][0] = [250.0, 25.9]
    bad = tmp_path / "bad.geojson"
    bad.write_text(json.dumps(doc))
    with pytest.raises(SandmineError, match="out of range") as err:
        read_sites(bad)
    assert "feature 1" in str(err.value) and "betwa_b" in str(err.value)


def test_read_sites_missing_property(tmp_path, tiny_inputs):
    doc = json.loads(tiny_inputs[0].read_text())
    del doc["features"][0]["properties"]["river"]
    bad = tmp_path / "bad.geojson"
    bad.write_text(json.dumps(doc))
    with pytest.raises(SandmineError, match="'river'"):
        read_sites(bad)


def test_read_observations_unknown_site(tmp_path, tiny_inputs):
    sites = read_sites(tiny_inputs[0])
    f = tmp_path / "obs.csv"
    f.write_text("obs_id,site_id,date,role\nganga_x_2025-01-01,ganga_x,2025-01-01,labelled\n")
    with pytest.raises(SandmineError, match="ganga_x") as err:
        read_observations(f, sites)
    assert "line 2" in str(err.value)


def test_read_observations_refuses_path_escape(tmp_path, tiny_inputs):
    sites = read_sites(tiny_inputs[0])
    f = tmp_path / "obs.csv"
    f.write_text("obs_id,site_id,date,role\n../betwa_a_2025-01-01,betwa_a,2025-01-01,labelled\n")
    with pytest.raises(SandmineError, match="safe identifier"):
        read_observations(f, sites)


def test_read_observations_bad_date_and_role(tmp_path, tiny_inputs):
    sites = read_sites(tiny_inputs[0])
    f = tmp_path / "obs.csv"
    f.write_text("obs_id,site_id,date,role\nbetwa_a_2025-13-01,betwa_a,2025-13-01,labelled\n")
    with pytest.raises(SandmineError, match="YYYY-MM-DD"):
        read_observations(f, sites)
    f.write_text("obs_id,site_id,date,role\nbetwa_a_2025-01-01,betwa_a,2025-01-01,train\n")
    with pytest.raises(SandmineError, match="role"):
        read_observations(f, sites)
