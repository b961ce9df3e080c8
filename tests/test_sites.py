"""Sites and observations: the input contract and its errors."""

import json

import pytest

from sandmine.core.errors import SandmineError
from sandmine.core.sites import read_observations, read_sites


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


def _obs_lines():
    return ["obs_id,site_id,date,role", "betwa_a_2025-11-15,betwa_a,2025-11-15,labelled",
            "son_a_2026-11-08,son_a,2026-11-08,infer"]  # fmt: skip


def test_read_observations_saved_by_excel_with_a_bom(tmp_path, tiny_inputs):
    sites = read_sites(tiny_inputs[0])
    f = tmp_path / "obs.csv"
    f.write_text("\r\n".join(_obs_lines()) + "\r\n", encoding="utf-8-sig")
    obs = read_observations(f, sites)
    assert [o.obs_id for o in obs] == ["betwa_a_2025-11-15", "son_a_2026-11-08"]


def test_read_observations_header_whitespace_and_empty_rows(tmp_path, tiny_inputs):
    sites = read_sites(tiny_inputs[0])
    f = tmp_path / "obs.csv"
    lines = _obs_lines()
    f.write_text("\n".join([" obs_id , site_id,date ,role", *lines[1:], ",,,", ""]))
    assert len(read_observations(f, sites)) == 2


@pytest.mark.parametrize(("sep", "name"), [(";", "';'"), ("\t", "tab")])
def test_read_observations_other_separator_is_named(tmp_path, tiny_inputs, sep, name):
    sites = read_sites(tiny_inputs[0])
    f = tmp_path / "obs.csv"
    f.write_text("\n".join(line.replace(",", sep) for line in _obs_lines()) + "\n", encoding="utf-8-sig")
    with pytest.raises(SandmineError, match=f"{name}-separated") as err:
        read_observations(f, sites)
    assert "obs.csv" in str(err.value) and "comma-separated" in str(err.value)


def test_read_observations_short_row_and_not_utf8(tmp_path, tiny_inputs):
    sites = read_sites(tiny_inputs[0])
    f = tmp_path / "obs.csv"
    f.write_text("obs_id,site_id,date,role\nbetwa_a_2025-11-15,betwa_a,2025-11-15\n")
    with pytest.raises(SandmineError, match="3 of 4 columns") as err:
        read_observations(f, sites)
    assert "line 2" in str(err.value)
    f.write_bytes(
        "obs_id,site_id,date,role\nbetwa_a_2025-11-15,betwa_a,2025-11-15,labelled # Göttingen\n".encode("cp1252")
    )
    with pytest.raises(SandmineError, match="not UTF-8") as err:
        read_observations(f, sites)
    assert "UTF-8" in str(err.value)
