//! The DingTalk client against the simulator for every path beyond the address-book reads:
//! both token APIs and their refresh, throttling and busy answers on `/v1.0`, permission
//! errors, lookups by unionId and mobile, validated writes, Stream mode, the encrypted HTTP
//! callback, the OAuth login, and the `dingsync sim` binary itself.

use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use dingsync::{
    dingtalk::{
        ClientConfig, DeptCreate, DeptUpdate, DingTalkClient, DingTalkError, Event, Secret,
        StreamConfig, StreamState, TokenApi, UserCreate, UserUpdate,
        callback::CallbackCrypto,
        events::{CallbackReceiver, callback_endpoint},
    },
    sim::{
        self, App, Org, SimConfig, SimHandle, Simulator, UserWrite,
        state::{EventFaults, FaultKind, FaultRule},
    },
};

const CORP: &str = "dingsimcorp";

fn org() -> Org {
    Org::from_yaml_str(
        r#"
corp_id: dingsimcorp
name: 示例科技
departments:
  - {id: 10, name: 研发部, parent_id: 1}
  - {id: 20, name: 销售部, parent_id: 1}
people:
  - {userid: u1, name: 张伟, mobile: "13800000001", email: zw@corp.example, departments: [10]}
  - {userid: u2, name: 李娜, mobile: "13800000002", departments: [20]}
"#,
        "paths org",
    )
    .unwrap()
}

async fn start(org: Org) -> SimHandle {
    Simulator::start(
        SimConfig {
            qps_limit: None,
            ..SimConfig::fast()
        },
        org,
        "127.0.0.1:0",
    )
    .await
    .unwrap()
}

fn client_with(
    sim: &SimHandle,
    app_key: &str,
    secret: &str,
    f: impl FnOnce(&mut ClientConfig),
) -> DingTalkClient {
    let mut c =
        ClientConfig::new(CORP, app_key, Secret::new(secret.to_owned())).with_base(&sim.base_url());
    c.backoff_base = Duration::from_millis(20);
    c.backoff_max = Duration::from_millis(200);
    f(&mut c);
    DingTalkClient::new(c)
}

fn client(sim: &SimHandle) -> DingTalkClient {
    client_with(sim, sim::DEFAULT_APP_KEY, sim::DEFAULT_APP_SECRET, |_| {})
}

fn fault(sim: &SimHandle, api: &str, kind: FaultKind, times: u64) {
    let mut r = FaultRule::new(Some(api), kind);
    r.times = times;
    sim.add_fault(r);
}

// ---- tokens ----

