//! Quick bind: an enterprise read through a third-party (suite) app with corp tokens. The
//! suiteTicket arrives over the suite's Stream connection, rotates, survives a restart through
//! what was stored of it, and a corp token keeps being issued with both token APIs; the
//! enterprise's de-authorisation is recognised as such.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dingsync::dingtalk::{
    ClientConfig, DingTalkClient, Event, StreamConfig, StreamState, TicketCell, TokenApi,
    suite::is_deauthorised,
};
use dingsync::secret::Secret;
use dingsync::sim::suite::{self as sim_suite, DEFAULT_SUITE_KEY, DEFAULT_SUITE_SECRET};
use dingsync::sim::{SimConfig, SimHandle, Simulator, generate};

async fn start() -> (SimHandle, String) {
    let mut org = generate::generate(&generate::GenSpec {
        people: 12,
        departments: 3,
        seed: 25,
        ..Default::default()
    });
    org.people[0].admin = true;
    let admin = org.people[0].userid.clone();
    let sim = Simulator::start(SimConfig::fast(), org, "127.0.0.1:0")
        .await
        .expect("simulator starts");
    (sim, admin)
}

fn suite_client(sim: &SimHandle, tickets: TicketCell, api: TokenApi) -> DingTalkClient {
    let mut c = ClientConfig::for_suite(
        &sim.corp_id(),
        DEFAULT_SUITE_KEY,
        Secret::new(DEFAULT_SUITE_SECRET),
        tickets,
    )
    .with_base(&sim.base_url());
    c.token_api = api;
    c.attempts = 2;
    DingTalkClient::new(c)
}

fn sim_ticket(sim: &SimHandle) -> Option<String> {
    sim.with_state(|st| st.suites.get(DEFAULT_SUITE_KEY)?.ticket.clone())
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn corp_token_survives_ticket_rotation_and_a_restart() {
    let (sim, admin) = start().await;
    sim.with_state(|st| sim_suite::authorize(st, DEFAULT_SUITE_KEY, &admin))
        .expect("the admin authorises the suite");
    let someone = sim.org().people[3].userid.clone();
    assert!(sim.org().people[3].mobile.is_some());

    // The suite's Stream connection brings the first ticket.
    let cell = TicketCell::default();
    let mut stored = cell.watch();
    let client = suite_client(&sim, cell.clone(), TokenApi::OAuth2);
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = seen.clone();
    let handler = move |e: Event| {
        let log = log.clone();
        async move {
            log.lock().unwrap().push(e.event_type);
            Ok(())
        }
    };
    let stream = client.start_stream(StreamConfig::default(), Arc::new(handler));
    stream.wait_for(|s| *s == StreamState::Connected).await;
    wait_until("the first ticket", || cell.get().is_some()).await;
    let first = cell.get().expect("ticket");
    assert_eq!(Some(first.expose().to_owned()), sim_ticket(&sim));

    let user = client
        .get_user(&someone)
        .await
        .expect("read with a corp token");
    assert_eq!(user.mobile, None, "third-party apps get no mobile");
    assert_eq!(user.email, None, "third-party apps get no email");

    // Two pushes: the first ticket is no longer accepted, the client holds the latest.
    for _ in 0..2 {
        sim.with_state(|st| sim_suite::rotate_ticket(st, DEFAULT_SUITE_KEY));
    }
    wait_until("the latest ticket", || {
        cell.get().map(|t| t.expose().to_owned()) == sim_ticket(&sim)
    })
    .await;
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .filter(|t| *t == "suite_ticket")
            .count()
            >= 3
    );
    assert!(
        stored.has_changed().unwrap_or(false),
        "watchers learn of new tickets"
    );
    let latest = stored.borrow_and_update().clone().expect("stored ticket");

    // Tokens expire: a new corp token is bought with the latest ticket.
    sim.invalidate_tokens(Some(DEFAULT_SUITE_KEY));
    let before = client.stats().tokens_issued;
    client
        .get_user(&someone)
        .await
        .expect("a new corp token after rotation");
    assert_eq!(client.stats().tokens_issued, before + 1);

    // A client still holding the first ticket would be refused.
    let stale = suite_client(&sim, TicketCell::new(Some(first)), TokenApi::OAuth2);
    let refused = stale
        .get_user(&someone)
        .await
        .expect_err("stale ticket refused");
    assert!(
        refused.to_string().contains("invalidSuiteTicket"),
        "{refused}"
    );

    // Restart: no Stream yet, only what was stored; the legacy signed API this time.
    stream.stop().await;
    drop(client);
    let restarted = suite_client(&sim, TicketCell::new(Some(latest)), TokenApi::Legacy);
    let again = restarted
        .get_user(&someone)
        .await
        .expect("works after a restart");
    assert_eq!(again.userid, someone);
    assert_eq!(sim.calls("/service/get_corp_token"), 1);

    // The enterprise removes the app: recognised as a de-authorisation, not a failure.
    sim.with_state(|st| sim_suite::relieve(st, DEFAULT_SUITE_KEY));
    let gone = restarted
        .get_user(&someone)
        .await
        .expect_err("de-authorised");
    assert!(is_deauthorised(&gone), "{gone}");
    sim.shutdown().await;
}

