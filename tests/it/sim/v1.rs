//! `/v1.0` API and the browser login page.

use serde_json::{Value, json};

use super::common::*;

async fn post_json(url: String, body: Value) -> (u16, Value) {
    let r = http().post(url).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn login_page_code_exchange_and_users_me() {
    let sim = start(sample_org()).await;
    let base = sim.base_url();
    let no_redirect = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // The page shows a QR code and the "scan as" form.
    let page = no_redirect
        .get(format!("{base}/oauth2/auth"))
        .query(&[
            ("redirect_uri", "http://127.0.0.1:1/cb"),
            ("response_type", "code"),
            ("client_id", APP_KEY),
            ("scope", "openid corpid"),
            ("state", "xyz"),
            ("prompt", "consent"),
        ])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("<svg") && page.contains("name=\"userid\"") && page.contains("lina"));
    let bad = no_redirect
        .get(format!(
            "{base}/oauth2/auth?client_id=nope&response_type=code&redirect_uri=http://x/"
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(bad.contains("id=\"error\""));
    // Scan as lina → redirect with authCode and state.
    let r = no_redirect
        .post(format!("{base}/oauth2/auth/scan"))
        .form(&[
            ("client_id", APP_KEY),
            ("redirect_uri", "http://127.0.0.1:1/cb"),
            ("state", "xyz"),
            ("scope", "openid corpid"),
            ("userid", "lina"),
            ("action", "confirm"),
        ])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection());
    let loc = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let q: std::collections::HashMap<_, _> = loc.query_pairs().into_owned().collect();
    assert_eq!(q["state"], "xyz");
    let code = q["authCode"].clone();

    let url = format!("{base}/v1.0/oauth2/userAccessToken");
    let body = json!({"clientId": APP_KEY, "clientSecret": APP_SECRET, "code": code, "grantType": "authorization_code"});
    let (s, v) = post_json(url.clone(), body.clone()).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["corpId"], "dingsimcorp0000000001");
    assert_eq!(v["expireIn"], 7200);
    let user_token = v["accessToken"].as_str().unwrap().to_owned();
    // Codes are single use.
    let (s, v) = post_json(url.clone(), body).await;
    assert_eq!(s, 400);
    assert!(v["code"].is_string() && v["requestid"].is_string());
    // Refresh.
    let (s, v2) = post_json(url, json!({"clientId": APP_KEY, "clientSecret": APP_SECRET, "refreshToken": refresh_token_for_lina(&sim).await, "grantType": "refresh_token"})).await;
    assert_eq!(s, 200, "{v2}");
    assert!(v2["accessToken"].is_string() && v2["refreshToken"].is_string());

    let me = |tok: Option<String>| {
        let mut rb = http().get(format!("{base}/v1.0/contact/users/me"));
        if let Some(t) = tok {
            rb = rb.header("x-acs-dingtalk-access-token", t);
        }
        async move {
            let r = rb.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (s, v) = me(Some(user_token.clone())).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["nick"], "李娜");
    assert_eq!(v["mobile"], "13800000003");
    assert_eq!(v["email"], "lina@example.com");
    assert_eq!(
        v["unionId"],
        sim.org().person("lina").unwrap().unionid.as_str()
    );
    // The unionId maps back to the userid with an app token.
    let app_tok = token(&sim, APP_KEY, APP_SECRET).await;
    let r = oapi(
        &sim,
        &app_tok,
        "/topapi/user/getbyunionid",
        json!({"unionid": v["unionId"]}),
    )
    .await;
    assert_eq!(r["result"]["userid"], "lina");
    let (s, v) = me(None).await;
    assert_eq!(
        (s, v["code"].clone()),
        (400, json!("AuthenticationFailed.MissingParameter"))
    );
    let (s, v) = me(Some("bogus".into())).await;
    assert_eq!(
        (s, v["code"].clone()),
        (400, json!("InvalidAuthentication"))
    );
    // Query-string token is not accepted on /v1.0.
    let r = http()
        .get(format!(
            "{base}/v1.0/contact/users/me?access_token={user_token}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    sim.shutdown().await;
}

/// Exchanges a fresh code (minted without the corpid scope) for a refresh token.
async fn refresh_token_for_lina(sim: &dingsync::sim::SimHandle) -> String {
    let code = sim.mint_auth_code(APP_KEY, "lina", false).unwrap();
    let (s, v) = post_json(
        format!("{}/v1.0/oauth2/userAccessToken", sim.base_url()),
        json!({"clientId": APP_KEY, "clientSecret": APP_SECRET, "code": code, "grantType": "authorization_code"}),
    )
    .await;
    assert_eq!(s, 200);
    assert!(
        v.get("corpId").is_none(),
        "no corpId without the corpid scope"
    );
    v["refreshToken"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn v1_errors_and_qps() {
    let sim = start(sample_org()).await;
    let base = sim.base_url();
    let (s, v) = post_json(
        format!("{base}/v1.0/oauth2/accessToken"),
        json!({"appKey": APP_KEY, "appSecret": "x"}),
    )
    .await;
    assert_eq!(
        (s, v["code"].clone()),
        (400, json!("invalidClientIdOrSecret"))
    );
    let rid = v["requestid"].as_str().unwrap();
    assert_eq!(rid.len(), 36);
    let (s, v) = post_json(
        format!("{base}/v1.0/gateway/connections/open"),
        json!({"clientId": APP_KEY, "clientSecret": "x"}),
    )
    .await;
    assert_eq!((s, v["code"].clone()), (401, json!("authFailed")));
    let r = http()
        .get(format!("{base}/v1.0/nope/nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // The narrow app lacks Contact.User.Read → 403.
    let code = sim.mint_auth_code(NARROW_KEY, "zhangwei01", false).unwrap();
    let (_, v) = post_json(
        format!("{base}/v1.0/oauth2/userAccessToken"),
        json!({"clientId": NARROW_KEY, "clientSecret": NARROW_SECRET, "code": code, "grantType": "authorization_code"}),
    )
    .await;
    let r = http()
        .get(format!("{base}/v1.0/contact/users/me"))
        .header(
            "x-acs-dingtalk-access-token",
            v["accessToken"].as_str().unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Per-app QPS on /v1.0 → 403 QpsLimitForAppkeyAndApi.
    let calls = (0..50).map(|_| {
        post_json(
            format!("{base}/v1.0/oauth2/accessToken"),
            json!({"appKey": APP_KEY, "appSecret": APP_SECRET}),
        )
    });
    let res = futures::future::join_all(calls).await;
    let throttled: Vec<_> = res.iter().filter(|(s, _)| *s == 403).collect();
    assert!(!throttled.is_empty());
    assert!(
        throttled
            .iter()
            .all(|(_, v)| v["code"] == "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi")
    );
    sim.shutdown().await;
}
