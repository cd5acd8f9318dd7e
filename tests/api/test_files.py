"""Input files in, output files out: text, binary, nested paths; never symlinks or FIFOs;
the manifest of both directions in the catalog."""

import time

from helpers import b64, catalog_files, execute, sha256_hex, short, unb64

# Run both here and in the job: a 1x1 RGB PNG built by hand (signature, IHDR, IDAT, IEND).
PNG_MAKER = r'''
import struct, zlib
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
PNG = (b"\x89PNG\r\n\x1a\n"
       + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
       + chunk(b"IDAT", zlib.compress(b"\x00\xff\x80\x00"))
       + chunk(b"IEND", b""))
'''


def png_bytes():
    scope = {}
    exec(PNG_MAKER, scope)  # noqa: S102 - our own constant
    return scope["PNG"]


def test_input_files_are_read_and_output_files_returned(envhub):
    text_in = "line one\nline two ✓\n"
    csv_in = "a,b\n1,2\n3,4\n"
    code = PNG_MAKER + r'''
import os
text = open("data.txt", encoding="utf-8").read()
rows = open("dir/in.csv").read().splitlines()
print("lines", len(text.splitlines()), "rows", len(rows))
with open("result.txt", "w", encoding="utf-8") as f:
    f.write(text.upper())
with open("chart.png", "wb") as f:
    f.write(PNG)
with open("all_bytes.bin", "wb") as f:
    f.write(bytes(range(256)) * 4)
os.makedirs("out/sub", exist_ok=True)
with open("out/sub/result.txt", "w") as f:
    f.write("sum=%d\n" % sum(int(x) for r in rows[1:] for x in r.split(",")))
'''
    res = execute(envhub, code, timeout=20, files={"data.txt": b64(text_in), "dir/in.csv": b64(csv_in)})
    assert res["success"] is True, short(res)
    assert res["stdout"] == "lines 2 rows 3\n"
    files = res["files"]
    expected = {
        "result.txt": text_in.upper().encode(),
        "chart.png": png_bytes(),
        "all_bytes.bin": bytes(range(256)) * 4,
        "out/sub/result.txt": b"sum=10\n",
    }
    for path, content in expected.items():
        assert path in files, f"{path} not returned; got {sorted(files)}"
        assert unb64(files[path]) == content, f"{path} differs"
    assert unb64(files["chart.png"]).startswith(b"\x89PNG\r\n\x1a\n")
    # the code file itself is not an output
    assert b64(code) not in files.values(), f"the code file came back: {sorted(files)}"
    assert all(not k.startswith("/") and ".." not in k.split("/") for k in files), sorted(files)

    manifest = catalog_files(envhub.db_path, res["id"])
    for path, content in (("data.txt", text_in.encode()), ("dir/in.csv", csv_in.encode())):
        assert manifest.get(("in", path)) == (len(content), sha256_hex(content)), \
            f"input {path}: manifest {manifest}"
    for path, content in expected.items():
        assert manifest.get(("out", path)) == (len(content), sha256_hex(content)), \
            f"output {path}: manifest {manifest}"


def test_input_file_modified_by_the_job_comes_back_modified(envhub):
    code = "open('notes.txt', 'a').write('appended\\n')\n"
    res = execute(envhub, code, timeout=10, files={"notes.txt": b64("original\n")})
    assert res["success"] is True, short(res)
    assert unb64(res["files"]["notes.txt"]) == b"original\nappended\n"


def test_symlink_to_etc_passwd_is_not_returned(envhub):
    code = r'''
import os
os.symlink("/etc/passwd", "passwd_link")
os.symlink("/etc", "etc_dir_link")
os.makedirs("deep", exist_ok=True)
os.symlink("../../../../etc/passwd", "deep/relative_link")
open("ok.txt", "w").write("fine\n")
print(open("passwd_link").read().count("root:x:0:0"))
'''
    res = execute(envhub, code, timeout=10)
    assert res["success"] is True, short(res)
    assert res["stdout"] == "1\n", "the image's /etc/passwd should name root"
    files = res["files"]
    assert unb64(files["ok.txt"]) == b"fine\n"
    for path, value in files.items():
        assert b"root:x:0:0" not in unb64(value), f"{path} carries /etc/passwd"
    for name in ("passwd_link", "deep/relative_link"):
        assert name not in files, f"symlink {name} returned"
    assert not any(k.startswith("etc_dir_link") for k in files), sorted(files)


def test_fifo_in_the_workspace_is_skipped_and_the_call_returns_promptly(envhub):
    code = "import os\nos.mkfifo('pipe')\nopen('ok.txt', 'w').write('fine\\n')\nprint('made')\n"
    t0 = time.monotonic()
    res = execute(envhub, code, timeout=10, http_timeout=30)
    elapsed = time.monotonic() - t0
    assert res["success"] is True, short(res)
    assert elapsed < 8, f"took {elapsed:.1f} s: something waited on the FIFO"
    assert "pipe" not in res["files"]
    assert unb64(res["files"]["ok.txt"]) == b"fine\n"


def test_output_files_past_the_count_limit_are_listed_in_files_skipped(envhub):
    # ENVHUB_MAX_OUTPUT_FILES defaults to 1000: three more come back as skipped, by name
    code = "for i in range(1003):\n    open(f'f{i:04d}.txt', 'w').write(str(i))\n"
    res = execute(envhub, code, timeout=60)
    assert res["exit_code"] == 0, short(res)
    assert len(res["files"]) == 1000, len(res["files"])
    assert all(unb64(data).decode() == str(int(name[1:5])) for name, data in res["files"].items())
    skipped = [s for s in res["files_skipped"] if "output file count limit" in s]
    assert len(skipped) == 3, res["files_skipped"]
    assert all("1000 files" in s and "ENVHUB_MAX_OUTPUT_FILES" in s for s in skipped)
    kept = set(res["files"])
    assert not kept & {s.split(":", 1)[0] for s in skipped}
    rows = catalog_files(envhub.db_path, res["id"])
    assert len([k for k in rows if k[0] == "out"]) == 1000


def test_file_names_that_are_not_utf8_are_listed_escaped(envhub):
    code = (
        "import os\n"
        "open(b'caf\\xe9.txt', 'wb').write(b'latin-1 name')\n"
        "open('line\\nbreak.txt', 'w').write('control character')\n"
        "open('back\\\\slash.txt', 'w').write('kept')\n"
        "open('fine.txt', 'w').write('kept')\n"
    )
    res = execute(envhub, code)
    assert res["exit_code"] == 0, short(res)
    assert sorted(res["files"]) == ["back\\slash.txt", "fine.txt"], res
    assert "caf\\xe9.txt: name is not UTF-8" in res["files_skipped"], res["files_skipped"]
    assert any(s.startswith("line\\x0abreak.txt: unsafe name") for s in res["files_skipped"]), \
        res["files_skipped"]
    rows = catalog_files(envhub.db_path, res["id"])
    assert sorted(k[1] for k in rows if k[0] == "out") == ["back\\slash.txt", "fine.txt"]
