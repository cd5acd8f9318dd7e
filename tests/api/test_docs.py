"""The documentation against the binary: docs/configuration.md holds the settings table
that `envhub config` prints (without its `current` column), row for row."""

import os
import re
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG_DOC = os.path.join(HERE, "..", "..", "docs", "configuration.md")


def table_rows(text):
    """The rows of the first Markdown table in `text` whose header starts with `| flag |`,
    each a list of its cells (stripped), without the header and separator."""
    rows, inside = [], False
    for line in text.splitlines():
        if line.startswith("| flag |"):
            inside = True
            continue
        if inside:
            if not line.startswith("|"):
                break
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if set("".join(cells)) <= set("- "):
                continue
            rows.append(cells)
    return rows


def test_configuration_page_matches_envhub_config(envhub_bin):
    p = subprocess.run([envhub_bin, "config"], env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("| flag | variable | default | current | meaning |"), p.stdout[:200]
    printed = [row[:3] + row[4:] for row in table_rows(p.stdout)]
    with open(CONFIG_DOC, encoding="utf-8") as f:
        documented = table_rows(f.read())
    assert len(printed) > 40, p.stdout
    assert documented == printed, (
        "docs/configuration.md differs from `envhub config`; regenerate its table with\n"
        "  env -i build/envhub config | awk 'BEGIN{FS=OFS=\"|\"} {$5=\"\"; sub(/\\|\\|/,\"|\"); print}'\n"
        + "\n".join(f"  doc:    {d}\n  binary: {b}" for d, b in zip(documented, printed) if d != b))
    for row in documented:
        assert re.fullmatch(r"`--[a-z0-9-]+`", row[0]) and re.fullmatch(r"`[A-Z_]+`", row[1]), row
