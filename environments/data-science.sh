#!/bin/bash
# data-science: numpy, pandas, scipy, matplotlib, scikit-learn and statsmodels
# from Debian's python3-* packages (no PyPI needed). Plots work headless:
# jobs run with MPLBACKEND=Agg.
apt-get update
apt-get install -y --no-install-recommends \
    python3-numpy python3-pandas python3-scipy python3-matplotlib \
    python3-sklearn python3-statsmodels
rm -rf /var/lib/apt/lists/*
