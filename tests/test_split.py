"""The geographic split: whole sites and clusters per role; the fold rotates held-out clusters."""

import pytest

from sandmine.core.config import SplitParams
from sandmine.core.errors import SandmineError
from sandmine.core.sites import read_observations, read_sites
from sandmine.split import assign, cluster_sites, roles_for_fold


def test_nearby_sites_share_a_cluster(tiny_inputs):
    sites = read_sites(tiny_inputs[0])
    c = cluster_sites(sites, 3, 0)
    assert c["betwa_a"] == c["betwa_b"] != c["son_a"] != c["krishna_a"]


def test_roles_whole_clusters_and_dates_together(tiny_inputs):
    sites = read_sites(tiny_inputs[0])
    obs = read_observations(tiny_inputs[1], sites)
    ok = {o.obs_id for o in obs if o.role == "labelled"}
    rows = assign(sites, obs, ok, SplitParams(n_clusters=3, fold=0))
    by_cluster = {}
    for r in rows:
        if r["role"] != "infer":
            by_cluster.setdefault(r["cluster"], set()).add(r["role"])
    assert all(len(roles) == 1 for roles in by_cluster.values())
    by_site = {}
    for r in rows:
        by_site.setdefault(r["site_id"], set()).add(r["cluster"])
    assert all(len(c) == 1 for c in by_site.values())
    assert sum(r["role"] == "infer" for r in rows) == 1


def test_fold_rotates_test_cluster():
    tests = [
        next(c for c, r in roles_for_fold(SplitParams(n_clusters=4, fold=f)).items() if r == "test") for f in range(4)
    ]
    assert sorted(tests) == [0, 1, 2, 3]


def test_too_few_sites_for_clusters(tiny_inputs):
    with pytest.raises(SandmineError, match="n_clusters"):
        cluster_sites(read_sites(tiny_inputs[0]), 9, 0)
