"""Pictures without saving files (issue 14, item 5): matplotlib figures a job shows, or
leaves open at its end, come back as PNG in the answer's `display` list, apart from its
output files, bounded like them, and recorded in the catalog's manifest as 'display'."""

import base64
import hashlib
import struct

import requests

from helpers import RESPONSE_FIELDS, catalog_files, execute, short

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data):
    """(width, height) from a PNG's IHDR chunk."""
    assert data[:8] == PNG_SIGNATURE, data[:16]
    assert data[12:16] == b"IHDR", data[:32]
    return struct.unpack(">II", data[16:24])


def pictures(res):
    """[(name, bytes)] of the answer's display list, each entry's shape checked."""
    out = []
    for entry in res["display"]:
        assert set(entry) == {"name", "mime", "data", "size"}, entry.keys()
        assert entry["mime"] == "image/png"
        data = base64.b64decode(entry["data"], validate=True)
        assert entry["size"] == len(data)
        out.append((entry["name"], data))
    return out


def test_two_figures_shown_come_back_as_png(envhub, plot_env):
    code = """
import matplotlib.pyplot as plt
plt.plot([1, 2, 3], [1, 4, 9])
plt.title("squares")
plt.show()
fig = plt.figure(figsize=(4, 3), dpi=50)
plt.bar(["a", "b"], [3, 5])
plt.show()
print("shown", len(plt.get_fignums()))
"""
    res = execute(envhub, code, environment=plot_env)
    assert res["success"], short(res)
    assert res["stdout"] == "shown 0\n"  # show() closed what it showed
    got = pictures(res)
    assert [name for name, _ in got] == ["figure-1.png", "figure-2.png"], short(res)
    assert png_size(got[0][1]) == (640, 480)  # matplotlib's 6.4 x 4.8 in at 100 dpi
    assert png_size(got[1][1]) == (200, 150)  # 4 x 3 in at the figure's own 50 dpi
    # pictures are not output files, and leave no trace among them
    assert res["files"] == {} and res["files_skipped"] == [], short(res)
    # recorded like output files, with their own direction
    manifest = catalog_files(envhub.db_path, res["id"])
    assert manifest == {("display", name): (len(data), hashlib.sha256(data).hexdigest())
                        for name, data in got}
    detail = requests.get(f"{envhub.url}/executions/{res['id']}", timeout=30).json()
    assert sorted((f["direction"], f["path"]) for f in detail["files"]) == [
        ("display", "figure-1.png"), ("display", "figure-2.png")]


def test_figures_left_open_at_the_end_come_back_beside_output_files(envhub, plot_env):
    code = """
import matplotlib
import matplotlib.pyplot as plt
print(matplotlib.get_backend())
plt.plot([3, 1, 2])
plt.figure()
plt.scatter([1, 2], [2, 1])
open("out.txt", "w").write("data")
plt.savefig("saved.png")  # a file the job saves stays a file
raise SystemExit(4)
"""
    res = execute(envhub, code, environment=plot_env)
    assert res["exit_code"] == 4 and not res["success"], short(res)
    assert res["stdout"] == "module://envhub_display\n"
    assert [name for name, _ in pictures(res)] == ["figure-1.png", "figure-2.png"]
    assert sorted(res["files"]) == ["out.txt", "saved.png"]
    assert base64.b64decode(res["files"]["saved.png"])[:8] == PNG_SIGNATURE
    manifest = catalog_files(envhub.db_path, res["id"])
    assert sorted(manifest) == [("display", "figure-1.png"), ("display", "figure-2.png"),
                                ("out", "out.txt"), ("out", "saved.png")]


def test_no_matplotlib_no_display(envhub):
    """The default image has no matplotlib: nothing changes, display is an empty list."""
    res = execute(envhub, "import importlib.util\nprint(importlib.util.find_spec('matplotlib'))\n")
    assert res["success"] and res["stdout"] == "None\n", short(res)
    assert res["display"] == [] and res["files"] == {} and res["files_skipped"] == []
    assert catalog_files(envhub.db_path, res["id"]) == {}
    # every field of the SimplePySandbox answer is still there, with its type
    assert RESPONSE_FIELDS <= set(res)
    assert isinstance(res["execution_time"], float) and res["error"] is None


