#!/bin/bash
# pypi-example: NEEDS PyPI. Installs packages with pip from the Python Package
# Index, so it only builds where PyPI is reachable from the engine's build
# containers. Debian's Python marks its system site as externally managed,
# hence the virtual environment on PATH for every job.
python3 -m venv /opt/venv
/opt/venv/bin/pip install --no-cache-dir polars==1.9.0 rich
ln -sf /opt/venv/bin/python3 /usr/local/bin/python3
