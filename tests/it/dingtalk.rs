//! The DingTalk client against the simulator: tokens, paging, scope, errors, faults, quotas,
//! and a full sync from the simulated enterprise through the engine.

use std::sync::Arc;

use dingsync::{
    dingtalk::{ClientConfig, DingTalkClient, DingTalkError, Secret},
    directory::{Directory, memory::MemoryDirectory},
    sim::{
        self, Org, SimConfig, Simulator, UserWrite,
        generate::{GenSpec, generate},
        state::{FaultKind, FaultRule},
    },
    sync::{Options, dingtalk_source::DingTalkSource},
};

async fn sim_with(org: Org, config: SimConfig) -> (sim::SimHandle, DingTalkClient) {
    let corp_id = org.corp_id.clone();
    let handle = Simulator::start(config, org, "127.0.0.1:0").await.unwrap();
    let client = DingTalkClient::new(
        ClientConfig::new(
            &corp_id,
            sim::DEFAULT_APP_KEY,
            Secret::new(sim::DEFAULT_APP_SECRET.to_owned()),
        )
        .with_base(&handle.base_url()),
    );
    (handle, client)
}

fn gen_org(people: usize, departments: usize, seed: u64) -> Org {
    generate(&GenSpec {
        people,
        departments,
        seed,
        ..Default::default()
    })
}

/// Fails the next `times` calls of `api` with `kind`.
fn fail_next(handle: &sim::SimHandle, api: &str, times: u64, kind: FaultKind) {
    let mut rule = FaultRule::new(Some(api), kind);
    rule.times = times;
    handle.add_fault(rule);
}

fn small_org() -> Org {
    Org::from_yaml_str(
        r#"
corp_id: dingsimcorp
name: 示例科技
departments:
  - {id: 10, name: 研发部, parent_id: 1}
  - {id: 11, name: 后端组, parent_id: 10}
  - {id: 20, name: 销售部, parent_id: 1}
people:
  - {userid: u1, name: 张伟, mobile: "13800000001", email: zw@corp.example, departments: [10]}
  - {userid: u2, name: 张伟, departments: [11, 20]}
  - {userid: u3, name: 李娜, email: ln@corp.example, departments: [20]}
"#,
        "small org",
    )
    .unwrap()
}

#[tokio::test]
async fn reads_the_whole_scope_with_the_fewest_calls() {
    let org = gen_org(950, 40, 3);
    let (handle, client) = sim_with(
        org.clone(),
        SimConfig {
            qps_limit: None,
            ..Default::default()
        },
    )
    .await;
    let read = client.read_scope(&[1]).await;
    assert!(read.is_complete(), "{:?}", read.failure_messages());
    assert_eq!(read.users.len(), 950, "deduplicated by userid");
    assert_eq!(read.departments.len(), 41, "the root and every department");
    // Lower bound: one listsub per department, one user/list page per 100 direct members.
    let pages: u64 = org
        .departments
        .iter()
        .map(|d| {
            let n = org
                .people
                .iter()
                .filter(|p| p.departments.contains(&d.id))
                .count();
            n.max(1).div_ceil(100) as u64
        })
        .sum();
    assert_eq!(handle.calls("/topapi/v2/department/listsub"), 41);
    assert_eq!(handle.calls("/topapi/v2/user/list"), pages);
    assert_eq!(
        handle.calls("/topapi/v2/department/get"),
        1,
        "only the root's name"
    );
}

#[tokio::test]
async fn stays_under_the_per_api_quota() {
    let org = gen_org(300, 30, 5);
    let (handle, client) = sim_with(
        org,
        SimConfig {
            qps_limit: Some(20),
            ..Default::default()
        },
    )
    .await;
    let read = client.read_scope(&[1]).await;
    assert!(read.is_complete(), "{:?}", read.failure_messages());
    assert_eq!(handle.counters().throttled, 0, "never trips 90018");
}

