#!/usr/bin/env bash
# make lab-report: the labs with the original's setup measured beside ours
# (HAPM_LAB_BASELINE=1) and the faster-VRRP soak (HAPM_LAB_SOAK=10m); if the
# run passes, its table goes to LAB.md and its timelines to docs/lab/.
set -euo pipefail
cd "$(dirname "$0")/.."
HAPM_LAB_BASELINE=1 HAPM_LAB_SOAK=${HAPM_LAB_SOAK:-10m} hack/e2e.sh
cp _output/LAB.md LAB.md
rm -rf docs/lab
mkdir -p docs/lab
cp _output/docs/lab/*.png docs/lab/
echo "lab-report: LAB.md and $(ls docs/lab | wc -l) timelines in docs/lab"
