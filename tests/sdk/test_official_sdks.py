"""DingTalk's SDKs as independent clients of `dingsync sim`: if they read it, it speaks DingTalk.

- `alibabacloud-dingtalk` (official, /v1.0 APIs) obtains an app token, and is refused with
  DingTalk's own error code for a wrong secret.
- `dingtalk-sdk` (/topapi client) walks the department tree and pages through every department's
  members with DingTalk's cursors.
"""

import os
import pathlib
import socket
import subprocess
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("DINGSYNC_BIN", str(ROOT / "target" / "debug" / "dingsync"))
PEOPLE = 400


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sim():
    if not os.path.exists(BIN):
        pytest.skip(f"{BIN} not built (cargo build)")
    port = free_port()
    proc = subprocess.Popen(
        [BIN, "sim", "--listen", f"127.0.0.1:{port}", "--people", str(PEOPLE), "--departments", "2", "--seed", "5", "--qps", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        base = proc.stdout.readline().strip()
        assert base.startswith("http://127.0.0.1:"), base
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.time() < deadline, "simulator did not listen"
                time.sleep(0.05)
        yield base, port
    finally:
        proc.terminate()  # by PID
        proc.wait(timeout=10)


def test_official_new_api_sdk_gets_a_token(sim):
    from alibabacloud_dingtalk.oauth2_1_0 import models
    from alibabacloud_dingtalk.oauth2_1_0.client import Client
    from alibabacloud_tea_openapi.models import Config

    _, port = sim
    client = Client(Config(protocol="http", endpoint=f"127.0.0.1:{port}"))
    first = client.get_access_token(models.GetAccessTokenRequest(app_key="dingsimappkey", app_secret="sim-app-secret"))
    assert first.body.expire_in == 7200
    again = client.get_access_token(models.GetAccessTokenRequest(app_key="dingsimappkey", app_secret="sim-app-secret"))
    assert again.body.access_token == first.body.access_token, "the same token while it is valid"
    with pytest.raises(Exception) as refused:
        client.get_access_token(models.GetAccessTokenRequest(app_key="dingsimappkey", app_secret="wrong"))
    assert "invalidClientIdOrSecret" in str(refused.value)


def test_topapi_sdk_walks_departments_and_pages_members(sim):
    from dingtalk.client import AppKeyClient

    base, _ = sim
    client = AppKeyClient("dingsimcorp", "dingsimappkey", "sim-app-secret")
    client.API_BASE_URL = base + "/"
    seen, pages, queue = set(), 0, [1]
    departments = 0
    while queue:
        dept = queue.pop()
        departments += 1
        children = client.post("/topapi/v2/department/listsub", {"dept_id": dept})
        assert children["errcode"] == 0, children
        queue.extend(c["dept_id"] for c in children["result"])
        cursor = 0
        while True:
            page = client.post("/topapi/v2/user/list", {"dept_id": dept, "cursor": cursor, "size": 100})
            assert page["errcode"] == 0, page
            pages += 1
            seen.update(u["userid"] for u in page["result"]["list"])
            if not page["result"]["has_more"]:
                break
            cursor = page["result"]["next_cursor"]
    assert departments == 3, "the root and two departments"
    assert len(seen) == PEOPLE
    assert pages > departments, "some departments needed more than one page"
    from dingtalk.core.exceptions import DingTalkClientException

    with pytest.raises(DingTalkClientException) as refused:
        client.post("/topapi/v2/user/list", {"dept_id": 1, "cursor": 0, "size": 101})
    assert refused.value.errcode == 40035, "page size above 100 is refused as DingTalk does"