fn bind_args(sim: &SimHandle) -> dingsync::cli::bind::Args {
    dingsync::cli::bind::Args {
        suite_key: DEFAULT_SUITE_KEY.into(),
        suite_secret: Secret::new(DEFAULT_SUITE_SECRET),
        secret_name: "dingtalk-suite".into(),
        name: Some("acme".into()),
        namespace: "dingsync".into(),
        base: Some(sim.base_url()),
        auth_url: None,
        out: None,
        apply: false,
        timeout_secs: 20,
    }
}

/// `dingsync bind` against the simulator: the QR code and URL are shown, the admin scans
/// (the simulator's "scan as" form), the binding comes out with the enterprise's corpId.
pub async fn bind_by_scanning(sim: &SimHandle, admin: &str) -> dingsync::cli::bind::Bound {
    let args = bind_args(sim);
    let mut prompt = Vec::new();
    let base = sim.base_url();
    let admin = admin.to_owned();
    let scanner = tokio::spawn(async move {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        // The admin scans once the code is shown, i.e. once the suite is connected.
        let conns = format!("{base}/__sim/stream/connections");
        for _ in 0..200 {
            let v: serde_json::Value = http.get(&conns).send().await.unwrap().json().await.unwrap();
            if v.as_array()
                .unwrap()
                .iter()
                .any(|c| c["app_key"] == DEFAULT_SUITE_KEY)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let page = http
            .get(format!("{base}/oauth2/suite/auth"))
            .query(&[("suite_key", DEFAULT_SUITE_KEY), ("state", "s")])
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(page.contains(&admin), "the page offers the admin: {page}");
        let scanned = http
            .post(format!("{base}/oauth2/suite/auth/scan"))
            .form(&[("suite_key", DEFAULT_SUITE_KEY), ("userid", admin.as_str())])
            .send()
            .await
            .unwrap();
        assert!(scanned.status().is_success());
    });
    let bound = dingsync::cli::bind::bind(&args, &mut prompt)
        .await
        .expect("bound");
    scanner.await.expect("scanned");
    let shown = String::from_utf8(prompt).unwrap();
    assert!(shown.contains("/oauth2/suite/auth?suite_key="), "{shown}");
    assert!(shown.contains('█'), "a QR code: {shown}");
    bound
}

#[tokio::test]
async fn bind_shows_the_qr_code_waits_for_the_admin_and_writes_the_binding() {
    let (sim, admin) = start().await;
    // Someone who is not an admin cannot authorise.
    let refused = sim.with_state(|st| {
        let who = st.org().people[1].userid.clone();
        sim_suite::authorize(st, DEFAULT_SUITE_KEY, &who)
    });
    assert!(refused.is_err());

    let bound = bind_by_scanning(&sim, &admin).await;
    assert_eq!(bound.corp_id, sim.corp_id());
    let yaml = dingsync::cli::bind::to_yaml(&bound.binding).expect("yaml");
    let back: dingsync::api::DingTalkBinding = serde_yaml::from_str(&yaml).expect("a binding");
    assert_eq!(back.spec.corp_id, sim.corp_id());
    let suite = back.spec.suite.as_ref().expect("suite");
    assert_eq!(suite.secret_ref.name, "dingtalk-suite");
    assert!(back.spec.credentials_secret_ref.is_unset());
    assert!(!yaml.contains("credentialsSecretRef"), "{yaml}");
    assert!(
        !yaml.contains(DEFAULT_SUITE_SECRET),
        "no secret in the YAML for Git"
    );
    let ticket = bound.ticket.expect("the ticket that bought the corp token");
    assert_eq!(Some(ticket.expose().to_owned()), sim_ticket(&sim));

    // Nobody scanning: bind gives up.
    let mut args = bind_args(&sim);
    args.timeout_secs = 1;
    let mut sink = Vec::new();
    let late = dingsync::cli::bind::bind(&args, &mut sink).await;
    assert!(
        matches!(late, Err(dingsync::cli::bind::BindError::TimedOut(_))),
        "{late:?}"
    );
    sim.shutdown().await;
}

/// `dingsync apply -f DIR` in a fresh process, as a restarted controller would start: it has
/// only the ticket the ticket Secret kept.
async fn apply(dir: std::path::PathBuf) -> std::process::Output {
    let bin = env!("CARGO_BIN_EXE_dingsync");
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(bin)
            .args(["apply", "-f"])
            .arg(dir)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn quick_bind_end_to_end_syncs_people_without_mobiles_and_stops_when_removed() {
    let Some(w) = crate::support::World::builder()
        .people(25)
        .departments(4)
        .seed(25)
        .slapd()
        .build()
        .await
    else {
        return;
    };
    let admin = w.sim.with_state(|st| {
        st.book.org.people[0].admin = true;
        st.book.org.people[0].userid.clone()
    });
    let with_mobile = w
        .sim
        .org()
        .people
        .iter()
        .filter(|p| p.mobile.is_some())
        .count();
    assert!(with_mobile > 0);

    let bound = bind_by_scanning(&w.sim, &admin).await;
    assert_eq!(bound.corp_id, w.corp());
    let ticket = bound.ticket.expect("ticket");

    // The bound enterprise's YAML: the suite instead of an internal app's credentials, the
    // suite's Secret and the ticket Secret `dingsync bind --apply` writes.
    let node = w.node("quickbind");
    let mapped = [("mobile", "{{ mobile }}"), ("title", "{{ title }}")];
    let manifests = w.inbound_ldap_yaml(&node, Some("unused"), &mapped).replace(
        "  credentialsSecretRef: {name: app}\n",
        "  suite: {secretRef: {name: dingtalk-suite}}\n",
    );
    assert!(manifests.contains("suite: {secretRef"), "{manifests}");
    let secrets = format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: dingtalk-suite}}\n\
         stringData: {{suiteKey: \"{DEFAULT_SUITE_KEY}\", suiteSecret: \"{DEFAULT_SUITE_SECRET}\"}}\n\
         ---\napiVersion: v1\nkind: Secret\nmetadata: {{name: acme-suite-ticket}}\n\
         stringData: {{suiteTicket: \"{}\"}}\n",
        ticket.expose()
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("all.yaml"),
        format!("{manifests}\n{secrets}"),
    )
    .unwrap();

    // A ticket push after binding: the kept one is still accepted (the previous ticket).
    w.sim
        .with_state(|st| sim_suite::rotate_ticket(st, DEFAULT_SUITE_KEY));
    let out = apply(dir.path().to_path_buf()).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(!stdout.contains(DEFAULT_SUITE_SECRET) && !stderr.contains(ticket.expose()));
    assert!(
        w.sim.calls("/service/get_corp_token") >= 1,
        "a corp token was bought"
    );

    let server = w.slapd();
    let people = "(objectClass=inetOrgPerson)";
    let synced = server.search(&node, people, &["*", "+"]).unwrap();
    assert_eq!(
        synced.matches("dn: ").count(),
        w.sim.org().people.len(),
        "{synced}"
    );
    assert!(
        !synced.contains("\nmobile:"),
        "third-party apps get no mobile: {synced}"
    );

    // The enterprise removes the app: the next run reads nothing and changes nothing.
    w.sim
        .with_state(|st| sim_suite::relieve(st, DEFAULT_SUITE_KEY));
    let out = apply(dir.path().to_path_buf()).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        format!("{stdout}{stderr}").contains("authorised"),
        "says why: {stdout}\n{stderr}"
    );
    let after = server.search(&node, people, &["*", "+"]).unwrap();
    assert_eq!(after, synced, "nobody disabled or changed");
}