def test_a_job_cannot_flood_or_escape_the_display_folder(envhub):
    """The folder is the job's to write: what it puts there is checked like any output."""
    code = r"""
import os
d = os.environ["ENVHUB_DISPLAY_DIR"]
os.makedirs(d + "/sub")
png = b"\x89PNG\r\n\x1a\n" + b"\0" * 24
for i in range(1, 1501):
    open(f"{d}/figure-{i}.png", "wb").write(png)
open(d + "/notes.txt", "wb").write(png)
open(d + "/fake.png", "wb").write(b"GIF89a")
open(d + "/sub/inner.png", "wb").write(png)
os.symlink("/etc/passwd", d + "/link.png")
os.symlink("/etc", d + "/etc")
open("kept.txt", "w").write("mine")
"""
    res = execute(envhub, code)
    assert res["success"], short(res)
    # ENVHUB_MAX_DISPLAY (20) of them, in the order of their numbers (which 20 of the 1500
    # is the workspace's order: the backend itself never writes more than the limit)
    names = [name for name, _ in pictures(res)]
    assert len(names) == 20 and all(n.startswith("figure-") for n in names), names
    numbers = [int(n[len("figure-"):-len(".png")]) for n in names]
    assert numbers == sorted(numbers)
    assert res["files"].keys() == {"kept.txt"}, short(res)
    skipped = res["files_skipped"]
    assert sum(s.endswith(": past the display limit (20 pictures, ENVHUB_MAX_DISPLAY)")
               for s in skipped) >= 900, skipped[:5]
    assert skipped[-1].startswith("*: ") and skipped[-1].endswith("more files left out, not listed")
    assert len(skipped) == 1001  # listed up to 1000, then counted
    # the junk beside the pictures is named when listed (symlinks are never read)
    res = execute(envhub, code.replace("range(1, 1501)", "range(1, 3)"))
    skipped = res["files_skipped"]
    assert "display notes.txt: not a .png file" in skipped, skipped
    assert "display fake.png: not a PNG image" in skipped, skipped
    assert "display sub/inner.png: not directly in the display folder" in skipped, skipped
    assert not any("link.png" in s or "passwd" in s or "etc" in s for s in skipped), skipped
    assert [name for name, _ in pictures(res)] == ["figure-1.png", "figure-2.png"]
    assert "root:" not in str(res["display"])


def test_a_symlinked_display_folder_is_not_followed(envhub):
    code = """
import os
os.makedirs(".envhub", exist_ok=True)
os.symlink("/usr/share", os.environ["ENVHUB_DISPLAY_DIR"])
open("a.txt", "w").write("a")
"""
    res = execute(envhub, code)
    assert res["success"], short(res)
    assert res["display"] == [] and res["files"].keys() == {"a.txt"}, short(res)


def test_a_picture_over_the_file_size_limit_is_skipped(envhub_factory):
    server = envhub_factory(env={"MAX_FILE_SIZE": "20000"})
    code = r"""
import os
d = os.environ["ENVHUB_DISPLAY_DIR"]
os.makedirs(d)
png = b"\x89PNG\r\n\x1a\n"
open(d + "/figure-1.png", "wb").write(png + b"\0" * 1000)
open(d + "/figure-2.png", "wb").write(png + b"\0" * 30000)
"""
    res = execute(server, code)
    assert res["success"], short(res)
    assert [name for name, _ in pictures(res)] == ["figure-1.png"], short(res)
    assert res["files_skipped"] == [
        "display figure-2.png: larger than the file size limit (20000 bytes)"], short(res)
    assert res["files"] == {}


def test_input_files_may_not_use_envhubs_folder(envhub):
    for name in (".envhub", ".envhub/display/figure-1.png", ".envhub/envhub_display.py"):
        r = requests.post(f"{envhub.url}/execute", json={
            "code": "print(1)", "files": {name: "eA=="}}, timeout=60)
        assert r.status_code == 400, (name, r.text)
        assert "reserved" in r.json()["detail"] and ".envhub" in r.json()["detail"]
    # a name that only starts alike is an ordinary file
    res = execute(envhub, "print(open('.envhub2').read())", files={".envhub2": "eA=="})
    assert res["stdout"] == "x\n", short(res)


def test_a_sessions_calls_each_show_their_own(envhub, plot_env):
    r = requests.post(f"{envhub.url}/sessions", json={"environment": plot_env}, timeout=120)
    assert r.status_code in (200, 201), r.text
    sid = r.json()["id"]
    try:
        def call(code):
            r = requests.post(f"{envhub.url}/sessions/{sid}/execute", json={"code": code}, timeout=120)
            assert r.status_code == 200, r.text
            return r.json()

        first = call("import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()\n")
        assert [name for name, _ in pictures(first)] == ["figure-1.png"], short(first)
        second = call("print('no plot')\n")
        assert second["display"] == [] and second["files"] == {}, short(second)
        third = call("import matplotlib.pyplot as plt\nplt.plot([2, 1])\nplt.figure()\n"
                     "plt.plot([0, 0])\n")  # left open at the end
        assert [name for name, _ in pictures(third)] == ["figure-1.png", "figure-2.png"]
    finally:
        requests.delete(f"{envhub.url}/sessions/{sid}", timeout=60)
