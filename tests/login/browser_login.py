"""Drives a real headless Chromium through "log in with DingTalk" via dingsync.

The relying party is a Flask app using Authlib's OIDC client (discovery, PKCE S256, nonce,
ID token verified against the provider's JWKS) — a maintained OIDC client library, not code of
dingsync's. The test (tests/login_browser.rs) starts the simulator, slapd and dingsync's
provider, then runs:

    browser_login.py --issuer URL --rp-port N --client-secret S --member USERID
                     --outsider USERID --screenshots DIR

and reads one JSON object from stdout: the claims the app received for the member (QR login
and Workbench entry) and what the outsider saw.
"""

import argparse
import shutil
import json
import os
import sys
import tempfile
import threading
import time

from authlib.integrations.flask_client import OAuth
from flask import Flask, jsonify, redirect, session, url_for
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait
from werkzeug.serving import make_server


def make_app(issuer, client_secret):
    app = Flask("relying-party")
    app.secret_key = os.urandom(16)
    oauth = OAuth(app)
    oauth.register(
        "dingsync",
        client_id="app",
        client_secret=client_secret,
        server_metadata_url=f"{issuer}/.well-known/openid-configuration",
        client_kwargs={"scope": "openid profile email groups", "code_challenge_method": "S256"},
    )

    @app.route("/")
    def home():
        user = session.get("user")
        if not user:
            return '<html><body><a id="login" href="/login">Log in with DingTalk</a></body></html>'
        return (
            '<html><head><meta charset="utf-8"><title>Signed in</title></head><body>'
            f'<h1 id="hello">Signed in as {user.get("name", "")}</h1>'
            f'<pre id="claims">{json.dumps(user, ensure_ascii=False, indent=2)}</pre></body></html>'
        )

    @app.route("/login")
    def login():
        return oauth.dingsync.authorize_redirect(url_for("auth", _external=True))

    @app.route("/auth")
    def auth():
        token = oauth.dingsync.authorize_access_token()  # verifies the ID token and nonce
        claims = dict(token["userinfo"])
        claims["_userinfo"] = dict(oauth.dingsync.userinfo(token=token))
        session["user"] = claims
        return redirect("/")

    @app.route("/claims")
    def claims():
        return jsonify(session.get("user"))

    return app


PROFILES = []


def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    profile = tempfile.mkdtemp(prefix="dingsync-chromium-")
    PROFILES.append(profile)
    for a in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--window-size=1000,900",
        "--lang=zh-CN",
    ]:
        opts.add_argument(a)
    service = Service(executable_path=os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    return webdriver.Chrome(service=service, options=opts)


def scan_as(driver, userid):
    wait = WebDriverWait(driver, 20)
    wait.until(ec.presence_of_element_located((By.ID, "userid")))
    Select(driver.find_element(By.ID, "userid")).select_by_value(userid)


def signed_in_claims(driver):
    WebDriverWait(driver, 20).until(ec.presence_of_element_located((By.ID, "claims")))
    return json.loads(driver.find_element(By.ID, "claims").text)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--issuer", required=True)
    ap.add_argument("--rp-port", type=int, required=True)
    ap.add_argument("--client-secret", required=True)
    ap.add_argument("--member", required=True)
    ap.add_argument("--outsider", required=True)
    ap.add_argument("--screenshots", required=True)
    a = ap.parse_args()
    os.makedirs(a.screenshots, exist_ok=True)

    server = make_server("127.0.0.1", a.rp_port, make_app(a.issuer, a.client_secret))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    rp = f"http://127.0.0.1:{a.rp_port}"
    out = {}
    shot = lambda d, name: d.save_screenshot(os.path.join(a.screenshots, name))  # noqa: E731

    # 1. QR login: app → dingsync → DingTalk's login page → "scan" → back in the app.
    d = browser()
    try:
        d.get(rp + "/")
        d.find_element(By.ID, "login").click()
        scan_as(d, a.member)
        out["login_page_url"] = d.current_url
        shot(d, "01-dingtalk-qr-login.png")
        d.find_element(By.ID, "confirm").click()
        out["member"] = signed_in_claims(d)
        shot(d, "02-app-signed-in.png")
    finally:
        d.quit()

    # 2. Somebody outside the enterprise: refused by dingsync with a page saying why.
    d = browser()
    try:
        d.get(rp + "/login")
        scan_as(d, a.outsider)
        d.find_element(By.ID, "confirm").click()
        WebDriverWait(d, 20).until(ec.presence_of_element_located((By.ID, "refused")))
        out["outsider"] = {"url": d.current_url, "text": d.find_element(By.ID, "refused").text}
        shot(d, "03-outsider-refused.png")
        d.get(rp + "/claims")
        out["outsider"]["app_session"] = json.loads(d.find_element(By.TAG_NAME, "body").text)
    finally:
        d.quit()

    # 3. Workbench: the app homepage URL an admin enters in DingTalk's Workbench starts the
    #    same flow and lands in the app, signed in; a second app open needs no login at all.
    d = browser()
    try:
        d.get(f"{a.issuer}/workbench?client_id=app")
        scan_as(d, a.member)
        d.find_element(By.ID, "confirm").click()
        out["workbench"] = signed_in_claims(d)
        shot(d, "04-workbench-signed-in.png")
        d.delete_cookie("session")  # the app forgets us; dingsync's SSO session remains
        d.get(f"{a.issuer}/workbench?client_id=app")
        out["workbench_again"] = signed_in_claims(d)
        out["workbench_again_url"] = d.current_url
    finally:
        d.quit()

    server.shutdown()
    for p in PROFILES:
        shutil.rmtree(p, ignore_errors=True)
    json.dump(out, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    started = time.time()
    main()
    print(f"browser run took {time.time() - started:.1f}s", file=sys.stderr)