#[tokio::test]
async fn both_token_apis_cache_and_refresh_on_refusal() {
    let sim = start(org()).await;
    for api in [TokenApi::Legacy, TokenApi::OAuth2] {
        let path = match api {
            TokenApi::Legacy => "/gettoken",
            TokenApi::OAuth2 => "/v1.0/oauth2/accessToken",
        };
        let c = client_with(&sim, sim::DEFAULT_APP_KEY, sim::DEFAULT_APP_SECRET, |c| {
            c.token_api = api
        });
        sim.reset_counters();
        let t = c.token().await.unwrap();
        assert_eq!(c.token().await.unwrap(), t, "{path}: cached");
        assert_eq!(sim.calls(path), 1, "{path}");
        // errcode 88 / sub_code 40014 on an oapi call: refresh once, then served.
        fault(&sim, "/topapi/v2/user/get", FaultKind::InvalidToken, 1);
        assert_eq!(
            c.get_user("u1").await.unwrap().name.as_deref(),
            Some("张伟")
        );
        assert_eq!(sim.calls(path), 2, "{path}: one refresh");
        // The server forgets every token: many calls at once share one refresh.
        sim.invalidate_tokens(None);
        let calls: Vec<_> = (0..16).map(|_| c.get_user("u2")).collect();
        for r in futures::future::join_all(calls).await {
            assert_eq!(r.unwrap().userid, "u2");
        }
        assert_eq!(sim.calls(path), 3, "{path}: a single refresh in flight");
        // Tokens near their expiry are renewed before use: with a margin of all but one
        // second of DingTalk's 7,200, a token is due after a second.
        let early = client_with(&sim, sim::DEFAULT_APP_KEY, sim::DEFAULT_APP_SECRET, |c| {
            c.token_api = api;
            c.token_refresh_margin = Duration::from_secs(7199);
        });
        let first = early.token().await.unwrap();
        assert_eq!(early.token().await.unwrap(), first, "{path}: still fresh");
        tokio::time::sleep(Duration::from_millis(1200)).await;
        // (DingTalk answers with the same token while it is valid: count the calls.)
        early.get_user("u1").await.unwrap();
        assert_eq!(
            sim.calls(path),
            5,
            "{path}: renewed before expiry, not after"
        );
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn v1_throttling_and_invalid_tokens_are_retried() {
    let sim = start(org()).await;
    let c = client(&sim);
    let code = sim
        .mint_auth_code(sim::DEFAULT_APP_KEY, "u1", false)
        .unwrap();
    let token = c.exchange_code(&code).await.unwrap();
    // HTTP 403 QpsLimitForAppkeyAndApi, then 500 systemBusy: retried, then served.
    fault(&sim, "/v1.0/contact/users/me", FaultKind::Throttle, 2);
    fault(&sim, "/v1.0/contact/users/me", FaultKind::SystemBusy, 1);
    sim.reset_counters();
    let me = c.user_me(&token).await.unwrap();
    assert_eq!(me.nick.as_deref(), Some("张伟"));
    assert_eq!(sim.calls("/v1.0/contact/users/me"), 4);
    // HTTP 400 InvalidAuthentication on the app-token API the Stream gateway uses: the
    // app token is renewed and the call repeated.
    let c = client_with(&sim, sim::DEFAULT_APP_KEY, sim::DEFAULT_APP_SECRET, |c| {
        c.token_api = TokenApi::OAuth2
    });
    c.token().await.unwrap();
    fault(&sim, "/topapi/v2/user/get", FaultKind::InvalidToken, 1);
    sim.reset_counters();
    c.get_user("u2").await.unwrap();
    assert_eq!(
        sim.calls("/v1.0/oauth2/accessToken"),
        1,
        "renewed after the refusal"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn permission_errors_name_the_permission_and_are_not_retried() {
    let mut o = org();
    let mut app = App::new(
        "dinglimited0000000001",
        "limited-secret-000000000000000000000001",
    );
    app.permissions.remove(sim::org::PERM_MEMBER);
    app.permissions.remove(sim::org::PERM_MANAGE);
    o.apps
        .push(App::new(sim::DEFAULT_APP_KEY, sim::DEFAULT_APP_SECRET));
    o.apps.push(app);
    let sim = start(o).await;
    let c = client_with(
        &sim,
        "dinglimited0000000001",
        "limited-secret-000000000000000000000001",
        |_| {},
    );
    sim.reset_counters();
    let e = c.get_user("u1").await.unwrap_err();
    match &e {
        DingTalkError::Denied { permission, .. } => {
            assert_eq!(permission.as_deref(), Some("qyapi_get_member"), "{e}")
        }
        other => panic!("expected Denied: {other:?}"),
    }
    assert!(e.to_string().contains("qyapi_get_member"), "{e}");
    assert_eq!(sim.calls("/topapi/v2/user/get"), 1, "not retried");
    let e = c
        .create_department(&DeptCreate::new("新部门", 1))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("qyapi_manage_addresslist"), "{e}");
    sim.shutdown().await;
}

// ---- lookups ----

#[tokio::test]
async fn lookups_by_unionid_and_mobile() {
    let sim = start(org()).await;
    let c = client(&sim);
    let union = sim.org().person("u1").unwrap().unionid.clone();
    assert_eq!(c.get_user_by_unionid(&union).await.unwrap().userid, "u1");
    assert_eq!(c.enterprise_userid(&union).await.unwrap(), "u1");
    let by_mobile = c.get_user_by_mobile("13800000002").await.unwrap();
    assert_eq!(by_mobile.userid.as_deref(), Some("u2"));
    let e = c.get_user_by_mobile("13899999999").await.unwrap_err();
    assert!(matches!(e, DingTalkError::NotFound { .. }), "{e:?}");
    // Someone who left: still a DingTalk user, no longer in the enterprise.
    sim.leave("u1").unwrap();
    let e = c.enterprise_userid(&union).await.unwrap_err();
    assert!(matches!(e, DingTalkError::NotInEnterprise { .. }), "{e:?}");
    sim.shutdown().await;
}

// ---- writes ----

#[tokio::test]
async fn writes_create_update_delete_with_dingtalks_rules() {
    let sim = start(org()).await;
    let c = client(&sim);
    let dept = c
        .create_department(&DeptCreate::new("平台组", 10))
        .await
        .unwrap();
    assert_eq!(c.get_department(dept).await.unwrap().name, "平台组");
    let mut rename = DeptUpdate::new(dept);
    rename.name = Some("基础平台组".into());
    c.update_department(&rename).await.unwrap();
    assert_eq!(c.get_department(dept).await.unwrap().name, "基础平台组");

    let created = c
        .create_user(&UserCreate {
            userid: Some("w1".into()),
            name: "王芳".into(),
            mobile: Some("13800000009".into()),
            dept_id_list: vec![dept],
            title: Some("工程师".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(created.userid, "w1");
    let mut edit = UserUpdate::new("w1");
    edit.title = Some("高级工程师".into());
    edit.dept_id_list = Some(vec![dept, 20]);
    c.update_user(&edit).await.unwrap();
    let u = c.get_user("w1").await.unwrap();
    assert_eq!(u.title.as_deref(), Some("高级工程师"));
    let mut depts = u.dept_id_list.clone().unwrap_or_default();
    depts.sort();
    assert_eq!(depts, vec![20, dept]);

    // Refused before sending, naming the field: no call made.
    sim.reset_counters();
    let bad = UserCreate {
        name: "x".repeat(81),
        mobile: Some("13800000010".into()),
        dept_id_list: vec![dept],
        ..Default::default()
    };
    let e = c.create_user(&bad).await.unwrap_err();
    assert!(
        matches!(&e, DingTalkError::Validation { field, .. } if field == "name"),
        "{e:?}"
    );
    let no_mobile = UserCreate {
        name: "赵六".into(),
        dept_id_list: vec![dept],
        ..Default::default()
    };
    let e = c.create_user(&no_mobile).await.unwrap_err();
    assert!(
        matches!(&e, DingTalkError::Validation { field, .. } if field == "mobile"),
        "{e:?}"
    );
    assert_eq!(sim.calls("/topapi/v2/user/create"), 0);

    // Refused by DingTalk: a mobile already in use; a department that still has members.
    let dup = UserCreate {
        name: "重复".into(),
        mobile: Some("13800000001".into()),
        dept_id_list: vec![dept],
        ..Default::default()
    };
    let e = c.create_user(&dup).await.unwrap_err();
    assert!(matches!(e, DingTalkError::Invalid { .. }), "{e:?}");
    let e = c.delete_department(dept).await.unwrap_err();
    assert!(matches!(e, DingTalkError::Invalid { .. }), "{e:?}");
    c.delete_user("w1").await.unwrap();
    assert!(matches!(
        c.get_user("w1").await.unwrap_err(),
        DingTalkError::NotFound { .. }
    ));
    c.delete_department(dept).await.unwrap();
    assert!(matches!(
        c.get_department(dept).await.unwrap_err(),
        DingTalkError::NotFound { .. }
    ));
    sim.shutdown().await;
}

// ---- Stream mode ----

type Seen = Arc<Mutex<Vec<Event>>>;

fn recorder(fail_first: usize) -> (Seen, Arc<dyn dingsync::dingtalk::EventHandler>) {
    let seen: Seen = Default::default();
    let calls = Arc::new(Mutex::new(0usize));
    let s = seen.clone();
    let handler = move |e: Event| {
        let (s, calls) = (s.clone(), calls.clone());
        async move {
            let n = {
                let mut c = calls.lock().unwrap();
                *c += 1;
                *c
            };
            if n <= fail_first {
                anyhow::bail!("handler not ready yet");
            }
            s.lock().unwrap().push(e);
            Ok(())
        }
    };
    (seen, Arc::new(handler))
}

async fn wait_until(what: &str, f: impl Fn() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

fn fast_stream() -> StreamConfig {
    StreamConfig {
        reconnect_min: Duration::from_millis(50),
        reconnect_max: Duration::from_millis(400),
        drain: Duration::from_millis(300),
        ..Default::default()
    }
}

fn has_user(seen: &Seen, event_type: &str, userid: &str) -> bool {
    seen.lock()
        .unwrap()
        .iter()
        .any(|e| e.event_type == event_type && e.user_ids.iter().any(|u| u == userid))
}

#[tokio::test]
async fn stream_acks_after_the_handler_and_survives_disconnects() {
    let sim = start(org()).await;
    let c = client(&sim);
    // The first delivery fails: it must come again, and is acked only after it succeeded.
    let (seen, handler) = recorder(1);
    let stream = c.start_stream(fast_stream(), handler);
    stream.wait_for(|s| *s == StreamState::Connected).await;
    sim.hire(UserWrite {
        userid: Some("s1".into()),
        name: Some("孙七".into()),
        departments: Some(vec![10]),
        ..Default::default()
    })
    .unwrap();
    wait_until("the hire after a redelivery", || {
        has_user(&seen, "user_add_org", "s1")
    })
    .await;
    let stats = stream.stats();
    assert_eq!(stats.failed, 1, "{stats:?}");
    assert!(stats.acked >= 1, "{stats:?}");
    let counters = sim.counters();
    assert!(counters.stream_acks_later >= 1, "{counters:?}");
    assert!(counters.stream_redeliveries >= 1, "{counters:?}");

    // A graceful SYSTEM disconnect, then a hard close: it reconnects, events keep coming.
    for (i, graceful) in [true, false].into_iter().enumerate() {
        let before = stream.stats().connections;
        assert!(sim.disconnect_streams(None, graceful) >= 1);
        wait_until("a new connection", || stream.stats().connections > before).await;
        stream.wait_for(|s| *s == StreamState::Connected).await;
        let who = format!("s{}", i + 2);
        sim.edit_user(
            "u2",
            UserWrite {
                title: Some(format!("title {who}")),
                ..Default::default()
            },
        )
        .unwrap();
        wait_until("an edit after reconnecting", || {
            seen.lock()
                .unwrap()
                .iter()
                .filter(|e| e.event_type == "user_modify_org")
                .count()
                > i
        })
        .await;
    }
    // Duplicated deliveries reach the handler once.
    sim.set_event_faults(EventFaults {
        duplicate: 1,
        ..Default::default()
    });
    sim.leave("u1").unwrap();
    wait_until("the leave", || has_user(&seen, "user_leave_org", "u1")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let leaves = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.event_type == "user_leave_org")
        .count();
    assert_eq!(
        leaves, 1,
        "the duplicate was acked without a second handling"
    );
    assert!(stream.stats().duplicates >= 1, "{:?}", stream.stats());
    stream.stop().await;
    sim.shutdown().await;
}

// ---- HTTP callback ----

const TOKEN: &str = "cbtoken123";
const AES_KEY: &str = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG";

#[tokio::test]
async fn callback_handshake_events_and_forgeries() {
    let sim = start(org()).await;
    let (seen, handler) = recorder(0);
    let crypto = CallbackCrypto::new(TOKEN, AES_KEY, sim::DEFAULT_APP_KEY).unwrap();
    let receiver = Arc::new(CallbackReceiver::new(crypto, handler));
    let app = axum::Router::new()
        .route("/dingtalk/callback", axum::routing::post(callback_endpoint))
        .with_state(receiver);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/dingtalk/callback",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    // check_url handshake: the simulator registers only on a correct encrypted success.
    sim.subscribe_callback(sim::DEFAULT_APP_KEY, &url, TOKEN, AES_KEY)
        .await
        .expect("check_url answered");
    sim.hire(UserWrite {
        userid: Some("c1".into()),
        name: Some("钱八".into()),
        departments: Some(vec![20]),
        ..Default::default()
    })
    .unwrap();
    wait_until("the hire by callback", || {
        has_user(&seen, "user_add_org", "c1")
    })
    .await;
    assert!(sim.failed_callbacks(sim::DEFAULT_APP_KEY).is_empty());
    let handled = seen.lock().unwrap().len();

    // Forgeries: each refused with 400, nothing handled, nothing panics.
    let http = reqwest::Client::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        .to_string();
    let genuine = CallbackCrypto::new(TOKEN, AES_KEY, sim::DEFAULT_APP_KEY).unwrap();
    let other_corp = CallbackCrypto::new(TOKEN, AES_KEY, "dingothercorp").unwrap();
    let payload = r#"{"EventType":"user_leave_org","UserId":["u2"],"CorpId":"dingsimcorp"}"#;
    let push = |sig: String, ts: String, nonce: &str, body: String| {
        let http = http.clone();
        let url = url.clone();
        let nonce = nonce.to_owned();
        async move {
            http.post(&url)
                .query(&[("msg_signature", sig), ("timestamp", ts), ("nonce", nonce)])
                .body(body)
                .header("content-type", "application/json")
                .send()
                .await
                .unwrap()
        }
    };
    let enc = genuine.encrypt(payload);
    let body = |e: &str| serde_json::json!({ "encrypt": e }).to_string();
    // 1. a bad signature
    let r = push("0".repeat(40), now.clone(), "n1", body(&enc)).await;
    assert_eq!(r.status(), 400);
    // 2. the wrong enterprise (owner key) in a correctly signed ciphertext
    let foreign = other_corp.encrypt(payload);
    let r = push(
        genuine.sign(&now, "n2", &foreign),
        now.clone(),
        "n2",
        body(&foreign),
    )
    .await;
    assert_eq!(r.status(), 400);
    // 3. garbage ciphertext, signed; 4. not base64; 5. not JSON at all
    for (i, garbage) in ["QUJDREVGR0hJSktMTU5PUA==", "%%%not-base64%%%"]
        .iter()
        .enumerate()
    {
        let nonce = format!("g{i}");
        let r = push(
            genuine.sign(&now, &nonce, garbage),
            now.clone(),
            &nonce,
            body(garbage),
        )
        .await;
        assert_eq!(r.status(), 400, "{garbage}");
    }
    let r = push(
        genuine.sign(&now, "n5", "x"),
        now.clone(),
        "n5",
        "\u{0}\u{1}garbage".into(),
    )
    .await;
    assert_eq!(r.status(), 400);
    // 6. a genuine push recorded long ago and played back
    let old = (now.parse::<i64>().unwrap() - 3 * 3600 * 1000).to_string();
    let r = push(
        genuine.sign(&old, "n6", &enc),
        old.clone(),
        "n6",
        body(&enc),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        seen.lock().unwrap().len(),
        handled,
        "no forgery was handled"
    );
    // 7. a fresh genuine push is handled once; the same request replayed is not handled again.
    let sig = genuine.sign(&now, "n7", &enc);
    let r = push(sig.clone(), now.clone(), "n7", body(&enc)).await;
    assert_eq!(r.status(), 200);
    let r = push(sig, now.clone(), "n7", body(&enc)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        seen.lock().unwrap().len(),
        handled + 1,
        "handled exactly once"
    );
    sim.shutdown().await;
}

// ---- OAuth login ----

#[tokio::test]
async fn oauth_login_from_the_login_page_to_the_enterprise_userid() {
    let sim = start(org()).await;
    let c = client(&sim);
    let url = c.authorize_url("http://127.0.0.1:9/cb", "st-42", &["openid", "corpid"]);
    let parsed = url::Url::parse(&url).unwrap();
    let q: HashMap<_, _> = parsed.query_pairs().into_owned().collect();
    assert_eq!(q["client_id"], sim::DEFAULT_APP_KEY);
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["state"], "st-42");
    assert_eq!(q["prompt"], "consent");
    // The login page the browser would see, then "scan" as u2.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = http.get(&url).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("qrcode") && page.contains("u2"), "{page}");
    let form: Vec<(String, String)> = [
        ("client_id", sim::DEFAULT_APP_KEY),
        ("redirect_uri", "http://127.0.0.1:9/cb"),
        ("state", "st-42"),
        ("response_type", "code"),
        ("scope", "openid corpid"),
        ("userid", "u2"),
        ("action", "confirm"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let r = http
        .post(format!("{}/oauth2/auth/scan", sim.base_url()))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());
    let back = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let back: HashMap<_, _> = back.query_pairs().into_owned().collect();
    assert_eq!(back["state"], "st-42");
    let who = c.login(&back["authCode"]).await.unwrap();
    assert_eq!(who.userid, "u2");
    // A code is single use.
    assert!(c.login(&back["authCode"]).await.is_err());
    // A former employee can scan, but is outside the enterprise.
    sim.leave("u1").unwrap();
    let code = sim
        .mint_auth_code(sim::DEFAULT_APP_KEY, "u1", false)
        .unwrap();
    let e = c.login(&code).await.unwrap_err();
    assert!(matches!(e, DingTalkError::NotInEnterprise { .. }), "{e:?}");
    sim.shutdown().await;
}

// ---- the `dingsync sim` binary ----

#[tokio::test]
async fn the_sim_binary_prints_its_url_and_serves_the_client() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dingsync"))
        .args([
            "sim",
            "--listen",
            "127.0.0.1:0",
            "--people",
            "120",
            "--departments",
            "9",
            "--seed",
            "5",
            "--corp-id",
            CORP,
            "--app-key",
            "dingclitest000000001",
            "--qps",
            "0",
        ])
        .env(
            "DINGSYNC_SIM_APP_SECRET",
            "cli-test-secret-000000000000000000000001",
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL printed: {line:?}"))
        .to_owned();
    let c = DingTalkClient::new(
        ClientConfig::new(
            CORP,
            "dingclitest000000001",
            Secret::new("cli-test-secret-000000000000000000000001"),
        )
        .with_base(&base),
    );
    let read = c.read_scope(&[1]).await;
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
    assert!(read.is_complete(), "{:?}", read.failure_messages());
    assert_eq!(read.users.len(), 120);
    assert_eq!(read.departments.len(), 10);
}
