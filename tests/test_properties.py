"""Property-based tests (hypothesis): window arithmetic, stitching and the label parser hold for
sizes, layouts and export rows nobody wrote down by hand."""

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely.geometry import Polygon
from torch import nn

from sandmine.core.windows import keep_region, starts
from sandmine.prediction import Stitch, predict, predict_rows
from sandmine.sources.labelbox import parse_row


@st.composite
def layouts(draw):
    window = draw(st.integers(4, 64))
    discard = draw(st.integers(0, (window - 1) // 2))
    stride = draw(st.integers(1, window - 2 * discard))
    return window, stride, discard


@given(length=st.integers(1, 500), layout=layouts())
def test_window_starts_cover_the_axis(length, layout):
    window, stride, _ = layout
    s = starts(length, window, stride)
    assert s[0] == 0 and s == sorted(set(s))
    assert all(0 <= x <= max(length - window, 0) for x in s)
    covered = np.zeros(length, bool)
    for x in s:
        covered[x : x + window] = True
    assert covered.all()
    assert all(b - a <= stride for a, b in zip(s, s[1:]))


@given(h=st.integers(1, 200), w=st.integers(1, 200), layout=layouts())
def test_kept_regions_cover_every_pixel(h, w, layout):
    window, stride, discard = layout
    if h < window or w < window:
        return  # smaller rasters are padded to one window
    count = np.zeros((h, w), int)
    for r in starts(h, window, stride):
        for c in starts(w, window, stride):
            rs, cs = keep_region(r, c, window, h, w, discard)
            count[r + rs.start : r + rs.stop, c + cs.start : c + cs.stop] += 1
    assert count.min() >= 1


class Pointwise(nn.Module):
    """A model whose output at a pixel depends on that pixel only: stitching must not show."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :1] * 2 - x[:, 1:2]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    h=st.integers(1, 90),
    w=st.integers(1, 90),
    layout=layouts(),
    blend=st.sampled_from(["mean", "gaussian"]),
    seed=st.integers(0, 2**16),
)
def test_stitching_a_pointwise_model_is_exact(h, w, layout, blend, seed):
    window, stride, discard = layout
    image = np.random.default_rng(seed).standard_normal((2, h, w)).astype(np.float32)
    got = predict(Pointwise(), image, Stitch(window, stride, discard, 3, blend))
    want = torch.sigmoid(Pointwise()(torch.from_numpy(image)[None]))[0, 0].numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)  # float32 sums of up to ~80 windows


@settings(max_examples=30, deadline=None)
@given(h=st.integers(64, 160), layout=layouts(), cut=st.floats(0, 1), seed=st.integers(0, 2**16))
def test_any_row_range_equals_the_same_rows_of_a_whole_pass(h, layout, cut, seed):
    window, stride, discard = layout
    image = np.random.default_rng(seed).standard_normal((2, h, 70)).astype(np.float32)
    torch.manual_seed(0)
    model = nn.Conv2d(2, 1, 3, padding=1).eval()
    s = Stitch(window, stride, discard, 4, "gaussian")
    if h < window or 70 < window:
        return
    whole = np.concatenate([b for _, b in predict_rows(model, lambda a, b, c0, c1: image[:, a:b, c0:c1], h, 70, s)])
    a = int(cut * (h - 1))
    part = np.concatenate(
        [b for _, b in predict_rows(model, lambda a, b, c0, c1: image[:, a:b, c0:c1], h, 70, s, a, h)]
    )
    assert np.array_equal(part, whole[a:])


points = st.lists(st.tuples(st.floats(-50, 600), st.floats(-50, 600)), min_size=0, max_size=8)
objects = st.lists(
    st.one_of(
        st.builds(lambda pts: {"name": "mine", "value": "mine", "polygon": [{"x": x, "y": y} for x, y in pts]}, points),
        st.just({"name": "mine", "value": "mine"}),  # no geometry at all
    ),
    max_size=5,
)


@given(
    status=st.sampled_from(["DONE", "IN_REVIEW", "TO_LABEL", "", None]),
    n_labels=st.integers(0, 2),
    objs=objects,
    activity=st.sampled_from([None, "yes", "no"]),
)
def test_label_parser_never_crashes_and_reports_what_it_drops(status, n_labels, objs, activity):
    classifications = [] if activity is None else [{"name": "mine activity", "radio_answer": {"value": activity}}]
    labels = [{"annotations": {"objects": objs, "classifications": classifications}} for _ in range(n_labels)]
    details = {} if status is None else {"workflow_status": status}
    row = {
        "data_row": {"global_key": "son_a_2026-01-01"},
        "projects": {"p": {"project_details": details, "labels": labels}},
    }
    out = parse_row(row)
    if status != "DONE" or n_labels == 0:
        assert out.status == "not_done" and not out.annotations and out.problems
        return
    assert out.status == "done" and out.activity == activity
    assert len(out.annotations) + len([p for p in out.problems if "skipped" in p]) == len(objs)
    for ann in out.annotations:
        assert ann.in_pixels and ann.geometry.is_valid and not ann.geometry.is_empty
        assert isinstance(ann.geometry, Polygon) or ann.geometry.geom_type in ("MultiPolygon", "GeometryCollection")
