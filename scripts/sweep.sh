#!/usr/bin/env bash
# The standard grid: queue one experiment per row, run them one at a time, print the leaderboard.
# Queued experiments see only committed files: commit first. Extra rows: add a `q` line.
# Rows run up to evaluate and infer: the river survey (stage survey) is for the model you choose, by dvc repro.
# Usage: make sweep            (all rows)
#        SWEEP_ONLY="rf sp" make sweep   (just those names)
set -eu
q() {  # q NAME -S key=value ...
  local name=$1; shift
  if [ -n "${SWEEP_ONLY:-}" ] && ! [[ " $SWEEP_ONLY " == *" $name "* ]]; then return; fi
  dvc exp run --queue -n "$name" "$@" evaluate infer
}
IDX='model.indices=[NDWI,NDVI,MNDWI]'
q unet-unet         -S model.encoder=unet -S model.decoder=unet
q r18-unet          -S model.encoder=resnet18 -S model.decoder=unet
q r18-fpn           -S model.encoder=resnet18 -S model.decoder=fpn
q r18-probe         -S model.encoder=resnet18 -S model.decoder=linear -S model.finetune=frozen -S train.lr=0.01
q r18-moco-probe    -S model.encoder=resnet18 -S model.decoder=linear -S model.finetune=frozen -S train.lr=0.01 \
                    -S ssl.method=moco -S model.weights=ssl
q rf                -S model.encoder=random_forest -S model.decoder=none -S "$IDX"
q sp-gbm            -S model.encoder=superpixel_gbm -S model.decoder=none -S "$IDX"
# the slow rows last
q r50-unet          -S model.encoder=resnet50 -S model.decoder=unet
q vits-probe        -S model.encoder=vit_small -S model.decoder=progressive -S model.finetune=frozen
dvc queue start -j 1
while status=$(dvc queue status) && echo "$status" | grep -qE "Queued|Running"; do
  sleep 20
done
echo "$status"
python scripts/leaderboard.py
