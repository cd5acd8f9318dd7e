#!/bin/bash
# data-science: numpy, pandas, scipy, matplotlib, scikit-learn and statsmodels
# from Debian's python3-* packages (no PyPI needed). Plots work headless:
# figures a job shows (plt.show(), or left open at its end) come back as PNG
# in the answer's `display` list; plt.savefig() writes files as usual.
apt-get update
apt-get install -y --no-install-recommends \
    python3-numpy python3-pandas python3-scipy python3-matplotlib \
    python3-sklearn python3-statsmodels
rm -rf /var/lib/apt/lists/*
