//! Real-time incremental sync against the simulator and a real slapd: HR changes reach LDAP
//! through events alone (no full sync after the first), duplicated / reordered events, a
//! dropped connection and a restart mid-burst converge, nothing is acknowledged before it was
//! applied, targets without a baseline are left alone and say why, homonyms and accounts a
//! match rule finds come out as a full sync would make them (the directory is read by anchor),
//! and the HTTP callback path applies genuine pushes and refuses forged ones.

use crate::support;
use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use dingsync::{
    api::target::Layout,
    dingtalk::{StreamConfig, StreamHandle, StreamState, callback::CallbackCrypto},
    directory::{
        Anchors, Attrs, Directory, DirectoryError, PersonEntry, Snapshot, ldap::LdapDirectory,
    },
    sim::{self, DeptWrite, SimHandle, UserWrite, state::EventFaults},
    sync::{
        self, Options,
        dingtalk_source::DingTalkSource,
        events::{LiveTarget, Pipeline, PipelineConfig},
    },
};

const CORP: &str = "dingsimcorp";

/// The shared world (simulator, client, slapd) with a switchable directory in front of slapd.
struct World {
    base: support::World,
    dir: Arc<dyn Directory>,
    target: Arc<Gate>,
    /// The target's writer lock. The controller keeps one per target for the life of the
    /// process, shared by every pipeline it starts; a pipeline standing in for a restarted
    /// process shares it too, so the old one's last batch finishes before the new one writes
    /// (a real restart kills the old writer outright).
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl std::ops::Deref for World {
    type Target = support::World;
    fn deref(&self) -> &support::World {
        &self.base
    }
}

/// A directory that can be switched off: while `down`, every write fails as if the server
/// were unreachable.
struct Gate {
    inner: LdapDirectory,
    down: AtomicBool,
}

#[async_trait]
impl Directory for Gate {
    async fn read(&self) -> Result<Snapshot, DirectoryError> {
        self.inner.read().await
    }
    async fn read_some(&self, anchors: &Anchors) -> Result<Snapshot, DirectoryError> {
        self.inner.read_some(anchors).await
    }
    async fn create_person(
        &self,
        id: &str,
        attrs: &Attrs,
        main_dept: Option<&str>,
    ) -> Result<(), DirectoryError> {
        self.check()?;
        self.inner.create_person(id, attrs, main_dept).await
    }
    async fn link_person(&self, key: &str, id: &str) -> Result<(), DirectoryError> {
        self.check()?;
        self.inner.link_person(key, id).await
    }
    async fn update_person(&self, id: &str, changes: &Attrs) -> Result<(), DirectoryError> {
        self.check()?;
        self.inner.update_person(id, changes).await
    }
    async fn move_person(&self, id: &str, name: &str, main: &str) -> Result<(), DirectoryError> {
        self.check()?;
        self.inner.move_person(id, name, main).await
    }
    async fn disable_person(&self, id: &str) -> Result<(), DirectoryError> {
        self.check()?;
        self.inner.disable_person(id).await
    }
    async fn enable_person(&self, id: &str) -> Result<(), DirectoryError> {
        self.check()?;
        self.inner.enable_person(id).await
    }
    async fn delete_person(&self, id: &str) -> Result<(), DirectoryError> {
        self.check()?;
        self.inner.delete_person(id).await
    }
    async fn add_members(&self, dept: &str, people: &[String]) -> Result<(), DirectoryError> {
        self.check()?;
        self.inner.add_members(dept, people).await
    }
    async fn remove_members(&self, dept: &str, people: &[String]) -> Result<(), DirectoryError> {
        self.check()?;
        self.inner.remove_members(dept, people).await
    }
    async fn create_dept(
        &self,
        id: &str,
        name: &str,
        parent: Option<&str>,
        attrs: &Attrs,
    ) -> Result<(), DirectoryError> {
        self.check()?;
        self.inner.create_dept(id, name, parent, attrs).await
    }
    async fn update_dept(&self, id: &str, changes: &Attrs) -> Result<(), DirectoryError> {
        self.check()?;
        self.inner.update_dept(id, changes).await
    }
    async fn move_dept(
        &self,
        id: &str,
        name: &str,
        parent: Option<&str>,
    ) -> Result<(), DirectoryError> {
        self.check()?;
        self.inner.move_dept(id, name, parent).await
    }
    async fn delete_dept(&self, id: &str) -> Result<(), DirectoryError> {
        self.check()?;
        self.inner.delete_dept(id).await
    }
    async fn read_roles(&self) -> Result<Vec<dingsync::directory::RoleEntry>, DirectoryError> {
        self.inner.read_roles().await
    }
    async fn create_role(
        &self,
        id: &str,
        name: &str,
        members: &[String],
    ) -> Result<(), DirectoryError> {
        self.check()?;
        self.inner.create_role(id, name, members).await
    }
    async fn rename_role(&self, id: &str, name: &str) -> Result<(), DirectoryError> {
        self.check()?;
        self.inner.rename_role(id, name).await
    }
    async fn role_members(
        &self,
        id: &str,
        add: &[String],
        remove: &[String],
    ) -> Result<(), DirectoryError> {
        self.check()?;
        self.inner.role_members(id, add, remove).await
    }
    async fn delete_role(&self, id: &str) -> Result<(), DirectoryError> {
        self.check()?;
        self.inner.delete_role(id).await
    }
    async fn read_lean(
        &self,
        digested: &dingsync::directory::Digested,
    ) -> Result<Snapshot, DirectoryError> {
        self.inner.read_lean(digested).await
    }
    fn locate_person(&self, id: &str) -> Option<String> {
        self.inner.locate_person(id)
    }
    fn write_concurrency(&self) -> usize {
        self.inner.write_concurrency()
    }
    fn writes(&self) -> u64 {
        self.inner.writes()
    }
}

impl Gate {
    fn check(&self) -> Result<(), DirectoryError> {
        if self.down.load(Ordering::SeqCst) {
            Err(DirectoryError::Unavailable(
                "directory switched off by the test".into(),
            ))
        } else {
            Ok(())
        }
    }
}

async fn world(name: &str, people: usize) -> Option<World> {
    let base = support::World::builder()
        .people(people)
        .departments(12)
        .seed(9)
        .slapd()
        .build()
        .await?;
    let inner = base.ldap(&base.node(name), Layout::FlatWithGroups).await;
    let target = Arc::new(Gate {
        inner,
        down: AtomicBool::new(false),
    });
    Some(World {
        base,
        dir: target.clone(),
        target,
        lock: Default::default(),
    })
}

fn opts() -> Options {
    Options {
        max_percent: 100,
        ..Default::default()
    }
}

impl World {
    fn source(&self) -> Arc<DingTalkSource> {
        Arc::new(DingTalkSource::new(self.client.clone(), vec![1]))
    }

