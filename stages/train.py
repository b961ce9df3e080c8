"""Stage train: fit the encoder-decoder (or a classical baseline) on AOI windows; DVCLive logs the curves."""

from pathlib import Path

from sandmine.cli import run
from sandmine.steps import train


def args(p):
    for name in ("images", "labels", "aoi", "split", "model", "metrics", "timing", "live"):
        p.add_argument(f"--{name}", type=Path, required=True)
    p.add_argument("--ssl", type=Path, help="the pretrain stage's encoder (used when model.weights is 'ssl')")
    p.add_argument("--state", type=Path, default=Path(".train_state/train.pt"), help="resumable state (not tracked)")


def body(prm, a):
    from dvclive import Live  # here, not on top: it loads numpy, which must come after sandmine's CPU pin

    # DVCLive must not rewrite dvc.yaml (metrics and plots are declared there by hand) nor make experiments
    # of its own (dvc exp run makes them); it wipes its folder unless resume=True (docs/experiments.md)
    with Live(str(a.live), dvcyaml=None, save_dvc_exp=False, report=None) as live:

        def on_epoch(epoch, metrics):
            for key, value in metrics.items():
                live.log_metric(key, round(value, 5))
            live.next_step()

        train.run(prm, a.images, a.labels, a.aoi, a.split, a.model, a.metrics, a.timing, on_epoch, a.ssl, a.state)


if __name__ == "__main__":
    run(__doc__, args, body)