#[tokio::test]
async fn token_is_reused_and_refreshed_when_refused() {
    let (handle, client) = sim_with(small_org(), SimConfig::default()).await;
    let t1 = client.token().await.unwrap();
    assert_eq!(client.token().await.unwrap(), t1, "cached");
    // The server forgets every token: the next call refreshes once and succeeds.
    assert!(handle.invalidate_tokens(None) > 0);
    let users = client.list_users(10).await.unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(handle.calls("/gettoken"), 2);
}

#[tokio::test]
async fn wrong_credentials_are_a_typed_error_without_the_secret() {
    let handle = Simulator::start(SimConfig::default(), small_org(), "127.0.0.1:0")
        .await
        .unwrap();
    let client = DingTalkClient::new(
        ClientConfig::new(
            "dingsimcorp",
            sim::DEFAULT_APP_KEY,
            Secret::new("not-the-secret"),
        )
        .with_base(&handle.base_url()),
    );
    let err = client.token().await.unwrap_err();
    assert!(
        matches!(
            err,
            DingTalkError::InvalidCredentials { errcode: 40096, .. }
        ),
        "{err:?}"
    );
    assert!(!format!("{err} {err:?} {client:?}").contains("not-the-secret"));
}

#[tokio::test]
async fn transient_faults_are_retried_and_permanent_ones_are_not() {
    let (handle, client) = sim_with(small_org(), SimConfig::default()).await;
    fail_next(&handle, "/topapi/v2/user/list", 2, FaultKind::SystemBusy);
    assert_eq!(
        client.list_users(20).await.unwrap().len(),
        2,
        "busy twice, then served"
    );
    fail_next(&handle, "/topapi/v2/user/list", 2, FaultKind::Throttle);
    assert_eq!(
        client.list_users(11).await.unwrap().len(),
        1,
        "throttled twice, then served"
    );
    // Counted by API path too: the controller's metrics export them per API.
    assert_eq!(client.throttles().get("/topapi/v2/user/list"), Some(&2));
    let err = client.list_users(999).await.unwrap_err();
    assert!(
        matches!(err, DingTalkError::NotFound { errcode: 60003, .. }),
        "{err:?}"
    );
    let err = client.get_user("nobody").await.unwrap_err();
    assert!(
        matches!(err, DingTalkError::NotFound { errcode: 60121, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn contact_scope_is_enforced_and_named() {
    let mut org = small_org();
    let mut app = sim::App::new(sim::DEFAULT_APP_KEY, sim::DEFAULT_APP_SECRET);
    app.scope.departments = vec![20];
    org.apps.push(app);
    let (_handle, client) = sim_with(org, SimConfig::default()).await;
    let err = client.list_users(10).await.unwrap_err();
    assert!(
        matches!(err, DingTalkError::Denied { errcode: 50004, .. }),
        "{err:?}"
    );
    assert_eq!(client.list_users(20).await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_failure_mid_walk_makes_the_read_incomplete() {
    let (handle, client) = sim_with(
        gen_org(200, 20, 9),
        SimConfig {
            qps_limit: None,
            ..Default::default()
        },
    )
    .await;
    fail_next(&handle, "/topapi/v2/user/list", 100, FaultKind::SystemBusy);
    let mut cfg = client.config().clone();
    cfg.attempts = 2;
    let client = DingTalkClient::new(cfg);
    let read = client.read_scope(&[1]).await;
    assert!(!read.is_complete(), "the failure is reported, not hidden");
}

#[tokio::test]
async fn a_full_sync_from_the_simulator_then_hr_changes() {
    let (handle, client) = sim_with(small_org(), SimConfig::default()).await;
    let source = DingTalkSource::new(client, vec![1]);
    let dir = Arc::new(MemoryDirectory::new("uid"));
    let mapping = crate::support::conformance::mapping();
    let opts = Options {
        max_percent: 100,
        ..Default::default()
    };
    let quiet = |_: &str, _: usize, _: Option<usize>| {};
    let r = dingsync::sync::run(&source, dir.as_ref(), &mapping, &opts, false, &quiet)
        .await
        .unwrap();
    assert!(r.complete && r.failures.is_empty(), "{:?}", r.failures);
    assert_eq!(r.people, 3);
    assert_eq!(r.departments, 4, "root + 3");
    let names: Vec<String> = dir
        .read()
        .await
        .unwrap()
        .people
        .iter()
        .map(|p| p.attrs.first("uid").unwrap().to_owned())
        .collect();
    assert!(
        names.contains(&"zhangwei".to_string()) && names.contains(&"zhangwei2".to_string()),
        "{names:?}"
    );
    // HR: a leaver and a hire.
    handle.leave("u3").unwrap();
    handle
        .hire(UserWrite {
            userid: Some("u4".into()),
            name: Some("王芳".into()),
            departments: Some(vec![20]),
            ..Default::default()
        })
        .unwrap();
    let r = dingsync::sync::run(&source, dir.as_ref(), &mapping, &opts, false, &quiet)
        .await
        .unwrap();
    assert_eq!((r.created, r.disabled), (1, 1), "{:?}", r.plan.steps);
    let again = dingsync::sync::run(&source, dir.as_ref(), &mapping, &opts, false, &quiet)
        .await
        .unwrap();
    assert_eq!(again.writes, 0);
}

#[tokio::test]
async fn a_fault_mid_walk_disables_nobody() {
    let (handle, client) = sim_with(
        gen_org(200, 20, 9),
        SimConfig {
            qps_limit: None,
            ..Default::default()
        },
    )
    .await;
    let mut cfg = client.config().clone();
    cfg.attempts = 2;
    let source = DingTalkSource::new(DingTalkClient::new(cfg), vec![1]);
    let dir = Arc::new(MemoryDirectory::new("uid"));
    let mapping = crate::support::conformance::mapping();
    let opts = Options {
        max_percent: 100,
        ..Default::default()
    };
    let quiet = |_: &str, _: usize, _: Option<usize>| {};
    dingsync::sync::run(&source, dir.as_ref(), &mapping, &opts, false, &quiet)
        .await
        .unwrap();
    // Member listing fails for good in the middle of the walk, after two departments were
    // read: everyone in the rest looks gone.
    let mut rule = FaultRule::new(Some("/topapi/v2/user/list"), FaultKind::SystemBusy);
    rule.skip = 2;
    rule.times = 0;
    handle.add_fault(rule);
    let r = dingsync::sync::run(&source, dir.as_ref(), &mapping, &opts, false, &quiet)
        .await
        .unwrap();
    assert!(!r.complete, "the read is known to be incomplete");
    assert_eq!((r.disabled, r.deleted), (0, 0), "{:?}", r.plan.steps);
    assert!(r.suppressed_removals >= 1, "{}", r.suppressed_removals);
    assert!(dir.read().await.unwrap().people.iter().all(|p| !p.disabled));
}

#[tokio::test]
async fn broken_pages_make_the_read_incomplete_and_never_loop() {
    for oversized in [true, false] {
        let (handle, client) = sim_with(small_org(), SimConfig::default()).await;
        // Every page is broken (times 0: until cleared).
        fail_next(
            &handle,
            "/topapi/v2/user/list",
            0,
            FaultKind::BrokenPage { oversized },
        );
        let read =
            tokio::time::timeout(std::time::Duration::from_secs(20), client.read_scope(&[1]))
                .await
                .expect("the walk ends");
        assert!(!read.is_complete(), "oversized {oversized}");
        let why = read.failure_messages().join("; ");
        assert!(
            why.contains(if oversized {
                "more than"
            } else {
                "did not advance"
            }),
            "{why}"
        );
        // The single-department listing refuses it too, by name.
        let err = client.list_users(20).await.unwrap_err();
        assert!(matches!(err, DingTalkError::Decode { .. }), "{err:?}");
        handle.shutdown().await;
    }
}