/// The controller's credential check of a suite binding: valid while authorised, then
/// `Deauthorized` (the binding's `Ready=False` reason) once the enterprise removes the app.
#[tokio::test]
async fn the_binding_check_tells_deauthorisation_apart() {
    use dingsync::controller::{CredentialChecker, CredentialError, engine::DingTalkProbe};
    let (sim, admin) = start().await;
    sim.with_state(|st| sim_suite::authorize(st, DEFAULT_SUITE_KEY, &admin))
        .expect("authorised");
    let base = sim.base_url();
    let spec: dingsync::api::DingTalkBindingSpec = serde_json::from_value(serde_json::json!({
        "corpId": sim.corp_id(),
        "suite": {"secretRef": {"name": "dingtalk-suite"}},
        "endpoints": {"oapi": base, "api": base, "login": base},
    }))
    .expect("a suite binding");
    // The ticket the controller kept in the binding's ticket Secret.
    let ticket = sim.with_state(|st| sim_suite::rotate_ticket(st, DEFAULT_SUITE_KEY));
    dingsync::dingtalk::suite::tickets_of(DEFAULT_SUITE_KEY).set(Secret::new(ticket.unwrap()));
    let probe = DingTalkProbe::default();
    let secret = Secret::new(DEFAULT_SUITE_SECRET);
    let perms = probe
        .check(&spec, DEFAULT_SUITE_KEY, &secret)
        .await
        .expect("authorised");
    assert!(perms.contact_read && !perms.contact_write && !perms.mobile && !perms.email);

    sim.with_state(|st| sim_suite::relieve(st, DEFAULT_SUITE_KEY));
    let probe = DingTalkProbe::default();
    match probe.check(&spec, DEFAULT_SUITE_KEY, &secret).await {
        Err(CredentialError::Deauthorized(msg)) => assert!(!msg.contains(DEFAULT_SUITE_SECRET)),
        other => panic!("expected Deauthorized, got {other:?}"),
    }
    sim.shutdown().await;
}

