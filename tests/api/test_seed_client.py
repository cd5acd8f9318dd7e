"""The seed project's Python client, unchanged, against envhub (issue 3): execute,
create/list/get/delete environment and health.

The class below is copied verbatim from SimplePySandbox's README ("客户端SDK示例",
../../../shared/reference/simplepysandbox-readme.md), imports included; only its usage
example (which calls localhost:8000 at import) is left out. Do not edit the class: that
this exact code works is what the test shows."""

# ---- verbatim from the seed README ----
import requests
import base64
import json

class SimplePySandboxClient:
    def __init__(self, base_url="http://localhost:8000"):
        self.base_url = base_url.rstrip('/')
        self.session = requests.Session()
    
    def execute_code(self, code, timeout=30, files=None, environment=None):
        """执行代码"""
        payload = {
            "code": code,
            "timeout": timeout
        }
        
        if files:
            payload["files"] = files
        if environment:
            payload["environment"] = environment
            
        response = self.session.post(
            f"{self.base_url}/execute",
            json=payload
        )
        return response.json()
    
    def create_environment(self, name, description, setup_script, 
                          base_image="python:3.11-slim", python_version="3.11"):
        """创建环境"""
        payload = {
            "name": name,
            "description": description,
            "base_image": base_image,
            "setup_script": setup_script,
            "python_version": python_version
        }
        
        response = self.session.post(
            f"{self.base_url}/environments",
            json=payload
        )
        return response.json()
    
    def list_environments(self):
        """列出环境"""
        response = self.session.get(f"{self.base_url}/environments")
        return response.json()
    
    def get_environment(self, name):
        """获取环境详情"""
        response = self.session.get(f"{self.base_url}/environments/{name}")
        return response.json()
    
    def delete_environment(self, name):
        """删除环境"""
        response = self.session.delete(f"{self.base_url}/environments/{name}")
        return response.json()
    
    def health_check(self):
        """健康检查"""
        response = self.session.get(f"{self.base_url}/health")
        return response.json()
# ---- end of the verbatim copy ----

import re  # noqa: E402
import socket  # noqa: E402
import time  # noqa: E402

from helpers import catalog_row, image_exists, parse_iso  # noqa: E402


