#!/bin/bash
# machine-learning: PyTorch (CPU), scikit-learn, numpy, scipy, pandas, joblib
# and matplotlib from Debian's python3-* packages. The image is large (about
# 2 GB); give jobs memory to match (MEMORY_LIMIT).
apt-get update
apt-get install -y --no-install-recommends \
    python3-torch python3-sklearn python3-numpy python3-scipy python3-pandas \
    python3-joblib python3-matplotlib
rm -rf /var/lib/apt/lists/*
