#!/usr/bin/env bash
# Queue the encoder x decoder grid, run it one experiment at a time, print the table by AP.
# Queued experiments see only committed files: commit first.
set -eu
dvc exp run --queue -S model.encoder=resnet18,mobilenet_v2 -S model.decoder=unet,fpn
dvc queue start -j 1
while status=$(dvc queue status) && echo "$status" | grep -qE "Queued|Running"; do
  sleep 15
done
echo "$status"
dvc exp show --md --only-changed --sort-by metrics/evaluate.json:aoi_ap --sort-order desc
