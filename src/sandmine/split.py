"""Geographic split: sites clustered by location; whole clusters go to train, val or test."""

from __future__ import annotations

import logging

import numpy as np
from sklearn.cluster import KMeans

from sandmine.core.config import SplitParams
from sandmine.core.errors import SandmineError
from sandmine.core.sites import Observation, Site

log = logging.getLogger(__name__)


def cluster_sites(sites: dict[str, Site], n_clusters: int, seed: int) -> dict[str, int]:
    """Cluster site centroids on the unit sphere; clusters numbered west to east.

    Raises:
        SandmineError: fewer sites than clusters.
    """
    ids = sorted(sites)
    if len(ids) < n_clusters:
        raise SandmineError(
            f"{len(ids)} sites cannot make {n_clusters} clusters",
            "params.yaml: split.n_clusters",
            "lower 'split.n_clusters' or add sites",
        )
    lon = np.radians([sites[i].geometry.centroid.x for i in ids])
    lat = np.radians([sites[i].geometry.centroid.y for i in ids])
    xyz = np.c_[np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)]
    raw = KMeans(n_clusters=n_clusters, random_state=seed, n_init=10).fit_predict(xyz)
    # stable numbering: by each cluster's mean longitude, so ids do not depend on k-means' order
    order = sorted(range(n_clusters), key=lambda c: float(lon[raw == c].mean()))
    rank = {c: r for r, c in enumerate(order)}
    return {sid: rank[int(c)] for sid, c in zip(ids, raw)}


def roles_for_fold(params: SplitParams) -> dict[int, str]:
    """Role of each cluster: `fold` rotates which clusters are held out for test and val."""
    k = params.n_clusters
    roles = {c: "train" for c in range(k)}
    for i in range(params.test_clusters):
        roles[(params.fold + i) % k] = "test"
    for i in range(params.val_clusters):
        roles[(params.fold + params.test_clusters + i) % k] = "val"
    return roles


def assign(
    sites: dict[str, Site], observations: list[Observation], labelled_ok: set[str], params: SplitParams
) -> list[dict]:
    """Rows of data/split.csv: obs_id, site_id, cluster, role (train|val|test|infer).

    Labelled observations whose labels are not usable are left out (and logged).
    """
    cluster = cluster_sites(sites, params.n_clusters, params.seed)
    roles = roles_for_fold(params)
    rows = []
    for obs in sorted(observations, key=lambda o: o.obs_id):
        c = cluster[obs.site_id]
        if obs.role == "infer":
            role = "infer"
        elif obs.obs_id in labelled_ok:
            role = roles[c]
        else:
            log.warning("%s has no usable labels; left out of the split", obs.obs_id)
            continue
        rows.append({"obs_id": obs.obs_id, "site_id": obs.site_id, "cluster": c, "role": role})
    for needed in ("train", "val", "test"):
        if not any(r["role"] == needed for r in rows):
            raise SandmineError(
                f"no observation has role '{needed}'",
                "data/split.csv",
                "check labels (data/labels/index.csv) or the split params",
            )
    return rows