mod controller {
    //! The binding controller with a suite binding: the real credential check against the
    //! simulator, a fake cluster.

    use std::sync::Arc;

    use async_trait::async_trait;
    use dingsync::api::{DingTalkBinding, DingTalkBindingSpec};
    use dingsync::controller::suite_ticket::TicketStore;
    use dingsync::controller::{
        Context, SyncOutcome, SyncRequest, SyncRunError, SyncRunner, binding,
        engine::DingTalkProbe, mapping, metrics::Metrics,
    };
    use dingsync::dingtalk::suite::tickets_of;
    use dingsync::secret::Secret;
    use dingsync::sim::state::suites::Suite;
    use dingsync::sim::suite as sim_suite;
    use k8s_openapi::{ByteString, api::core::v1::Secret as KSecret};
    use kube::{Api, api::ObjectMeta};
    use kube_fake_client::ClientBuilder;

    const NS: &str = "team";
    /// A suite of this test alone: the ticket cell is per suite and per process.
    const KEY: &str = "suitectrltest0000001";
    const SECRET: &str = "suite-secret-of-the-controller-test";

    struct NoRuns;

    #[async_trait]
    impl SyncRunner for NoRuns {
        async fn run(&self, _: SyncRequest) -> Result<SyncOutcome, SyncRunError> {
            Err(SyncRunError::Transient("no runs here".into()))
        }
    }

    fn ticket_in(s: &KSecret) -> Option<String> {
        let v = s.data.as_ref()?.get(KEY)?;
        String::from_utf8(v.0.clone()).ok()
    }

    async fn ready(api: &Api<DingTalkBinding>) -> (String, String, String) {
        let b = api.get("acme").await.unwrap();
        let c = b.status.unwrap().conditions;
        let r = c.iter().find(|c| c.type_ == "Ready").unwrap();
        (r.status.clone(), r.reason.clone(), r.message.clone())
    }