def test_seed_client_works_unchanged(envhub, run_id):
    client = SimplePySandboxClient(envhub.url + "/")

    health = client.health_check()
    assert health["status"] == "healthy", health
    parse_iso(health["timestamp"])

    result = client.execute_code("print('Hello, World!')")
    assert result["success"] is True, result
    assert result["stdout"] == "Hello, World!\n" and result["stderr"] == "" and result["error"] is None
    assert result["files"] == {} and isinstance(result["execution_time"], float)

    data = base64.b64encode(b"1,2,3").decode()
    result = client.execute_code("print(sum(map(int, open('in.csv').read().split(','))))\n"
                                 "open('out.txt', 'w').write('done')\n",
                                 timeout=20, files={"in.csv": data})
    assert result["success"] is True and result["stdout"] == "6\n", result
    assert base64.b64decode(result["files"]["out.txt"]) == b"done"
    assert base64.b64decode(result["files"]["in.csv"]) == b"1,2,3"

    result = client.execute_code("import sys; sys.exit(2)")
    assert result["success"] is False and result["error"] == "代码执行失败，退出码: 2", result

    # python:3.11-slim (the client's default base image) cannot be pulled here (no
    # registry): the seed's own example image is replaced by the local base image.
    name = f"seed-{run_id}"
    script = f"#!/bin/bash\necho seed-client-{run_id} > /opt/seed.txt\n"
    created = client.create_environment(name=name, description="测试环境", setup_script=script,
                                        base_image="envhub/python:bookworm")
    assert created["name"] == name and created["status"] == "building", created
    assert created["description"] == "测试环境" and created["setup_script"] == script
    assert created["base_image"] == "envhub/python:bookworm" and created["python_version"] == "3.11"
    assert created["last_used"] is None
    parse_iso(created["created_at"])

    listed = client.list_environments()
    assert listed["total"] == len(listed["environments"]), listed
    assert name in [e["name"] for e in listed["environments"]]

    # Polled every second, not every 0.5 s: the client keeps its connection alive
    # (requests.Session) and envhub closes an idle connection after 0.5 s, so a request
    # sent at that moment meets a closing connection (RemoteDisconnected);
    # test_seed_client_session_survives_pauses_between_calls shows that on its own.
    deadline = time.monotonic() + 240
    env = client.get_environment(name)
    while env.get("status") == "building" and time.monotonic() < deadline:
        time.sleep(1.0)
        env = client.get_environment(name)
    assert env["status"] == "ready", env
    assert env["docker_image"] and image_exists(env["docker_image"])

    result = client.execute_code("print(open('/opt/seed.txt').read().strip())", environment=name)
    assert result["success"] is True and result["stdout"] == f"seed-client-{run_id}\n", result
    row = catalog_row(envhub.db_path, result["id"])
    assert (row["environment"], row["environment_version"], row["image_id"]) == (name, 1, env["image_id"])
    assert client.get_environment(name)["last_used"] is not None

    dup = client.create_environment(name=name, description="", setup_script=script,
                                    base_image="envhub/python:bookworm")
    assert dup == {"detail": f"环境 '{name}' 已存在"}, dup

    gone = client.delete_environment(name)
    assert gone == {"message": f"环境 '{name}' 已删除"}, gone
    assert client.get_environment(name) == {"detail": f"环境 '{name}' 不存在"}
    assert client.delete_environment(name) == {"detail": f"环境 '{name}' 不存在"}
    assert name not in [e["name"] for e in client.list_environments()["environments"]]
    assert not image_exists(env["docker_image"])
    assert client.execute_code("print(1)", environment=name) == {"detail": f"环境 '{name}' 不存在"}


def test_seed_client_dangerous_script_answers_a_detail(envhub, run_id):
    client = SimplePySandboxClient(envhub.url)
    answer = client.create_environment(name=f"seed-danger-{run_id}", description="",
                                       setup_script="rm -rf /", base_image="envhub/python:bookworm")
    assert set(answer) == {"detail"} and "dangerous command" in answer["detail"], answer
    listed = client.list_environments()
    assert f"seed-danger-{run_id}" not in [e["name"] for e in listed["environments"]]


def test_seed_client_session_survives_pauses_between_calls(envhub):
    """The client keeps one connection alive (requests.Session). A server that closes an
    idle connection after 0.5 s (civetweb's default keep_alive_timeout_ms) races every
    call made after a pause of about that length, and such a call fails with
    RemoteDisconnected (seen here while polling an environment every 0.5 s). The seed's
    server (uvicorn) keeps idle connections 5 s: envhub must keep them at least that long
    for the client to work unchanged."""
    s = socket.create_connection(("127.0.0.1", envhub.port), timeout=10)
    try:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(65536)
            assert chunk, "the server closed the connection before answering"
            head += chunk
        length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
        body = head.split(b"\r\n\r\n", 1)[1]
        while len(body) < length:
            body += s.recv(65536)
        t0 = time.monotonic()
        s.settimeout(0.1)
        closed_after = None
        while time.monotonic() - t0 < 5.0:
            try:
                if s.recv(65536) == b"":
                    closed_after = time.monotonic() - t0
                    break
            except socket.timeout:
                pass
    finally:
        s.close()
    assert closed_after is None, f"the server closed an idle keep-alive connection after {closed_after:.2f} s"

    # and the client itself, pausing as a poller does
    client = SimplePySandboxClient(envhub.url)
    for pause in (0.45, 0.5, 0.55, 1.0):
        assert client.health_check()["status"] == "healthy"
        time.sleep(pause)
        assert client.health_check()["status"] == "healthy"