    async fn full_sync(&self) {
        let _writer = self.lock.lock().await;
        let r = sync::run(
            self.source().as_ref(),
            self.dir.as_ref(),
            &crate::support::conformance::mapping(),
            &opts(),
            false,
            &|_, _, _| {},
        )
        .await
        .unwrap();
        assert!(r.failures.is_empty(), "{:#?}", r.failures);
    }

    fn pipeline(&self, baseline: bool) -> Arc<Pipeline> {
        let p = Pipeline::start(PipelineConfig::default());
        p.set_target(
            "t1",
            LiveTarget {
                source: self.source(),
                dir: self.dir.clone(),
                mapping: Arc::new(crate::support::conformance::mapping()),
                opts: opts(),
                lock: self.lock.clone(),
            },
            baseline,
        );
        p
    }

    async fn stream(&self, p: &Arc<Pipeline>) -> StreamHandle {
        let s = self.client.start_stream(
            StreamConfig {
                reconnect_min: Duration::from_millis(50),
                reconnect_max: Duration::from_millis(300),
                drain: Duration::from_millis(300),
                ..Default::default()
            },
            p.handler(),
        );
        s.wait_for(|st| *st == StreamState::Connected).await;
        s
    }

    /// Differences between the directory and DingTalk's truth (empty = converged).
    async fn diff(&self) -> Vec<String> {
        let truth = self.sim.org();
        let snap = self.dir.read().await.unwrap();
        let mut out = vec![];
        let mut by_id: BTreeMap<&str, Vec<&PersonEntry>> = BTreeMap::new();
        for p in &snap.people {
            if let Some(id) = p.id.as_deref() {
                by_id.entry(id).or_default().push(p);
            }
        }
        for (id, v) in &by_id {
            if v.len() > 1 {
                out.push(format!("{id} duplicated"));
            }
        }
        let alive: BTreeSet<&str> = truth.people.iter().map(|p| p.userid.as_str()).collect();
        for p in &truth.people {
            match by_id.get(p.userid.as_str()) {
                None => out.push(format!("{} missing", p.userid)),
                Some(v) => {
                    let e = v[0];
                    if e.disabled {
                        out.push(format!("{} disabled", p.userid));
                    }
                    let want: BTreeSet<String> =
                        p.departments.iter().map(ToString::to_string).collect();
                    let have: BTreeSet<String> = e.departments.iter().cloned().collect();
                    if want != have {
                        out.push(format!("{} in {have:?}, not {want:?}", p.userid));
                    }
                    if e.attrs.first("cn") != Some(&p.name) {
                        out.push(format!("{} cn differs", p.userid));
                    }
                    let title = e.attrs.first("title").map(str::to_owned);
                    if title != p.title {
                        out.push(format!("{} title {title:?} vs {:?}", p.userid, p.title));
                    }
                }
            }
        }
        for e in &snap.people {
            if let Some(id) = e.id.as_deref()
                && !alive.contains(id)
                && !e.disabled
            {
                out.push(format!("{id} left but enabled"));
            }
        }
        let depts: BTreeMap<String, String> = snap
            .departments
            .iter()
            .map(|d| (d.id.clone(), d.name.clone()))
            .collect();
        for d in &truth.departments {
            if depts.get(&d.id.to_string()) != Some(&d.name) {
                out.push(format!("department {} {:?} differs", d.id, d.name));
            }
        }
        if depts.len() != truth.departments.len() {
            out.push(format!(
                "{} departments, DingTalk has {}",
                depts.len(),
                truth.departments.len()
            ));
        }
        out
    }

