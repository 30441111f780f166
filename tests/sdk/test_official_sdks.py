"""DingTalk's own SDKs, pointed at `dingsync sim`, prove that the simulator speaks DingTalk.

* `dingtalk-stream` (official Stream Mode SDK) connects, receives an address-book event
  triggered through the admin API, acknowledges it; the simulator counts the ACK and does not
  redeliver; a SYSTEM disconnect makes the SDK reconnect, within a second (the simulator
  answers the SDK's Close frame, so the SDK sees a clean close rather than a network error);
  a client subscribed only to a CALLBACK topic gets that topic's pushes and no EVENT; a
  third-party (suite) app's handler receives its suiteTicket and authorisation events, and the
  ticket it received buys a corp token that reads people without their mobiles.
* `alibabacloud-dingtalk` (official `/v1.0` SDK) gets an app token and, after the login page's
  "scan as" form and the code exchange, reads `users/me`.
* `dingtalk-sdk` (the `/topapi` client) reads the department tree and pages of users.

Needs `target/debug/dingsync` (cargo build) and the venv (`.venv`, tests/requirements.txt).
"""

import json
import os
import queue
import subprocess
import sys
import textwrap
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BINARY = ROOT / "target" / "debug" / "dingsync"
ORG = ROOT / "examples" / "simulator" / "org.yaml"
APP_KEY = "dingsimappkey0000001"
APP_SECRET = "sim-app-secret-0000000000000000000000000000000000000000000001"
CORP_ID = "dingsimcorp0000000001"
SUITE_KEY = "suitesimkey000000001"
SUITE_SECRET = "sim-suite-secret-000000000000000000000000000000000000000000001"
BOT_TOPIC = "/v1.0/im/bot/messages/get"

if not (ROOT / ".venv").is_dir():
    pytest.skip(
        "no .venv: python3 -m venv .venv && .venv/bin/pip install -r tests/requirements.txt",
        allow_module_level=True,
    )

requests = pytest.importorskip("requests")