    #[tokio::test]
    async fn suite_binding_is_ready_keeps_its_ticket_and_turns_deauthorized() {
        let (sim, admin) = super::start().await;
        sim.with_state(|st| {
            st.suites.0.insert(KEY.into(), Suite::new(KEY, SECRET));
            sim_suite::authorize(st, KEY, &admin)
        })
        .expect("authorised");
        // The suite's Stream connection received a ticket.
        let t1 = sim
            .with_state(|st| sim_suite::rotate_ticket(st, KEY))
            .unwrap();
        tickets_of(KEY).set(Secret::new(t1.clone()));

        let base = sim.base_url();
        let meta = |name: &str| ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            generation: Some(1),
            ..Default::default()
        };
        let spec: DingTalkBindingSpec = serde_json::from_value(serde_json::json!({
            "corpId": sim.corp_id(),
            "suite": {"secretRef": {"name": "dingtalk-suite"}},
            "endpoints": {"oapi": base, "api": base, "login": base},
        }))
        .unwrap();
        let suite_secret = KSecret {
            metadata: meta("dingtalk-suite"),
            data: Some(
                [("suiteKey", KEY), ("suiteSecret", SECRET)]
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Default::default()
        };
        let client = ClientBuilder::new()
            .with_resource::<DingTalkBinding>()
            .with_status_subresource::<DingTalkBinding>()
            .with_resource::<dingsync::api::SyncTarget>()
            .with_objects(vec![suite_secret])
            .with_objects(vec![DingTalkBinding {
                metadata: meta("acme"),
                spec,
                status: None,
            }])
            .build()
            .await
            .expect("fake client");
        let ctx = Arc::new(Context::new(
            client.clone(),
            Arc::new(DingTalkProbe::default()),
            Arc::new(mapping::TemplateValidator),
            Arc::new(NoRuns),
            None,
            Arc::new(Metrics::default()),
        ));
        // The controller's own namespace keeps the tickets; the bindings' namespaces get none.
        let store = TicketStore {
            namespace: "dingsync-system".into(),
            name: "dingsync-suite-tickets".into(),
        };
        ctx.suite_tickets.set(store.clone()).unwrap();
        let kept_api: Api<KSecret> = Api::namespaced(client.clone(), &store.namespace);
        let bindings: Api<DingTalkBinding> = Api::namespaced(client.clone(), NS);
        let secrets: Api<KSecret> = Api::namespaced(client.clone(), NS);
        let reconcile = || async {
            let b = bindings.get("acme").await.unwrap();
            binding::reconcile(Arc::new(b), ctx.clone()).await.unwrap()
        };

        reconcile().await;
        let (status, reason, _) = ready(&bindings).await;
        assert_eq!((status.as_str(), reason.as_str()), ("True", "Valid"));
        let b = bindings.get("acme").await.unwrap();
        let st = b.status.unwrap();
        let granted = st
            .conditions
            .iter()
            .find(|c| c.type_ == "PermissionsGranted")
            .unwrap();
        assert_eq!(granted.reason, "PartiallyGranted");
        assert!(granted.message.contains("mobile"), "{}", granted.message);
        let perms = st.permissions.unwrap();
        assert!(perms.contact_read && !perms.mobile && !perms.email);
        let kept = kept_api
            .get(&store.name)
            .await
            .expect("tickets Secret created");
        assert_eq!(ticket_in(&kept), Some(t1));
        assert!(
            secrets
                .get_opt("acme-suite-ticket")
                .await
                .unwrap()
                .is_none()
        );

        // A push: the next look stores the new ticket.
        let t2 = sim
            .with_state(|st| sim_suite::rotate_ticket(st, KEY))
            .unwrap();
        tickets_of(KEY).set(Secret::new(t2.clone()));
        reconcile().await;
        let kept = kept_api.get(&store.name).await.unwrap();
        assert_eq!(ticket_in(&kept), Some(t2));

        // The enterprise removes the app.
        sim.with_state(|st| sim_suite::relieve(st, KEY));
        reconcile().await;
        let (status, reason, message) = ready(&bindings).await;
        assert_eq!(
            (status.as_str(), reason.as_str()),
            ("False", "Deauthorized"),
            "{message}"
        );
        assert!(!message.contains(SECRET));
        sim.shutdown().await;
    }
}
