#!/bin/bash
# basic-python: Python 3 with requests, pyyaml and python-dateutil, from
# Debian's python3-* packages. Builds with nothing but a Debian mirror.
apt-get update
apt-get install -y --no-install-recommends python3-requests python3-yaml python3-dateutil
rm -rf /var/lib/apt/lists/*
