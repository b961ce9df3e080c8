import numpy as np

from sandmine.acquisition import Window, entropy, select, window_scores


def test_entropy_is_one_bit_at_half_and_zero_at_the_ends():
    assert np.allclose(entropy(np.array([0.0, 0.5, 1.0])), [0.0, 1.0, 0.0], atol=1e-6)


def test_window_scores_picks_the_uncertain_window_and_skips_no_data():
    u = np.zeros((8, 8), np.float32)
    u[4:, 4:] = 0.9
    valid = np.ones((8, 8), bool)
    valid[:4, 4:] = False  # a window of no-data
    scores = window_scores(u, valid, 4, 0.5)
    assert (0, 4) not in [(r, c) for r, c, *_ in scores]
    assert max(scores, key=lambda s: s[4])[:2] == (4, 4)


def _w(x: float, score: float) -> Window:
    ring = ((x, 0.0), (x + 0.001, 0.0), (x + 0.001, 0.001), (x, 0.001), (x, 0.0))
    return Window("obs", "obs.tif", 0, 0, 4, 4, score, 0.1, ring)


def test_select_keeps_chosen_windows_apart():
    near, far = [_w(0.0, 0.9), _w(0.002, 0.8)], [_w(0.1, 0.5)]  # 0.002 deg ~ 220 m, 0.1 deg ~ 11 km
    chosen = select(near + far, 2, 1000.0)
    assert [w.score for w in chosen] == [0.9, 0.5]