    async fn converge(&self, what: &str) {
        let mut last = vec![];
        for _ in 0..200 {
            last = self.diff().await;
            if last.is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{what}: LDAP never matched DingTalk: {last:?}");
    }
}

fn hire(sim: &SimHandle, userid: &str, name: &str, dept: i64) {
    sim.hire(UserWrite {
        userid: Some(userid.into()),
        name: Some(name.into()),
        departments: Some(vec![dept]),
        ..Default::default()
    })
    .unwrap();
}

/// Each person's account name, by userid.
async fn uids(dir: &dyn Directory) -> BTreeMap<String, String> {
    let snap = dir.read().await.unwrap();
    snap.people
        .iter()
        .filter_map(|p| Some((p.id.clone()?, p.attrs.first("uid")?.to_owned())))
        .collect()
}

/// Put an account dingsync did not create under the node.
fn seed_account(w: &World, uid: &str, extra: &str) {
    let node = w.target.inner.store().node().to_string();
    let ldif = format!(
        "dn: uid={uid},ou=people,{node}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\n{extra}"
    );
    w.base.slapd().ldapadd(&ldif).expect("seed account");
}

/// A full sync now would change nothing: events left the node as a full sync makes it.
async fn full_plan_is_empty(w: &World, what: &str) {
    let (_, plan) = sync::compute(
        w.source().as_ref(),
        w.dir.as_ref(),
        &crate::support::conformance::mapping(),
        &opts(),
        &|_, _, _| {},
    )
    .await
    .unwrap();
    assert!(plan.steps.is_empty(), "{what}: {:#?}", plan.steps);
}

fn departments(sim: &SimHandle) -> Vec<i64> {
    sim.org()
        .departments
        .iter()
        .filter(|d| d.parent_id.is_some())
        .map(|d| d.id)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_hr_change_reaches_ldap_through_events_alone() {
    let Some(w) = world("events", 40).await else {
        return;
    };
    w.full_sync().await;
    let writes_after_full = w.dir.writes();
    let p = w.pipeline(true);
    let stream = w.stream(&p).await;
    let d = departments(&w.sim);
    let someone = w.sim.org().people[3].userid.clone();

    hire(&w.sim, "e1", "郑十", d[0]);
    w.converge("hire").await;
    w.sim
        .edit_user(
            &someone,
            UserWrite {
                title: Some("架构师".into()),
                ..Default::default()
            },
        )
        .unwrap();
    w.converge("edit").await;
    w.sim.move_user(&someone, vec![d[2], d[3]]).unwrap();
    w.converge("move").await;
    w.sim
        .update_department(
            d[4],
            DeptWrite {
                name: Some("新名字部".into()),
                ..Default::default()
            },
        )
        .unwrap();
    w.converge("department rename").await;
    w.sim.leave(&someone).unwrap();
    w.converge("leave").await;
    w.sim.rehire(&someone, Some(vec![d[1]])).unwrap();
    w.converge("rehire").await;
    assert!(w.dir.writes() > writes_after_full, "events did the writing");
    let st = p.status("t1").unwrap();
    assert!(st.active && st.reason == "Active", "{st:?}");
    assert!(st.applied >= 6, "{st:?}");
    stream.stop().await;
    w.base.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicates_reordering_a_drop_and_a_restart_mid_burst_converge() {
    let Some(w) = world("burst", 30).await else {
        return;
    };
    w.full_sync().await;
    let d = departments(&w.sim);
    let p = w.pipeline(true);
    let mut stream = w.stream(&p).await;
    w.sim.set_event_faults(EventFaults {
        duplicate: 20,
        reorder: 20,
        ..Default::default()
    });
    for i in 0..60 {
        hire(
            &w.sim,
            &format!("b{i}"),
            ["王芳", "李娜", "张伟"][i % 3],
            d[i % d.len()],
        );
        if i == 20 {
            // The connection drops mid-burst (no goodbye).
            w.sim.disconnect_streams(None, false);
        }
        if i == 40 {
            // The controller restarts mid-burst: the old connection dies with the process,
            // a new pipeline and connection take over, and what the old one had not
            // acknowledged is delivered again.
            stream.stop().await;
            let fresh = w.pipeline(true);
            stream = w.stream(&fresh).await;
            std::mem::forget(fresh);
        }
    }
    // Edits of the same people, out of order with their hires.
    for i in (0..60).step_by(7) {
        w.sim
            .edit_user(
                &format!("b{i}"),
                UserWrite {
                    title: Some(format!("职位{i}")),
                    ..Default::default()
                },
            )
            .unwrap();
    }
    w.converge("burst with faults").await;
    let c = w.sim.counters();
    assert!(c.stream_redeliveries + c.stream_acks_later > 0 || c.stream_connections_opened > 1);
    stream.stop().await;
    w.base.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_is_acknowledged_before_it_was_applied() {
    let Some(w) = world("ackafter", 20).await else {
        return;
    };
    w.full_sync().await;
    let d = departments(&w.sim);
    let p = w.pipeline(true);
    let stream = w.stream(&p).await;
    // The directory goes down: events cannot be applied, so none may be acknowledged.
    w.target.down.store(true, Ordering::SeqCst);
    w.sim.reset_counters();
    hire(&w.sim, "a1", "冯一", d[0]);
    hire(&w.sim, "a2", "陈二", d[1]);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let c = w.sim.counters();
    assert_eq!(c.stream_acks_success, 0, "acked while unapplied: {c:?}");
    assert!(c.stream_acks_later > 0, "refused for now: {c:?}");
    let st = p.status("t1").unwrap();
    assert_eq!(st.reason, "ApplyFailed", "{st:?}");
    assert!(w.diff().await.iter().any(|m| m.starts_with("a1")));
    // Back up: DingTalk delivers them again, they are applied, then acknowledged.
    w.target.down.store(false, Ordering::SeqCst);
    w.converge("after the directory came back").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(w.sim.counters().stream_acks_success >= 2);
    assert_eq!(p.status("t1").unwrap().reason, "Active");
    stream.stop().await;
    w.base.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_target_without_a_baseline_is_left_to_its_full_sync() {
    let Some(w) = world("nobaseline", 10).await else {
        return;
    };
    let p = w.pipeline(false);
    let stream = w.stream(&p).await;
    hire(&w.sim, "n1", "褚三", departments(&w.sim)[0]);
    for _ in 0..100 {
        if p.status("t1").unwrap().skipped > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let st = p.status("t1").unwrap();
    assert!(!st.active, "{st:?}");
    assert_eq!(st.reason, "NoBaseline");
    assert!(
        st.skipped >= 1 && st.message.contains("full sync"),
        "{st:?}"
    );
    assert_eq!(w.dir.writes(), 0, "nothing applied");
    assert!(w.dir.read().await.unwrap().people.is_empty());
    // The full sync runs, the baseline exists: events apply from then on.
    w.full_sync().await;
    p.set_target(
        "t1",
        LiveTarget {
            source: w.source(),
            dir: w.dir.clone(),
            mapping: Arc::new(crate::support::conformance::mapping()),
            opts: opts(),
            lock: Default::default(),
        },
        true,
    );
    hire(&w.sim, "n2", "卫四", departments(&w.sim)[1]);
    w.converge("after the baseline").await;
    assert_eq!(p.status("t1").unwrap().reason, "Active");
    stream.stop().await;
    w.base.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_outage_asks_for_a_full_sync() {
    let Some(w) = world("gap", 10).await else {
        return;
    };
    w.full_sync().await;
    let p = w.pipeline(true);
    // A gateway that refuses connections: the app token is revoked for the stream's app.
    let s = w.client.start_stream(
        StreamConfig {
            reconnect_min: Duration::from_millis(50),
            reconnect_max: Duration::from_millis(100),
            ..Default::default()
        },
        p.handler(),
    );
    p.watch_stream(&s, Duration::from_millis(600));
    s.wait_for(|st| *st == StreamState::Connected).await;
    w.base.sim.shutdown().await; // DingTalk unreachable from now on
    for _ in 0..100 {
        if p.status("t1").unwrap().reason == "GapDetected" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let st = p.status("t1").unwrap();
    assert_eq!(st.reason, "GapDetected", "{st:?}");
    assert!(!st.active);
    assert_eq!(p.take_full_sync_requests(), vec!["t1".to_string()]);
    assert!(p.take_full_sync_requests().is_empty(), "asked once");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn callbacks_apply_genuine_pushes_and_refuse_forged_ones() {
    let Some(w) = world("callback", 10).await else {
        return;
    };
    w.full_sync().await;
    let p = w.pipeline(true);
    let token = "cbtoken";
    let aes = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG";
    let crypto = CallbackCrypto::new(token, aes, sim::DEFAULT_APP_KEY).unwrap();
    let url = support::world::serve_callbacks(&w, p.handler(), (token, aes)).await;
    hire(&w.sim, "cb1", "蒋五", departments(&w.sim)[0]);
    w.converge("hire by callback").await;
    // A forged push naming someone to disable: refused, nothing applied.
    let victim = w.sim.org().people[0].userid.clone();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        .to_string();
    let forged = CallbackCrypto::new("guessed", aes, sim::DEFAULT_APP_KEY).unwrap();
    let enc = forged.encrypt(&format!(
        r#"{{"EventType":"user_leave_org","UserId":["{victim}"],"CorpId":"{CORP}"}}"#
    ));
    let writes = w.dir.writes();
    let r = reqwest::Client::new()
        .post(&url)
        .query(&[
            ("msg_signature", forged.sign(&now, "nf", &enc)),
            ("timestamp", now.clone()),
            ("nonce", "nf".into()),
        ])
        .json(&serde_json::json!({ "encrypt": enc }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Even a genuine-looking leave is re-read: DingTalk says the person still works there.
    let real = crypto.encrypt(&format!(
        r#"{{"EventType":"user_leave_org","UserId":["{victim}"],"CorpId":"{CORP}"}}"#
    ));
    let r = reqwest::Client::new()
        .post(&url)
        .query(&[
            ("msg_signature", crypto.sign(&now, "ng", &real)),
            ("timestamp", now.clone()),
            ("nonce", "ng".into()),
        ])
        .json(&serde_json::json!({ "encrypt": real }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(w.dir.writes(), writes, "nothing written for either");
    assert!(w.diff().await.is_empty());
    w.base.sim.shutdown().await;
}

/// A target of the controller's engine: the world's simulator into `node` of its slapd.
fn engine_target(w: &World, node: &str) -> dingsync::resolve::Resolved {
    use dingsync::{
        resolve::{Resolved, TargetKey},
        secret::Secret,
    };
    let server = w.slapd();
    let base = w.sim.base_url();
    let binding = serde_json::from_value(serde_json::json!({
        "corpId": CORP,
        "credentialsSecretRef": {"name": "app"},
        "endpoints": {"oapi": base, "api": base, "login": base},
    }))
    .unwrap();
    let spec = serde_json::from_value(serde_json::json!({
        "bindingRef": {"name": "acme"},
        "fieldMappingRef": {"name": "map"},
        "direction": "Inbound",
        "directory": {"ldap": {
            "url": server.url(),
            "bindDN": support::slapd::SERVICE_DN,
            "passwordSecretRef": {"name": "ldap", "key": "password"}
        }},
        "node": node,
        "deletion": {"maxPercent": 100},
    }))
    .unwrap();
    let mapping = serde_json::from_value(serde_json::json!({
        "user": {
            "uniqueName": {"attribute": "uid", "template": "{{ name | pinyin }}"},
            "attributes": [
                {"target": "cn", "template": "{{ name }}"},
                {"target": "sn", "template": "{{ name[:1] }}"}
            ]
        }
    }))
    .unwrap();
    Resolved {
        key: TargetKey::new("team", "t1"),
        spec,
        binding,
        mapping,
        app_key: sim::DEFAULT_APP_KEY.into(),
        app_secret: Secret::new(sim::DEFAULT_APP_SECRET),
        directory_secret: Secret::new(server.service_password()),
        directory_ca: None,
        approval: None,
        callback: None,
    }
}

/// The controller's engine end to end: one full sync, then the binding's Stream connection
/// feeds the target and the hire reaches LDAP by event; the view says so.
#[tokio::test(flavor = "multi_thread")]
async fn the_controller_engine_feeds_a_synced_target_from_its_binding_stream() {
    use dingsync::{
        controller::{SyncRequest, SyncRunner, Trigger, engine::Engine},
        resolve::TargetKey,
        secret::Secret,
    };
    let Some(w) = world("engine", 10).await else {
        return;
    };
    let server = w.slapd();
    let node = w.node("engine-node");
    let t1 = engine_target(&w, &node);
    let req = SyncRequest {
        target: t1.clone(),
        trigger: Trigger::Created,
        progress: None,
    };
    let metrics = std::sync::Arc::new(dingsync::controller::metrics::Metrics::default());
    let engine = Engine::new(metrics.clone(), Default::default());
    let out = engine.run(req.clone()).await.unwrap();
    assert!(out.complete);
    let view = engine.track_events(&t1, true).await.expect("fed by events");
    assert!(view.active, "{view:?}");
    assert_eq!(view.reason.as_str(), "Active");
    hire(&w.sim, "eng1", "韩六", departments(&w.sim)[0]);
    let mut found = false;
    for _ in 0..100 {
        let listing = server
            .search(&format!("ou=people,{node}"), "(cn=韩六)", &["cn"])
            .unwrap_or_default();
        if listing.contains("dn: ") {
            found = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(found, "the hire reached LDAP by event");
    assert!(!engine.full_sync_wanted(&t1.key));
    // Metrics: the event counted by type and outcome, its lag observed, the connection up.
    engine.track_events(&t1, true).await;
    let mut text = String::new();
    for _ in 0..40 {
        text = metrics.encode();
        if text.contains(r#"event_type="user_add_org",outcome="applied""#) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        text.contains(r#"event_type="user_add_org",outcome="applied""#),
        "{text}"
    );
    assert!(
        text.contains("dingsync_event_lag_seconds_count 1"),
        "{text}"
    );
    assert!(
        text.contains(r#"dingsync_event_connection_up{corp_id="dingsimcorp"} 1"#),
        "{text}"
    );
    // The same target through a binding with HTTP callbacks, served on the controller's port.
    let token = "ctrltoken";
    let aes = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG";
    let mut cb = t1.clone();
    cb.key = TargetKey::new("team", "t3");
    cb.spec.binding_ref.name = "acme-cb".into();
    cb.binding.events = serde_json::from_value(serde_json::json!({
        "delivery": "Callback", "callbackSecretRef": {"name": "cb"}
    }))
    .unwrap();
    cb.callback = Some((Secret::new(token), Secret::new(aes)));
    let view = engine
        .track_events(&cb, true)
        .await
        .expect("fed by callbacks");
    assert!(view.active, "{view:?}");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let routes = engine.callbacks();
    tokio::spawn(async move {
        let router = dingsync::controller::engine::callback_router(routes);
        let _ = axum::serve(listener, router).await;
    });
    let url = format!("http://{addr}/dingtalk/callback/team/acme-cb");
    w.sim
        .subscribe_callback(sim::DEFAULT_APP_KEY, &url, token, aes)
        .await
        .expect("check_url answered through the controller's route");
    let r = reqwest::Client::new()
        .post(format!("http://{addr}/dingtalk/callback/team/nobody"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = reqwest::Client::new()
        .post(&url)
        .query(&[("msg_signature", "0"), ("timestamp", "1"), ("nonce", "n")])
        .body(r#"{"encrypt":"AAAA"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "a forged push is refused");

    // Events off: not fed.
    let mut off = t1.clone();
    off.binding.events = serde_json::from_value(serde_json::json!({"delivery": "None"})).unwrap();
    off.key = TargetKey::new("team", "t2");
    assert!(engine.track_events(&off, true).await.is_none());

    // The replica stops leading: its connections stop, its callback routes go.
    assert!(engine.events_state("team", "acme").is_some());
    engine.release();
    assert!(engine.events_state("team", "acme").is_none());
    let r = reqwest::Client::new()
        .post(&url)
        .query(&[("msg_signature", "0"), ("timestamp", "1"), ("nonce", "n")])
        .body(r#"{"encrypt":"AAAA"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "no longer served here");
    w.base.sim.shutdown().await;
}

/// Homonyms hired through events get the names a full sync would give them: a name an
/// account dingsync did not create holds is taken, and people hired together get distinct
/// suffixes in userid order.
#[tokio::test(flavor = "multi_thread")]
async fn homonyms_hired_through_events_get_the_names_a_full_sync_gives() {
    let Some(w) = world("homonyms", 20).await else {
        return;
    };
    w.full_sync().await;
    seed_account(&w, "ouyangnana", "");
    let p = w.pipeline(true);
    let stream = w.stream(&p).await;
    let d = departments(&w.sim);
    hire(&w.sim, "hn1", "欧阳娜娜", d[0]);
    w.converge("first homonym").await;
    hire(&w.sim, "hn2", "欧阳娜娜", d[1]);
    hire(&w.sim, "hn3", "欧阳娜娜", d[1]);
    w.converge("two more at once").await;
    let names = uids(w.dir.as_ref()).await;
    let got: Vec<(&str, &str)> = ["hn1", "hn2", "hn3"]
        .iter()
        .map(|id| (*id, names.get(*id).map(String::as_str).unwrap_or("")))
        .collect();
    assert_eq!(
        got,
        [
            ("hn1", "ouyangnana2"),
            ("hn2", "ouyangnana3"),
            ("hn3", "ouyangnana4")
        ]
    );
    full_plan_is_empty(&w, "after homonym hires").await;
    stream.stop().await;
    w.base.sim.shutdown().await;
}

/// A hire whose mobile a match rule finds on an existing account is linked to it (the account
/// keeps its name), not given a new one; an account no rule finds stays unlinked.
#[tokio::test(flavor = "multi_thread")]
async fn a_hire_a_match_rule_finds_is_linked_to_the_existing_account() {
    let Some(w) = world("matchlink", 20).await else {
        return;
    };
    w.full_sync().await;
    seed_account(&w, "legacy.chen", "mobile: 13912345678\n");
    seed_account(&w, "bystander", "mobile: 13912340000\n");
    let p = w.pipeline(true);
    let stream = w.stream(&p).await;
    let d = departments(&w.sim);
    w.sim
        .hire(UserWrite {
            userid: Some("ml1".into()),
            name: Some("陈新".into()),
            mobile: Some("13912345678".into()),
            departments: Some(vec![d[0]]),
            ..Default::default()
        })
        .unwrap();
    w.converge("matched hire").await;
    let snap = w.dir.read().await.unwrap();
    let linked = snap
        .people
        .iter()
        .find(|p| p.id.as_deref() == Some("ml1"))
        .expect("linked");
    assert_eq!(linked.attrs.first("uid"), Some("legacy.chen"), "{linked:?}");
    let unlinked: Vec<_> = snap.unlinked.iter().map(|p| p.key.clone()).collect();
    assert_eq!(unlinked.len(), 1, "{unlinked:?}");
    assert!(unlinked[0].starts_with("uid=bystander"), "{unlinked:?}");
    full_plan_is_empty(&w, "after the matched hire").await;
    stream.stop().await;
    w.base.sim.shutdown().await;
}

/// A binding's Stream connection as the controller's engine reports it (for `EventsConnected`):
/// up after the first full sync; down, and announced, within seconds of the connection
/// dropping while DingTalk refuses new ones; up again once it accepts them.
#[tokio::test(flavor = "multi_thread")]
async fn the_engine_reports_and_announces_its_stream_going_down_and_up() {
    use dingsync::controller::{EventsState, SyncRequest, SyncRunner, Trigger, engine::Engine};
    use dingsync::sim::{FaultKind, FaultRule};
    let Some(w) = world("engine-state", 5).await else {
        return;
    };
    let node = w.node("engine-state-node");
    let t = engine_target(&w, &node);
    let metrics = std::sync::Arc::new(dingsync::controller::metrics::Metrics::default());
    let engine = Engine::new(metrics, Default::default());
    let mut changes = engine.events_changes().expect("announced");
    assert!(engine.events_changes().is_none(), "taken once");
    assert!(engine.events_state("team", "acme").is_none(), "no feed yet");
    let req = SyncRequest {
        target: t.clone(),
        trigger: Trigger::Created,
        progress: None,
    };
    assert!(engine.run(req).await.unwrap().complete);
    engine.track_events(&t, true).await.expect("fed by events");
    let state = || engine.events_state("team", "acme").expect("a feed").state;
    let within = |secs: u64| tokio::time::Instant::now() + Duration::from_secs(secs);

    let deadline = within(10);
    while state() != EventsState::Connected && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(state(), EventsState::Connected);
    while changes.try_recv().is_ok() {}

    // DingTalk drops the connection and refuses the next attempts to open one.
    let mut refuse = FaultRule::new(
        Some("/v1.0/gateway/connections/open"),
        FaultKind::Http { status: 502 },
    );
    refuse.times = 0;
    w.sim.add_fault(refuse);
    assert!(w.sim.disconnect_streams(None, false) > 0);
    let announced = tokio::time::timeout(Duration::from_secs(10), changes.recv()).await;
    assert_eq!(
        announced.expect("announced within 10 s"),
        Some(("team".to_string(), "acme".to_string()))
    );
    let deadline = within(10);
    while !matches!(state(), EventsState::Disconnected(_)) && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        matches!(state(), EventsState::Disconnected(_)),
        "down within 10 s: {:?}",
        state()
    );

    w.sim.clear_faults();
    let deadline = within(60);
    while state() != EventsState::Connected && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        state(),
        EventsState::Connected,
        "up again once DingTalk accepts it"
    );
    w.base.sim.shutdown().await;
}

/// An event batch the deletion gate holds writes nothing, says so in the target's status, and
/// hands itself to a full sync; that full sync is held the same way and, once its token is
/// approved, applies the removal.
#[tokio::test(flavor = "multi_thread")]
async fn a_held_event_batch_is_reported_and_applied_once_approved() {
    let Some(w) = world("held", 10).await else {
        return;
    };
    w.full_sync().await;
    let gated = Options {
        max_percent: 1,
        max_count: 0,
        ..Default::default()
    };
    let p = Pipeline::start(PipelineConfig::default());
    let live = || LiveTarget {
        source: w.source(),
        dir: w.dir.clone(),
        mapping: Arc::new(crate::support::conformance::mapping()),
        opts: gated.clone(),
        lock: w.lock.clone(),
    };
    p.set_target("t1", live(), true);
    let stream = w.stream(&p).await;
    let someone = w.sim.org().people[2].userid.clone();
    let writes = w.dir.writes();
    w.sim.leave(&someone).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while p.status("t1").unwrap().held == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let st = p.status("t1").unwrap();
    assert_eq!(st.held, 1, "{st:?}");
    assert!(st.message.contains("held by the deletion gate"), "{st:?}");
    assert_eq!(w.dir.writes(), writes, "a held batch writes nothing");
    assert_eq!(p.take_full_sync_requests(), ["t1"], "handed to a full sync");
    let enabled = |snap: &Snapshot| {
        snap.people
            .iter()
            .any(|e| e.id.as_deref() == Some(someone.as_str()) && !e.disabled)
    };
    assert!(enabled(&w.dir.read().await.unwrap()));

    // The full sync it was handed to: held too, with a token; approved, it applies.
    let mapping = crate::support::conformance::mapping();
    let run = |opts: Options| {
        let (source, dir, mapping) = (w.source(), w.dir.clone(), &mapping);
        async move {
            sync::run(
                source.as_ref(),
                dir.as_ref(),
                mapping,
                &opts,
                false,
                &|_, _, _| {},
            )
            .await
            .unwrap()
        }
    };
    let held = run(gated.clone())
        .await
        .held
        .expect("the full sync is held too");
    assert!(enabled(&w.dir.read().await.unwrap()));
    let approved = Options {
        approval: Some(held.token),
        ..gated.clone()
    };
    let report = run(approved).await;
    assert!(report.held.is_none() && report.failures.is_empty());
    assert!(
        !enabled(&w.dir.read().await.unwrap()),
        "applied once approved"
    );
    stream.stop().await;
    w.base.sim.shutdown().await;
}

/// A Service in front of two replicas: each push goes to the next one in turn.
async fn round_robin(replicas: [String; 2]) -> (String, Arc<[std::sync::atomic::AtomicUsize; 2]>) {
    use axum::{body::Bytes, extract::State, http::Uri, response::IntoResponse};
    type Front = (Arc<[String; 2]>, Arc<[std::sync::atomic::AtomicUsize; 2]>);
    async fn forward(State((to, hits)): State<Front>, uri: Uri, body: Bytes) -> impl IntoResponse {
        let total: usize = hits.iter().map(|h| h.load(Ordering::SeqCst)).sum();
        let i = total % 2;
        hits[i].fetch_add(1, Ordering::SeqCst);
        let r = reqwest::Client::new()
            .post(format!("{}{}", to[i], uri))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = axum::http::StatusCode::from_u16(r.status().as_u16()).unwrap();
        (status, r.bytes().await.unwrap())
    }
    let hits = Arc::new([Default::default(), Default::default()]);
    let app = axum::Router::new()
        .fallback(axum::routing::post(forward))
        .with_state((Arc::new(replicas), hits.clone()));
    (serve(app).await, hits)
}

/// Serves `app` on a loopback port; returns its base URL.
async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    base
}

/// The leader as a test names it, counting how often it was asked.
struct FixedLeader(Option<String>, std::sync::atomic::AtomicUsize);

#[async_trait]
impl dingsync::controller::engine::relay::LeaderLocator for FixedLeader {
    async fn leader(
        &self,
    ) -> Result<Option<String>, dingsync::controller::engine::relay::RelayError> {
        self.1.fetch_add(1, Ordering::SeqCst);
        Ok(self.0.clone())
    }
}

/// How many events of `event_type` the controller's metrics count as applied.
fn applied(metrics: &dingsync::controller::metrics::Metrics, event_type: &str) -> u64 {
    let wanted = format!(r#"event_type="{event_type}",outcome="applied""#);
    let text = metrics.encode();
    text.lines()
        .find(|l| l.contains(&wanted) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

/// Two replicas in Callback mode behind one Service: DingTalk's pushes land on either. The
/// one that does not lead checks each push and hands it to the leader, whose answer DingTalk
/// gets; every hire is applied exactly once, also when DingTalk retries a push through the
/// other replica; a forged push goes nowhere; with no leader the push is refused with 503 so
/// DingTalk retries it.
#[tokio::test(flavor = "multi_thread")]
async fn callback_pushes_to_either_replica_are_applied_exactly_once() {
    use dingsync::{
        controller::{
            SyncRequest, SyncRunner, Trigger,
            engine::{CallbackRoutes, Engine, callback_router, callback_router_relaying, relay},
        },
        resolve::Manifests,
        secret::Secret,
    };
    let Some(w) = world("replicas", 10).await else {
        return;
    };
    let server = w.slapd();
    let node = w.node("replicas-node");
    let (token, aes) = (
        "replicatoken",
        "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG",
    );
    let mut cb = engine_target(&w, &node);
    cb.spec.binding_ref.name = "acme-cb".into();
    cb.binding.events = serde_json::from_value(serde_json::json!({
        "delivery": "Callback", "callbackSecretRef": {"name": "cb"}
    }))
    .unwrap();
    cb.callback = Some((Secret::new(token), Secret::new(aes)));

    // The leader: the real engine, one full sync, then fed by its callback route.
    let metrics = Arc::new(dingsync::controller::metrics::Metrics::default());
    let engine = Engine::new(metrics.clone(), Default::default());
    let first = SyncRequest {
        target: cb.clone(),
        trigger: Trigger::Created,
        progress: None,
    };
    assert!(engine.run(first).await.unwrap().complete);
    assert!(engine.track_events(&cb, true).await.expect("fed").active);
    let leader = serve(callback_router(engine.callbacks())).await;

    // The other replica: no feed, the binding's objects as the API server holds them.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("objects.yaml"),
        format!(
            r#"
apiVersion: v1
kind: Secret
metadata: {{name: app, namespace: team}}
stringData: {{appKey: "{key}", appSecret: "{secret}"}}
---
apiVersion: v1
kind: Secret
metadata: {{name: cb, namespace: team}}
stringData: {{token: "{token}", aesKey: "{aes}"}}
---
apiVersion: dingsync.io/v1alpha1
kind: DingTalkBinding
metadata: {{name: acme-cb, namespace: team}}
spec: {binding}
"#,
            key = sim::DEFAULT_APP_KEY,
            secret = sim::DEFAULT_APP_SECRET,
            binding = serde_json::to_string(&cb.binding).unwrap(),
        ),
    )
    .unwrap();
    let objects = Arc::new(Manifests::load(dir.path()).unwrap());
    let locator = Arc::new(FixedLeader(
        Some(leader.clone()),
        std::sync::atomic::AtomicUsize::new(0),
    ));
    let relay = Arc::new(relay::CallbackRelay::new(
        objects.clone(),
        locator.clone(),
        "replica-b",
    ));
    let follower = serve(callback_router_relaying(
        Arc::new(CallbackRoutes::default()),
        Some(relay),
    ))
    .await;

    let (front, hits) = round_robin([leader.clone(), follower.clone()]).await;
    w.sim
        .subscribe_callback(
            sim::DEFAULT_APP_KEY,
            &format!("{front}/dingtalk/callback/team/acme-cb"),
            token,
            aes,
        )
        .await
        .expect("check_url answered through the Service");
    let names = ["甲一", "乙二", "丙三", "丁四", "戊五", "己六"];
    for (i, name) in names.iter().enumerate() {
        hire(&w.sim, &format!("rep{i}"), name, departments(&w.sim)[0]);
    }
    let mut missing = names.to_vec();
    for _ in 0..200 {
        missing.retain(|n| {
            let found = server
                .search(&format!("ou=people,{node}"), &format!("(cn={n})"), &["cn"])
                .unwrap_or_default();
            found.matches("dn: ").count() != 1
        });
        if missing.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(missing.is_empty(), "not in LDAP: {missing:?}");
    let at_each = [0, 1].map(|i| hits[i].load(Ordering::SeqCst));
    assert!(
        at_each.iter().all(|n| *n >= 3),
        "pushes per replica: {at_each:?}"
    );
    assert!(
        locator.1.load(Ordering::SeqCst) >= 3,
        "the follower handed pushes on"
    );
    assert_eq!(applied(&metrics, "user_add_org"), names.len() as u64);

    // DingTalk retries a push it got no answer for, through the other replica: acknowledged,
    // not applied again.
    let crypto = CallbackCrypto::new(token, aes, sim::DEFAULT_APP_KEY).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        .to_string();
    let victim = w.sim.org().people[0].userid.clone();
    let push = |c: &CallbackCrypto, nonce: &str| {
        let enc = c.encrypt(&format!(
            r#"{{"EventType":"user_modify_org","UserId":["{victim}"],"CorpId":"{CORP}"}}"#
        ));
        let query = [
            ("msg_signature", c.sign(&now, nonce, &enc)),
            ("timestamp", now.clone()),
            ("nonce", nonce.into()),
        ];
        (query, serde_json::json!({ "encrypt": enc }))
    };
    let (query, body) = push(&crypto, "retry");
    for base in [&leader, &follower, &follower] {
        let r = reqwest::Client::new()
            .post(format!("{base}/dingtalk/callback/team/acme-cb"))
            .query(&query)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{base}");
        let reply: dingsync::dingtalk::callback::EncryptedReply = r.json().await.unwrap();
        assert!(crypto.verify_success_reply(&reply).unwrap(), "{base}");
    }
    let mut modified = 0;
    for _ in 0..40 {
        modified = applied(&metrics, "user_modify_org");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        modified, 1,
        "a push retried through the other replica is applied once"
    );

    // A forged push is refused by the replica that got it; the leader is never asked.
    let asked = locator.1.load(Ordering::SeqCst);
    let forged = CallbackCrypto::new("guessed", aes, sim::DEFAULT_APP_KEY).unwrap();
    let (query, body) = push(&forged, "forged");
    let r = reqwest::Client::new()
        .post(format!("{follower}/dingtalk/callback/team/acme-cb"))
        .query(&query)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        locator.1.load(Ordering::SeqCst),
        asked,
        "forged: not handed on"
    );

    // No replica leads (the Lease is changing hands): 503, so DingTalk pushes it again.
    let lost = Arc::new(FixedLeader(None, Default::default()));
    let relay = Arc::new(relay::CallbackRelay::new(objects, lost, "replica-c"));
    let orphan = serve(callback_router_relaying(
        Arc::new(CallbackRoutes::default()),
        Some(relay),
    ))
    .await;
    let (query, body) = push(&crypto, "orphan");
    let r = reqwest::Client::new()
        .post(format!("{orphan}/dingtalk/callback/team/acme-cb"))
        .query(&query)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    // A binding no replica knows: 404, as before.
    let r = reqwest::Client::new()
        .post(format!("{orphan}/dingtalk/callback/team/nobody"))
        .query(&query)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    w.base.sim.shutdown().await;
}
