"""Drives headless Chromium at a phone's size through the Workbench's in-app login.

The DingTalk client is the simulator's stand-in JSAPI (`/jsapi-standin/...`): visiting
`/jsapi-standin/as?userid=X` "signs in to the DingTalk client" as X, and the script then hands
the in-app page a code for X. The relying party is the Authlib app of browser_login.py. The test
(tests/it/login_inapp.rs) starts the simulator, the directory and dingsync's provider, then runs:

    browser_inapp.py --issuer URL --sim URL --rp-port N --client-secret S --member USERID
                     --former USERID --disabled USERID --screenshots DIR

and reads one JSON object from stdout.
"""

import argparse
import json
import os
import shutil
import sys
import threading

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait
from werkzeug.serving import make_server

from browser_login import PROFILES, browser, make_app, scan_as, signed_in_claims

PHONE = (390, 844)


def phone():
    d = browser()
    d.set_window_size(*PHONE)
    return d


def in_dingtalk_as(d, sim, userid):
    """Sign the stand-in DingTalk client in as `userid` (empty: outside DingTalk)."""
    d.get(f"{sim}/jsapi-standin/as?userid={userid}")


def main():
    ap = argparse.ArgumentParser()
    for a in ["--issuer", "--sim", "--client-secret", "--member", "--former", "--disabled", "--screenshots"]:
        ap.add_argument(a, required=True)
    ap.add_argument("--rp-port", type=int, required=True)
    a = ap.parse_args()
    os.makedirs(a.screenshots, exist_ok=True)
    server = make_server("127.0.0.1", a.rp_port, make_app(a.issuer, a.client_secret))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    rp = f"http://127.0.0.1:{a.rp_port}"
    workbench = f"{a.issuer}/workbench?client_id=app"
    out = {}
    shot = lambda d, name: d.save_screenshot(os.path.join(a.screenshots, name))  # noqa: E731

    # 1. Inside DingTalk: the Workbench entry lands in the app, signed in, with no page.
    d = phone()
    try:
        in_dingtalk_as(d, a.sim, a.member)
        d.get(workbench)
        out["member"] = signed_in_claims(d)
        out["member_url"] = d.current_url
        shot(d, "05-inapp-signed-in.png")
        # Account self-service, on the session the in-app login opened.
        d.get(f"{a.issuer}/account")
        WebDriverWait(d, 20).until(ec.presence_of_element_located((By.ID, "login")))
        out["account_login"] = d.find_element(By.ID, "login").text
        shot(d, "09-account-page.png")
        for field in ["password", "confirm"]:
            d.find_element(By.ID, field).send_keys("Sh0rt!")
        d.find_element(By.ID, "save").click()
        WebDriverWait(d, 20).until(ec.presence_of_element_located((By.ID, "notice")))
        out["password_refused"] = d.find_element(By.ID, "notice").text
        shot(d, "10-password-rule-refused.png")
    finally:
        d.quit()

    # 2. A former employee and 3. a disabled account: dingsync's refusal page.
    for key, userid, name in [("former", a.former, "06-inapp-former-refused.png"),
                              ("disabled", a.disabled, "07-inapp-disabled-refused.png")]:
        d = phone()
        try:
            in_dingtalk_as(d, a.sim, userid)
            d.get(workbench)
            WebDriverWait(d, 20).until(ec.presence_of_element_located((By.ID, "refused")))
            out[key] = {"url": d.current_url, "text": d.find_element(By.ID, "refused").text}
            shot(d, name)
            d.get(rp + "/claims")
            out[key]["app_session"] = json.loads(d.find_element(By.TAG_NAME, "body").text)
        finally:
            d.quit()

    # 4. The in-app page when DingTalk's client cannot give a code (someone it does not know).
    d = phone()
    try:
        in_dingtalk_as(d, a.sim, "nobody-here")
        d.get(workbench)
        WebDriverWait(d, 20).until(ec.visibility_of_element_located((By.ID, "failed")))
        out["no_code"] = {"url": d.current_url, "text": d.find_element(By.ID, "inapp").text}
        shot(d, "08-inapp-page-no-code.png")
    finally:
        d.quit()

    # 5. Outside DingTalk (no JSAPI client): the QR login, then the app.
    d = phone()
    try:
        in_dingtalk_as(d, a.sim, "")
        d.get(workbench)
        scan_as(d, a.member)
        out["qr_page_url"] = d.current_url
        d.find_element(By.ID, "confirm").click()
        out["qr"] = signed_in_claims(d)
    finally:
        d.quit()

    server.shutdown()
    for p in PROFILES:
        shutil.rmtree(p, ignore_errors=True)
    json.dump(out, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
