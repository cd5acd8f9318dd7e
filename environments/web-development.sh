#!/bin/bash
# web-development: Flask, FastAPI, Jinja2, httpx, requests, BeautifulSoup and
# lxml from Debian's python3-* packages, for code that builds, parses or calls
# web things (jobs have no network unless their environment allows it).
apt-get update
apt-get install -y --no-install-recommends \
    python3-flask python3-fastapi python3-jinja2 python3-httpx python3-requests \
    python3-bs4 python3-lxml python3-yaml
rm -rf /var/lib/apt/lists/*
