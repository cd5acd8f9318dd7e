"""Request validation of POST /execute: the status, a {"detail"} naming the field, and
nothing run (no execution row written)."""

import pytest
import requests

from helpers import MAX_CODE_BYTES, MAX_FILE_BYTES, b64, count_rows

OK = "print(1)"
HI = b64("hi")

# (case id, body (dict sent as JSON, or raw bytes), expected status, words one of which the detail names)
CASES = [
    ("invalid_json", b'{"code": "print(1)"', 422, None),
    ("invalid_json_trailing_garbage", b'{"code": "print(1)"} x', 422, None),
    ("body_not_an_object", b'["print(1)"]', 422, None),
    ("missing_code", {"timeout": 5}, 422, ("code",)),
    ("code_null", {"code": None}, 422, ("code",)),
    ("code_not_a_string", {"code": 123}, 422, ("code",)),
    ("code_a_list", {"code": ["print(1)"]}, 422, ("code",)),
    ("timeout_a_word", {"code": OK, "timeout": "ten"}, 422, ("timeout",)),
    ("timeout_a_fraction", {"code": OK, "timeout": 2.5}, 422, ("timeout",)),
    ("timeout_a_list", {"code": OK, "timeout": [5]}, 422, ("timeout",)),
    ("timeout_zero", {"code": OK, "timeout": 0}, 422, ("timeout",)),
    ("timeout_negative", {"code": OK, "timeout": -1}, 422, ("timeout",)),
    ("timeout_301", {"code": OK, "timeout": 301}, 422, ("timeout",)),
    ("timeout_huge", {"code": OK, "timeout": 10 ** 12}, 422, ("timeout",)),
    ("files_a_string", {"code": OK, "files": "a.txt"}, 422, ("files",)),
    ("files_a_list", {"code": OK, "files": ["a.txt"]}, 422, ("files",)),
    ("file_value_not_a_string", {"code": OK, "files": {"a.txt": 5}}, 422, ("files", "a.txt")),
    ("file_value_null", {"code": OK, "files": {"a.txt": None}}, 422, ("files", "a.txt")),
    ("code_empty", {"code": ""}, 400, ("code",)),
    ("code_whitespace_only", {"code": "  \n\t \r\n "}, 400, ("code",)),
    ("code_over_50000_bytes", {"code": "#" * (MAX_CODE_BYTES + 1)}, 400, ("code",)),
    ("code_over_50000_bytes_multibyte", {"code": "#" + "中" * (MAX_CODE_BYTES // 3 + 1)}, 400, ("code",)),
    ("file_not_base64", {"code": OK, "files": {"a.txt": "!!!notbase64"}}, 400, ("files", "a.txt")),
    ("file_bad_base64_padding", {"code": OK, "files": {"a.txt": "abc"}}, 400, ("files", "a.txt")),
    ("file_absolute_name", {"code": OK, "files": {"/etc/x": HI}}, 400, ("files", "/etc/x")),
    ("file_dotdot_name", {"code": OK, "files": {"../x": HI}}, 400, ("files", "../x")),
    ("file_dotdot_inside_name", {"code": OK, "files": {"a/../b": HI}}, 400, ("files", "a/../b")),
    ("file_dotdot_nested", {"code": OK, "files": {"a/b/../../../x": HI}}, 400, ("files",)),
    ("file_empty_name", {"code": OK, "files": {"": HI}}, 400, ("files",)),
    ("file_name_with_nul", {"code": OK, "files": {"a\u0000b": HI}}, 400, ("files",)),
    ("file_name_with_newline", {"code": OK, "files": {"a\nb": HI}}, 400, ("files",)),
    ("file_name_with_control_char", {"code": OK, "files": {"a\u0001b": HI}}, 400, ("files",)),
    ("file_name_with_escape", {"code": OK, "files": {"a\u001b[31mb": HI}}, 400, ("files",)),
    ("file_name_over_255_bytes", {"code": OK, "files": {"x" * 256: HI}}, 400, ("files",)),
]


def _post(server, body):
    if isinstance(body, bytes):
        return requests.post(f"{server.url}/execute", data=body,
                             headers={"Content-Type": "application/json"}, timeout=60)
    return requests.post(f"{server.url}/execute", json=body, timeout=60)


def assert_detail(r, status, words):
    assert r.status_code == status, f"expected {status}, got {r.status_code}: {r.text[:500]}"
    try:
        body = r.json()
    except ValueError:
        pytest.fail(f"the {r.status_code} body is not JSON: {r.text[:500]!r}")
    assert isinstance(body, dict) and isinstance(body.get("detail"), str) and body["detail"].strip(), \
        f"no {{\"detail\": \"...\"}} in {body!r}"
    if words:
        assert any(w in body["detail"] for w in words), f"detail does not name {words}: {body['detail']!r}"
    return body["detail"]


@pytest.mark.parametrize("body,status,words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_invalid_request_is_refused_with_a_detail_and_nothing_runs(envhub, body, status, words):
    before = count_rows(envhub.db_path)
    r = _post(envhub, body)
    assert_detail(r, status, words)
    assert count_rows(envhub.db_path) == before, "a refused request wrote an execution row"


def test_file_over_10_mib_decoded_is_refused(envhub):
    before = count_rows(envhub.db_path)
    r = _post(envhub, {"code": OK, "files": {"big.bin": b64(b"\0" * (MAX_FILE_BYTES + 1))}})
    detail = assert_detail(r, 400, ("files", "big.bin"))
    assert "10" in detail, f"detail does not state the limit: {detail!r}"
    assert count_rows(envhub.db_path) == before


def test_code_limit_is_stated_in_the_detail(envhub):
    r = _post(envhub, {"code": "#" * (MAX_CODE_BYTES + 1)})
    detail = assert_detail(r, 400, ("code",))
    assert "50000" in detail or "50 KB" in detail or "50KB" in detail, detail


def test_timeout_limit_is_stated_in_the_detail(envhub):
    r = _post(envhub, {"code": OK, "timeout": 301})
    detail = assert_detail(r, 422, ("timeout",))
    assert "300" in detail, detail


def test_unknown_environment_is_404_with_the_seed_message(envhub):
    r = _post(envhub, {"code": OK, "environment": "no-such-env"})
    assert r.status_code == 404, r.text
    assert r.json()["detail"] == "环境 'no-such-env' 不存在"
