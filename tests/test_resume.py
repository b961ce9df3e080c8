"""An interrupted fit resumes from its last finished epoch and ends where an uninterrupted one does."""

import numpy as np
import pytest
import torch

from sandmine import models, training
from sandmine.core.config import TrainParams
from sandmine.models import lora
from sandmine.training import Scene

CH = ["B2", "B3", "B4", "B8"]


def _scenes(n, seed):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        label = np.zeros((64, 64), np.uint8)
        label[20:40, 10:30] = 1
        img = rng.normal(0, 1, (len(CH), 64, 64)).astype(np.float32)
        img[0] += 2 * label
        out.append(Scene(f"s{k}", img, label, np.ones((64, 64), bool)))
    return out


PARAMS = TrainParams(window_px=32, batch_size=4, epochs=4, windows_per_epoch=8, val_windows=4, patience=10, threads=1)


def _fit(state=None, key="k", stop_at=None, encoder="resnet18", adapters=False):
    torch.manual_seed(0)
    model = models.build(encoder, "linear", CH)
    if adapters:  # LoRA: the adapters and their optimiser state go into the saved state
        lora.apply(model, encoder, rank=4, alpha=8, dropout=0.1)
    seen = []

    def on_epoch(epoch, metrics):
        if epoch == stop_at:
            raise KeyboardInterrupt  # killed while epoch `stop_at` was being logged
        seen.append((epoch, metrics["val_ap"], metrics["train_loss"]))

    model, summary = training.fit(model, _scenes(2, 0), _scenes(1, 1), PARAMS, on_epoch, state, key)
    return model.state_dict(), summary, seen


@pytest.mark.parametrize(
    ("encoder", "adapters"),
    [("resnet18", False), ("resnet18", True), ("vit_small", True)],
    ids=["full", "lora-cnn", "lora-vit"],
)
def test_resume_after_a_kill_equals_an_uninterrupted_run(tmp_path, encoder, adapters):
    torch.set_num_threads(1)
    straight, summary, curves = _fit(encoder=encoder, adapters=adapters)
    state = tmp_path / "state" / "train.pt"
    with pytest.raises(KeyboardInterrupt):
        _fit(state, stop_at=3, encoder=encoder, adapters=adapters)
    assert state.exists()  # epochs 1 and 2 were saved
    if adapters:
        saved = torch.load(state, weights_only=True)
        assert any("lora_A" in k for k in saved["model"]) and saved["opt"]["state"]  # adapters and AdamW moments
    resumed, summary2, curves2 = _fit(state, encoder=encoder, adapters=adapters)
    assert curves2 == curves  # epochs 1-2 replayed from the state, 3-4 trained
    assert summary2["best_val_ap"] == summary["best_val_ap"] and summary2["epochs_run"] == 4
    for k in straight:
        assert torch.equal(straight[k], resumed[k]), k
    assert not state.exists()  # finished: nothing left to resume


def test_state_of_other_params_is_not_resumed(tmp_path):
    torch.set_num_threads(1)
    state = tmp_path / "train.pt"
    with pytest.raises(KeyboardInterrupt):
        _fit(state, key="other", stop_at=2)
    _, _, curves = _fit(state, key="k")
    assert [e for e, *_ in curves] == [1, 2, 3, 4]  # trained from the start
    state.write_bytes(b"damaged")
    _, _, curves = _fit(state)
    assert len(curves) == 4