def _kill(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def sim():
    if not BINARY.exists():
        pytest.fail(f"{BINARY} is missing: run `cargo build` first")
    proc = subprocess.Popen(
        [str(BINARY), "sim", "--listen", "127.0.0.1:0", "--org", str(ORG), "--fast"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        base = proc.stdout.readline().strip()
        assert base.startswith("http://127.0.0.1:"), f"unexpected first line {base!r}"
        yield base
    finally:
        _kill(proc)


def admin(base, method, path, body=None):
    r = requests.request(method, f"{base}/__sim{path}", json=body, timeout=5)
    r.raise_for_status()
    return r.json()


def wait_for(predicate, timeout=15.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


STREAM_CHILD = textwrap.dedent(
    """
    import json, logging, os, sys
    os.environ["DINGTALK_OPENAPI_ENDPOINT"] = sys.argv[1]
    import dingtalk_stream
    from dingtalk_stream import AckMessage

    class Printer(dingtalk_stream.EventHandler):
        async def process(self, event):
            print(json.dumps({"type": event.headers.event_type,
                              "event_id": event.headers.event_id,
                              "data": event.data}), flush=True)
            return AckMessage.STATUS_OK, "OK"

    logging.basicConfig(level=logging.WARNING)
    client = dingtalk_stream.DingTalkStreamClient(dingtalk_stream.Credential(sys.argv[2], sys.argv[3]))
    client.get_host_ip = lambda: "127.0.0.1"
    client.register_all_event_handler(Printer())
    client.start_forever()
    """
)


# A client that subscribes only to the robot CALLBACK topic. Its event handler is set without
# registering it (registering would subscribe to EVENT): any EVENT that reaches it is printed.
CALLBACK_CHILD = textwrap.dedent(
    """
    import json, logging, os, sys
    os.environ["DINGTALK_OPENAPI_ENDPOINT"] = sys.argv[1]
    import dingtalk_stream
    from dingtalk_stream import AckMessage

    class Printer(dingtalk_stream.EventHandler):
        async def process(self, event):
            print(json.dumps({"type": event.headers.event_type}), flush=True)
            return AckMessage.STATUS_OK, "OK"

    class Bot(dingtalk_stream.CallbackHandler):
        async def process(self, message):
            print(json.dumps({"callback": message.headers.topic, "data": message.data}), flush=True)
            return AckMessage.STATUS_OK, "OK"

    logging.basicConfig(level=logging.WARNING)
    client = dingtalk_stream.DingTalkStreamClient(dingtalk_stream.Credential(sys.argv[2], sys.argv[3]))
    client.get_host_ip = lambda: "127.0.0.1"
    client.event_handler = Printer()
    client.register_callback_handler(sys.argv[4], Bot())
    client.start_forever()
    """
)


class Child:
    """An SDK client in a subprocess; its printed JSON lines are read in the background."""

    def __init__(self, tmp_path, name, source, *args):
        script = tmp_path / f"{name}.py"
        script.write_text(source)
        self.proc = subprocess.Popen(
            [sys.executable, str(script), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))

    def next(self, timeout=10.0):
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no message within {timeout} s") from None

    def drain(self):
        out = []
        while not self.lines.empty():
            out.append(self.lines.get_nowait())
        return out

    def kill(self):
        _kill(self.proc)


def connections(base, app_key):
    return [c for c in admin(base, "GET", "/stream/connections") if c["app_key"] == app_key]


def test_stream_sdk_receives_and_acks_event(sim, tmp_path):
    script = tmp_path / "stream_child.py"
    script.write_text(STREAM_CHILD)
    before = admin(sim, "GET", "/counters")
    child = subprocess.Popen(
        [sys.executable, str(script), sim, APP_KEY, APP_SECRET],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        wait_for(lambda: admin(sim, "GET", "/counters")["stream_connections_active"] >= 1,
                 what="the SDK to connect")
        hired = admin(sim, "POST", "/users",
                      {"userid": "sdk_stream_1", "name": "流式", "departments": [100003]})
        assert hired["userid"] == "sdk_stream_1"
        line = child.stdout.readline()
        event = json.loads(line)
        assert event["type"] == "user_add_org"
        assert event["data"]["userId"] == ["sdk_stream_1"]
        wait_for(lambda: admin(sim, "GET", "/counters")["stream_acks_success"]
                 > before["stream_acks_success"], what="the ACK")
        # Acked with 200: no redelivery even well past the (fast) 1 s ack timeout.
        time.sleep(3)
        after = admin(sim, "GET", "/counters")
        assert after["stream_redeliveries"] == before["stream_redeliveries"]
        assert after["stream_events_sent"] - before["stream_events_sent"] == 1
        # The SDK answers the simulator's SYSTEM pings (every 2 s with --fast).
        assert after["stream_pongs"] > before["stream_pongs"]

        # SYSTEM disconnect: the SDK closes, opens a new connection with a new ticket.
        opened = after["stream_connections_opened"]
        assert admin(sim, "POST", "/stream/disconnect", {"app_key": APP_KEY, "graceful": True})["disconnected"] == 1
        wait_for(lambda: admin(sim, "GET", "/counters")["stream_connections_opened"] > opened,
                 what="the SDK to reconnect")
        admin(sim, "DELETE", "/users/sdk_stream_1")
        event = json.loads(child.stdout.readline())
        assert event["type"] == "user_leave_org"
        assert event["data"]["userId"] == ["sdk_stream_1"]
    finally:
        _kill(child)


def test_stream_sdk_reconnects_within_a_second_after_disconnect(sim, tmp_path):
    child = Child(tmp_path, "reconnect_child", STREAM_CHILD, sim, APP_KEY, APP_SECRET)
    try:
        wait_for(lambda: connections(sim, APP_KEY), what="the SDK to connect")
        for _ in range(3):
            opened = admin(sim, "GET", "/counters")["stream_connections_opened"]
            told = time.time()
            assert admin(sim, "POST", "/stream/disconnect", {"app_key": APP_KEY, "graceful": True})["disconnected"] == 1
            # The SDK closes at once; a clean close handshake lets it reopen without its 10 s
            # network-error backoff.
            wait_for(lambda: admin(sim, "GET", "/counters")["stream_connections_opened"] > opened,
                     timeout=5, what="the SDK to reconnect")
            assert time.time() - told < 1.0
            wait_for(lambda: [c for c in connections(sim, APP_KEY) if not c["draining"]],
                     what="the new connection")
        # The new connection still gets events. An earlier test's child may have been killed
        # before it acknowledged its last event, which the simulator (like DingTalk) then
        # redelivers to this app's next connection: skip events about other people.
        admin(sim, "POST", "/users", {"userid": "sdk_reconnect_1", "name": "重连", "departments": [100003]})
        assert next_about(child, "sdk_reconnect_1")["type"] == "user_add_org"
        admin(sim, "DELETE", "/users/sdk_reconnect_1")
        assert next_about(child, "sdk_reconnect_1")["type"] == "user_leave_org"
    finally:
        child.kill()
        # Leave the shared simulator's department as the other tests expect it.
        try:
            admin(sim, "DELETE", "/users/sdk_reconnect_1")
        except Exception:
            pass


def next_about(child, userid, timeout=10.0):
    """The child's next event naming `userid`, skipping others."""
    deadline = time.time() + timeout
    while True:
        event = child.next(timeout=max(0.1, deadline - time.time()))
        if userid in (event.get("data") or {}).get("userId", []):
            return event


def test_callback_only_client_receives_no_event(sim, tmp_path):
    events = Child(tmp_path, "event_child", STREAM_CHILD, sim, APP_KEY, APP_SECRET)
    bot = Child(tmp_path, "callback_child", CALLBACK_CHILD, sim, APP_KEY, APP_SECRET, BOT_TOPIC)
    try:
        wait_for(lambda: len(connections(sim, APP_KEY)) == 2, what="both SDK clients to connect")
        subs = sorted((c["events"], c["callbacks"]) for c in connections(sim, APP_KEY))
        assert subs == [(False, [BOT_TOPIC]), (True, [])]
        # Round-robin over both connections would hand the callback client about half of these.
        for i in range(6):
            admin(sim, "POST", "/users", {"userid": f"sdk_cb_{i}", "name": f"回调{i}", "departments": [100003]})
        got = sorted(events.next()["data"]["userId"][0] for _ in range(6))
        assert got == sorted(f"sdk_cb_{i}" for i in range(6))
        # The bot gets its topic's push, and nothing else reached it.
        pushed = admin(sim, "POST", "/stream/callback",
                       {"app_key": APP_KEY, "topic": BOT_TOPIC, "data": {"text": {"content": "你好"}}})
        assert pushed["delivered"] is not None
        message = bot.next()
        assert message["callback"] == BOT_TOPIC and message["data"]["text"]["content"] == "你好"
        time.sleep(1.5)
        assert bot.drain() == []
        assert events.drain() == []
        # A topic nobody subscribed to reaches no one.
        assert admin(sim, "POST", "/stream/callback",
                     {"app_key": APP_KEY, "topic": "/v1.0/card/instances/callback", "data": {}})["delivered"] is None
        for i in range(6):
            admin(sim, "DELETE", f"/users/sdk_cb_{i}")
        for _ in range(6):
            assert events.next()["type"] == "user_leave_org"
        assert bot.drain() == []
    finally:
        events.kill()
        bot.kill()


def test_suite_ticket_and_authorisation_reach_sdk_handler(sim, tmp_path):
    suite = Child(tmp_path, "suite_child", STREAM_CHILD, sim, SUITE_KEY, SUITE_SECRET)
    try:
        # A suite's first connection gets a ticket at once.
        first = suite.next()
        assert first["type"] == "suite_ticket" and first["data"]["suiteTicket"]
        assert admin(sim, "POST", f"/suites/{SUITE_KEY}/ticket")["pushed"]
        second = suite.next()
        assert second["type"] == "suite_ticket"
        ticket = second["data"]["suiteTicket"]
        assert ticket != first["data"]["suiteTicket"]

        body = {"suiteKey": SUITE_KEY, "suiteSecret": SUITE_SECRET, "authCorpId": CORP_ID, "suiteTicket": ticket}
        r = requests.post(f"{sim}/v1.0/oauth2/corpAccessToken", json=body)
        assert r.status_code == 400 and r.json()["code"] == "invalidAuthInfo"

        # The admin scans: the authorisation page, then "scan as" the admin.
        page = requests.get(f"{sim}/oauth2/suite/auth", params={"suite_key": SUITE_KEY, "state": "x"})
        assert page.status_code == 200 and "zhangwei01" in page.text
        refused = requests.post(f"{sim}/oauth2/suite/auth/scan", data={"suite_key": SUITE_KEY, "userid": "lina"})
        assert refused.status_code == 403
        scan = requests.post(f"{sim}/oauth2/suite/auth/scan", data={"suite_key": SUITE_KEY, "userid": "zhangwei01"})
        assert scan.status_code == 200
        auth = suite.next()
        assert auth["type"] == "org_suite_auth" and auth["data"]["authCorpId"] == CORP_ID

        token = requests.post(f"{sim}/v1.0/oauth2/corpAccessToken", json=body).json()["accessToken"]
        lina = requests.post(f"{sim}/topapi/v2/user/get", params={"access_token": token},
                             json={"userid": "lina"}).json()
        assert lina["errcode"] == 0 and lina["result"]["name"] == "李娜"
        assert "mobile" not in lina["result"] and "email" not in lina["result"]

        # An address-book change of the enterprise reaches the suite too.
        admin(sim, "POST", "/users", {"userid": "sdk_suite_1", "name": "套件", "departments": [100003]})
        assert suite.next()["type"] == "user_add_org"
        admin(sim, "DELETE", "/users/sdk_suite_1")
        assert suite.next()["type"] == "user_leave_org"

        assert admin(sim, "DELETE", f"/suites/{SUITE_KEY}/authorize")["relieved"]
        assert suite.next()["type"] == "org_suite_relieve"
        gone = requests.post(f"{sim}/topapi/v2/user/get", params={"access_token": token},
                             json={"userid": "lina"}).json()
        assert gone["errcode"] == 88
    finally:
        suite.kill()


def test_alibabacloud_sdk_token_and_users_me(sim):
    from alibabacloud_dingtalk.contact_1_0 import models as contact_models
    from alibabacloud_dingtalk.contact_1_0.client import Client as ContactClient
    from alibabacloud_dingtalk.oauth2_1_0 import models as oauth_models
    from alibabacloud_dingtalk.oauth2_1_0.client import Client as OAuthClient
    from alibabacloud_tea_openapi import models as open_api_models
    from alibabacloud_tea_util import models as util_models

    host = urllib.parse.urlparse(sim).netloc
    config = open_api_models.Config(protocol="http", endpoint=host)
    oauth = OAuthClient(config)
    token = oauth.get_access_token(
        oauth_models.GetAccessTokenRequest(app_key=APP_KEY, app_secret=APP_SECRET)
    ).body
    assert token.expire_in == 7200 and token.access_token
    # Same token while valid, also through the legacy endpoint.
    legacy = requests.get(f"{sim}/gettoken", params={"appkey": APP_KEY, "appsecret": APP_SECRET}).json()
    assert legacy["access_token"] == token.access_token

    with pytest.raises(Exception) as bad:
        oauth.get_access_token(oauth_models.GetAccessTokenRequest(app_key=APP_KEY, app_secret="wrong"))
    assert "invalidClientIdOrSecret" in str(bad.value)

    # The browser login: page → "scan as" lina → redirect with authCode and state.
    redirect_uri = "http://127.0.0.1:9/callback"
    page = requests.get(f"{sim}/oauth2/auth", params={
        "redirect_uri": redirect_uri, "response_type": "code", "client_id": APP_KEY,
        "scope": "openid corpid", "state": "s123", "prompt": "consent",
    })
    assert page.status_code == 200 and "<svg" in page.text
    scan = requests.post(f"{sim}/oauth2/auth/scan", data={
        "client_id": APP_KEY, "redirect_uri": redirect_uri, "state": "s123",
        "scope": "openid corpid", "userid": "lina", "action": "confirm",
    }, allow_redirects=False)
    assert scan.status_code in (302, 303, 307)
    query = urllib.parse.parse_qs(urllib.parse.urlparse(scan.headers["location"]).query)
    assert query["state"] == ["s123"]
    code = query["authCode"][0]

    user_token = oauth.get_user_token(oauth_models.GetUserTokenRequest(
        client_id=APP_KEY, client_secret=APP_SECRET, code=code, grant_type="authorization_code",
    )).body
    assert user_token.corp_id == CORP_ID and user_token.refresh_token

    contact = ContactClient(config)
    headers = contact_models.GetUserHeaders(x_acs_dingtalk_access_token=user_token.access_token)
    me = contact.get_user_with_options("me", headers, util_models.RuntimeOptions()).body
    assert me.nick == "李娜"
    assert me.mobile == "13800000003"
    assert me.email == "lina@example.com"
    assert me.union_id and me.open_id

    # unionId → userid with the app token on the legacy API.
    r = requests.post(f"{sim}/topapi/user/getbyunionid", params={"access_token": token.access_token},
                      json={"unionid": me.union_id}).json()
    assert r["result"]["userid"] == "lina"

    with pytest.raises(Exception) as bad:
        contact.get_user_with_options("me", contact_models.GetUserHeaders(x_acs_dingtalk_access_token="nope"),
                                      util_models.RuntimeOptions())
    assert "InvalidAuthentication" in str(bad.value)


def test_topapi_sdk_reads_tree_and_pages(sim):
    from dingtalk.client import AppKeyClient
    from dingtalk.core.exceptions import DingTalkClientException

    client = AppKeyClient(CORP_ID, APP_KEY, APP_SECRET)
    client.API_BASE_URL = sim + "/"

    # Breadth-first walk of the tree with listsub.
    names = {}
    queue = [1]
    while queue:
        dept = queue.pop(0)
        r = client.post("/topapi/v2/department/listsub", {"dept_id": dept})
        for d in r["result"]:
            assert d["parent_id"] == dept
            names[d["dept_id"]] = d["name"]
            queue.append(d["dept_id"])
    assert names[100002] == "平台部" and names[100006] == "华东大区"
    assert len(names) == 7

    detail = client.post("/topapi/v2/department/get", {"dept_id": 100002})["result"]
    assert detail["dept_manager_userid_list"] == ["zhangwei01"]

    # Pages of one user each, following next_cursor until has_more is false.
    users, cursor, pages = [], 0, 0
    while True:
        r = client.post("/topapi/v2/user/list", {"dept_id": 100003, "cursor": cursor, "size": 1})["result"]
        pages += 1
        users += [u["userid"] for u in r["list"]]
        if not r["has_more"]:
            break
        cursor = r["next_cursor"]
    assert sorted(users) == ["sso_liuyang", "zhangwei02"] and pages == 2

    # Homonyms are distinct people.
    zw = [client.post("/topapi/v2/user/get", {"userid": u})["result"] for u in ("zhangwei01", "zhangwei02")]
    assert [u["name"] for u in zw] == ["张伟", "张伟"] and zw[0]["unionid"] != zw[1]["unionid"]

    with pytest.raises(DingTalkClientException) as err:
        client.post("/topapi/v2/user/get", {"userid": "nobody"})
    assert err.value.errcode == 60121
