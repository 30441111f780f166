//! Reconcile logic against an in-memory Kubernetes API (kube-fake-client): every condition
//! path of the three kinds, with the DingTalk and engine seams faked at the trait level.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use async_trait::async_trait;
use dingsync::api::Reason;
use dingsync::{
    api::{
        DingTalkBinding, DingTalkBindingSpec, FieldMapping, FieldMappingSpec, LocalRef,
        SecretKeyRef, SyncTarget, SyncTargetSpec,
        binding::{CredentialsSecretRef, Permissions},
        find_condition,
        mapping::{AttributeRule, UniqueName, UserMapping},
        target::{
            Direction, DirectorySpec, Failure, LdapSpec, PendingApproval, ReasonCount, RunSummary,
        },
    },
    cli::{
        approve,
        reports::{self, Format},
    },
    controller::{
        Context, CredentialChecker, CredentialError, EventsState, EventsView, IncrementalView,
        SyncOutcome, SyncRequest, SyncRunError, SyncRunner, binding, mapping, metrics::Metrics,
        target,
    },
    report::{ReportFailure, RunKind, RunReport},
    resolve::{Resolved, TargetKey},
};
use k8s_openapi::{
    ByteString,
    api::core::v1::{ConfigMap, Secret},
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
};
use kube::{Api, Client, api::ObjectMeta, runtime::controller::Action};
use kube_fake_client::ClientBuilder;

const NS: &str = "team";

// ---- fakes at the trait level ----

struct FakeChecker;

#[async_trait]
impl CredentialChecker for FakeChecker {
    async fn check(
        &self,
        _: &DingTalkBindingSpec,
        key: &str,
        secret: &dingsync::secret::Secret,
    ) -> Result<Permissions, CredentialError> {
        match (key, secret.expose()) {
            ("good-key", "good-secret") => Ok(Permissions {
                contact_read: true,
                mobile: true,
                email: true,
                ..Default::default()
            }),
            ("write-key", _) => Ok(Permissions {
                contact_read: true,
                contact_write: true,
                mobile: true,
                email: true,
                ..Default::default()
            }),
            ("noread-key", _) => Ok(Permissions {
                missing: vec!["qyapi_get_department_list".into()],
                ..Default::default()
            }),
            ("down-key", _) => Err(CredentialError::Unreachable("connection refused".into())),
            _ => Err(CredentialError::Invalid(
                "errcode 40089: invalid appkey or appsecret".into(),
            )),
        }
    }
}

#[derive(Default)]
struct FakeRunner {
    /// Answer every run with this error instead of a result.
    fail: Option<SyncRunError>,
    /// Fail this many runs (transiently) before succeeding.
    fail_first: usize,
    /// The event feed says events were missed (once).
    gap: std::sync::atomic::AtomicBool,
    /// Hold every run by the deletion gate unless it carries this approval token.
    hold_unless: Option<&'static str>,
    calls: AtomicUsize,
    /// Targets asked to be kept fed by their binding's events.
    feeds: AtomicUsize,
    last: Mutex<Option<SyncRequest>>,
    /// What the binding's event connection is said to be.
    events: Mutex<Option<EventsView>>,
    /// Every run fails for this many people (a template error each).
    failing: usize,
    /// Reports of event batches and polls, handed over at the next reconcile.
    reports: Mutex<Vec<RunReport>>,
    /// The content synchronisation cookie the runner reached, and the one it was told to
    /// resume from.
    cookie: Mutex<Option<String>>,
    resumed: Mutex<Option<String>>,
}

#[async_trait]
impl SyncRunner for FakeRunner {
    async fn run(&self, request: SyncRequest) -> Result<SyncOutcome, SyncRunError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        if call < self.fail_first {
            return Err(SyncRunError::Transient(format!(
                "directory unavailable (attempt {})",
                call + 1
            )));
        }
        if let Some(p) = &request.progress {
            p("Applying", 2, Some(7));
            // Long enough for a watcher to see the live figures.
            tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        }
        let approved = request.target.approval.as_deref() == self.hold_unless;
        *self.last.lock().unwrap() = Some(request);
        if let Some(e) = &self.fail {
            return Err(e.clone());
        }
        if let (Some(token), false) = (self.hold_unless, approved) {
            return Ok(SyncOutcome {
                people: 3,
                complete: true,
                held: Some(PendingApproval {
                    removals: 2,
                    owned: 3,
                    token: token.into(),
                    message: "2 of 3 people would be disabled".into(),
                }),
                held_removals: vec!["disable 张三".into(), "disable 李四".into()],
                ..Default::default()
            });
        }
        Ok(SyncOutcome {
            summary: RunSummary {
                created: 3,
                unchanged: 1,
                failed: self.failing as i64,
                ..Default::default()
            },
            failures: (0..self.failing).map(template_failure).collect(),
            people: 3,
            departments: 1,
            complete: true,
            ..Default::default()
        })
    }

    fn take_reports(&self, _: &TargetKey) -> Vec<RunReport> {
        std::mem::take(&mut *self.reports.lock().unwrap())
    }

    async fn track_events(&self, _: &Resolved, baseline: bool) -> Option<IncrementalView> {
        self.feeds.fetch_add(1, Ordering::SeqCst);
        Some(if baseline {
            IncrementalView {
                active: true,
                reason: Reason::Active,
                message: "events are applied as they arrive".into(),
            }
        } else {
            IncrementalView {
                active: false,
                reason: Reason::NoBaseline,
                message: "waiting for a full sync".into(),
            }
        })
    }

    fn full_sync_wanted(&self, _: &TargetKey) -> bool {
        self.gap.swap(false, Ordering::SeqCst)
    }

    fn events_state(&self, _: &str, _: &str) -> Option<EventsView> {
        self.events.lock().unwrap().clone()
    }

    fn content_sync_cookie(&self, _: &TargetKey) -> Option<String> {
        self.cookie.lock().unwrap().clone()
    }

    fn resume_content_sync(&self, _: &TargetKey, cookie: String) {
        *self.resumed.lock().unwrap() = Some(cookie);
    }
}

/// Person `i`'s mail template failed.
fn template_failure(i: usize) -> Failure {
    Failure {
        kind: "User".into(),
        id: format!("user{i:05}"),
        name: Some(format!("员工{i}")),
        reason: "TemplateError".into(),
        message: format!("attribute mail: undefined value `email` for user{i:05}"),
        dn: Some(format!("uid=user{i:05},ou=people,dc=example,dc=com")),
    }
}

// ---- fixtures ----

fn meta(name: &str, created: i64) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(NS.into()),
        generation: Some(1),
        creation_timestamp: Some(Time(jiff::Timestamp::from_second(created).unwrap())),
        ..Default::default()
    }
}

fn secret(name: &str, data: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: meta(name, 1),
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..Default::default()
    }
}

fn binding_obj(name: &str, corp: &str, secret: &str, created: i64) -> DingTalkBinding {
    DingTalkBinding {
        metadata: meta(name, created),
        spec: DingTalkBindingSpec {
            corp_id: corp.into(),
            credentials_secret_ref: CredentialsSecretRef {
                name: secret.into(),
                app_key_key: "appKey".into(),
                app_secret_key: "appSecret".into(),
            },
            ..Default::default()
        },
        status: None,
    }
}

fn mapping_obj(name: &str, template: &str) -> FieldMapping {
    FieldMapping {
        metadata: meta(name, 1),
        spec: FieldMappingSpec {
            direction: Default::default(),
            user: UserMapping {
                attributes: vec![AttributeRule {
                    target: "cn".into(),
                    template: template.into(),
                    ..Default::default()
                }],
                match_rules: vec![],
                unique_name: UniqueName {
                    attribute: "uid".into(),
                    template: "{{ name | pinyin }}".into(),
                    ..Default::default()
                },
            },
            department: None,
        },
        status: None,
    }
}

fn target_obj(name: &str, node: &str, created: i64) -> SyncTarget {
    SyncTarget {
        metadata: meta(name, created),
        spec: SyncTargetSpec {
            binding_ref: LocalRef {
                name: "acme".into(),
            },
            field_mapping_ref: LocalRef { name: "map".into() },
            direction: Direction::Inbound,
            directory: DirectorySpec {
                ldap: Some(LdapSpec {
                    url: "ldap://ldap.example.com:389".into(),
                    bind_dn: "cn=admin,dc=example,dc=com".into(),
                    password_secret_ref: SecretKeyRef {
                        name: "ldap".into(),
                        key: "password".into(),
                    },
                    ..Default::default()
                }),
                scim: None,
                active_directory: None,
            },
            node: node.into(),
            ..Default::default()
        },
        status: None,
    }
}

struct World {
    client: Client,
    ctx: Arc<Context>,
    runner: Arc<FakeRunner>,
}

async fn world(
    secrets: Vec<Secret>,
    bindings: Vec<DingTalkBinding>,
    mappings: Vec<FieldMapping>,
    targets: Vec<SyncTarget>,
) -> World {
    let client = ClientBuilder::new()
        .with_resource::<DingTalkBinding>()
        .with_resource::<FieldMapping>()
        .with_resource::<SyncTarget>()
        .with_status_subresource::<DingTalkBinding>()
        .with_status_subresource::<FieldMapping>()
        .with_status_subresource::<SyncTarget>()
        .with_objects(secrets)
        .with_objects(bindings)
        .with_objects(mappings)
        .with_objects(targets)
        .build()
        .await
        .expect("fake client");
    let runner = Arc::new(FakeRunner::default());
    let ctx = Arc::new(Context::new(
        client.clone(),
        Arc::new(FakeChecker),
        Arc::new(mapping::TemplateValidator),
        runner.clone(),
        None,
        Arc::new(Metrics::default()),
    ));
    World {
        client,
        ctx,
        runner,
    }
}

impl World {
    /// The same world, its syncs run by `runner`.
    fn with_runner(&mut self, runner: Arc<FakeRunner>) {
        self.ctx = Arc::new(Context::new(
            self.client.clone(),
            Arc::new(FakeChecker),
            Arc::new(mapping::TemplateValidator),
            runner.clone(),
            None,
            Arc::new(Metrics::default()),
        ));
        self.runner = runner;
    }

    async fn binding(&self, name: &str) -> DingTalkBinding {
        Api::<DingTalkBinding>::namespaced(self.client.clone(), NS)
            .get(name)
            .await
            .unwrap()
    }
    async fn mapping(&self, name: &str) -> FieldMapping {
        Api::<FieldMapping>::namespaced(self.client.clone(), NS)
            .get(name)
            .await
            .unwrap()
    }
    async fn target(&self, name: &str) -> SyncTarget {
        Api::<SyncTarget>::namespaced(self.client.clone(), NS)
            .get(name)
            .await
            .unwrap()
    }
    async fn reconcile_binding(&self, name: &str) {
        binding::reconcile(Arc::new(self.binding(name).await), self.ctx.clone())
            .await
            .unwrap();
    }
    async fn reconcile_mapping(&self, name: &str) {
        mapping::reconcile(Arc::new(self.mapping(name).await), self.ctx.clone())
            .await
            .unwrap();
    }
    async fn reconcile_target(&self, name: &str) {
        target::reconcile(Arc::new(self.target(name).await), self.ctx.clone())
            .await
            .unwrap();
    }
}

fn cond(conds: &[Condition], type_: &str) -> Condition {
    find_condition(conds, type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {conds:#?}"))
        .clone()
}

fn binding_ready(b: &DingTalkBinding) -> Condition {
    cond(
        &b.status.as_ref().expect("status written").conditions,
        "Ready",
    )
}

fn target_ready(t: &SyncTarget) -> Condition {
    cond(
        &t.status.as_ref().expect("status written").conditions,
        "Ready",
    )
}

fn app_secret(key: &str, value: &str) -> Secret {
    secret("app", &[("appKey", key), ("appSecret", value)])
}

// ---- DingTalkBinding ----

#[tokio::test]
async fn binding_without_its_secret_is_not_ready() {
    let w = world(
        vec![],
        vec![binding_obj("acme", "dingacme", "app", 10)],
        vec![],
        vec![],
    )
    .await;
    w.reconcile_binding("acme").await;
    let b = w.binding("acme").await;
    let ready = binding_ready(&b);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "SecretNotFound")
    );
    assert!(ready.message.contains("team/app"), "{}", ready.message);
    assert_eq!(ready.observed_generation, Some(1));
    assert_eq!(
        cond(&b.status.unwrap().conditions, "CredentialsValid").status,
        "False"
    );
}

#[tokio::test]
async fn binding_with_a_missing_key_names_it() {
    let w = world(
        vec![secret("app", &[("appKey", "good-key")])],
        vec![binding_obj("acme", "dingacme", "app", 10)],
        vec![],
        vec![],
    )
    .await;
    w.reconcile_binding("acme").await;
    let ready = binding_ready(&w.binding("acme").await);
    assert_eq!(ready.reason, "SecretKeyMissing");
    assert!(ready.message.contains("appSecret"), "{}", ready.message);
}

#[tokio::test]
async fn binding_with_bad_credentials_is_refused_without_leaking_them() {
    let mut w = world(
        vec![app_secret("bad-key", "wrong-secret-value")],
        vec![binding_obj("acme", "dingacme", "app", 10)],
        vec![],
        vec![],
    )
    .await;
    // With an Event recorder this time, to look at the Events too.
    w.ctx = Arc::new(Context::new(
        w.client.clone(),
        Arc::new(FakeChecker),
        Arc::new(mapping::TemplateValidator),
        w.runner.clone(),
        Some(kube::runtime::events::Recorder::new(
            w.client.clone(),
            kube::runtime::events::Reporter {
                controller: "dingsync".into(),
                instance: Some("test".into()),
            },
        )),
        Arc::new(Metrics::default()),
    ));
    w.reconcile_binding("acme").await;
    let b = w.binding("acme").await;
    let ready = binding_ready(&b);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "InvalidCredentials")
    );
    let status = serde_json::to_string(&b.status).unwrap();
    assert!(
        !status.contains("wrong-secret-value"),
        "secret leaked into status: {status}"
    );
    // Nor into Events or metrics.
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(w.client.clone(), NS);
    let listed = events.list(&Default::default()).await.unwrap();
    let text = serde_json::to_string(&listed.items).unwrap();
    assert!(!listed.items.is_empty(), "the refusal is an Event");
    assert!(
        !text.contains("wrong-secret-value"),
        "secret in Events: {text}"
    );
    let metrics = w.ctx.metrics.encode();
    assert!(!metrics.is_empty());
    assert!(!metrics.contains("wrong-secret-value"), "secret in metrics");
}

#[tokio::test]
async fn binding_with_unreachable_api_is_retried() {
    let w = world(
        vec![app_secret("down-key", "x")],
        vec![binding_obj("acme", "dingacme", "app", 10)],
        vec![],
        vec![],
    )
    .await;
    let action = binding::reconcile(Arc::new(w.binding("acme").await), w.ctx.clone())
        .await
        .unwrap();
    assert_eq!(
        binding_ready(&w.binding("acme").await).reason,
        "ApiUnreachable"
    );
    assert_ne!(
        action,
        kube::runtime::controller::Action::await_change(),
        "transient errors requeue"
    );
}

#[tokio::test]
async fn binding_without_read_permission_names_it() {
    let w = world(
        vec![app_secret("noread-key", "x")],
        vec![binding_obj("acme", "dingacme", "app", 10)],
        vec![],
        vec![],
    )
    .await;
    w.reconcile_binding("acme").await;
    let b = w.binding("acme").await;
    let perms = cond(&b.status.as_ref().unwrap().conditions, "PermissionsGranted");
    assert_eq!(perms.status, "False");
    assert!(
        perms.message.contains("qyapi_get_department_list"),
        "{}",
        perms.message
    );
    assert_eq!(binding_ready(&b).reason, "PermissionMissing");
}

#[tokio::test]
async fn binding_happy_path_is_ready_and_keeps_transition_time() {
    let w = world(
        vec![app_secret("good-key", "good-secret")],
        vec![binding_obj("acme", "dingacme", "app", 10)],
        vec![],
        vec![target_obj("t1", "ou=a,dc=x", 5)],
    )
    .await;
    w.reconcile_binding("acme").await;
    let first = w.binding("acme").await;
    let ready = binding_ready(&first);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", "Valid")
    );
    let st = first.status.clone().unwrap();
    assert!(st.permissions.as_ref().unwrap().contact_read);
    assert_eq!(st.targets, vec!["t1".to_string()]);
    assert_eq!(cond(&st.conditions, "CredentialsValid").status, "True");

    // Nothing changed: same transition time, and no write at all (resourceVersion unchanged).
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    w.reconcile_binding("acme").await;
    let second = w.binding("acme").await;
    assert_eq!(
        binding_ready(&second).last_transition_time,
        ready.last_transition_time
    );
    assert_eq!(
        second.metadata.resource_version,
        first.metadata.resource_version
    );
}

async fn events_connected(w: &World) -> (String, String, String) {
    let b = w.binding("acme").await;
    let c = cond(&b.status.unwrap().conditions, "EventsConnected");
    (c.status, c.reason, c.message)
}

#[tokio::test]
async fn events_connected_follows_the_bindings_event_connection() {
    let w = world(
        vec![app_secret("good-key", "good-secret")],
        vec![binding_obj("acme", "dingacme", "app", 10)],
        vec![],
        vec![],
    )
    .await;
    w.reconcile_binding("acme").await;
    let (status, reason, message) = events_connected(&w).await;
    assert_eq!((status.as_str(), reason.as_str()), ("False", "Connecting"));
    assert!(message.contains("full sync"), "{message}");

    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_780_000_000);
    *w.runner.events.lock().unwrap() = Some(EventsView {
        state: EventsState::Connected,
        last_event: Some(at),
    });
    w.reconcile_binding("acme").await;
    let (status, reason, message) = events_connected(&w).await;
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Connected"));
    assert!(message.contains("2026-05-28T20:26:40Z"), "{message}");

    *w.runner.events.lock().unwrap() = Some(EventsView {
        state: EventsState::Disconnected("connection reset by peer".into()),
        last_event: Some(at),
    });
    w.reconcile_binding("acme").await;
    let (status, reason, message) = events_connected(&w).await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "Disconnected")
    );
    assert!(message.contains("connection reset by peer"), "{message}");

    let mut off = w.binding("acme").await;
    off.spec.events =
        Some(serde_json::from_value(serde_json::json!({"delivery": "None"})).unwrap());
    Api::<DingTalkBinding>::namespaced(w.client.clone(), NS)
        .replace("acme", &Default::default(), &off)
        .await
        .unwrap();
    w.reconcile_binding("acme").await;
    let (status, reason, _) = events_connected(&w).await;
    assert_eq!((status.as_str(), reason.as_str()), ("False", "EventsOff"));
}

#[tokio::test]
async fn a_second_binding_of_one_corp_is_a_conflict() {
    let w = world(
        vec![app_secret("good-key", "good-secret")],
        vec![
            binding_obj("acme", "dingacme", "app", 10),
            binding_obj("acme-again", "DINGACME", "app", 20),
        ],
        vec![],
        vec![],
    )
    .await;
    w.reconcile_binding("acme").await;
    w.reconcile_binding("acme-again").await;
    assert_eq!(
        binding_ready(&w.binding("acme").await).status,
        "True",
        "the older binding keeps the corp"
    );
    let dup = binding_ready(&w.binding("acme-again").await);
    assert_eq!(
        (dup.status.as_str(), dup.reason.as_str()),
        ("False", "Conflict")
    );
    assert!(dup.message.contains("acme"), "{}", dup.message);
}

// ---- guards across namespaces ----

const OTHER_NS: &str = "other-team";

/// `obj` moved to namespace `ns`.
fn in_ns<K: kube::Resource>(mut obj: K, ns: &str) -> K {
    obj.meta_mut().namespace = Some(ns.into());
    obj
}

impl World {
    async fn binding_in(&self, ns: &str, name: &str) -> DingTalkBinding {
        let api = Api::<DingTalkBinding>::namespaced(self.client.clone(), ns);
        api.get(name).await.unwrap()
    }
    async fn target_in(&self, ns: &str, name: &str) -> SyncTarget {
        let api = Api::<SyncTarget>::namespaced(self.client.clone(), ns);
        api.get(name).await.unwrap()
    }
    async fn reconcile_binding_in(&self, ns: &str, name: &str) {
        let b = Arc::new(self.binding_in(ns, name).await);
        binding::reconcile(b, self.ctx.clone()).await.unwrap();
    }
    async fn reconcile_target_in(&self, ns: &str, name: &str) {
        let t = Arc::new(self.target_in(ns, name).await);
        target::reconcile(t, self.ctx.clone()).await.unwrap();
    }
}

/// A world with the Secrets and the mapping in both namespaces.
async fn two_namespace_world(bindings: Vec<DingTalkBinding>, targets: Vec<SyncTarget>) -> World {
    let mut secrets = vec![];
    for ns in [NS, OTHER_NS] {
        secrets.push(in_ns(app_secret("good-key", "good-secret"), ns));
        secrets.push(in_ns(secret("ldap", &[("password", "bind-pw")]), ns));
    }
    let mappings = [NS, OTHER_NS].map(|ns| in_ns(mapping_obj("map", "{{ name }}"), ns));
    world(secrets, bindings, mappings.to_vec(), targets).await
}

#[tokio::test]
async fn one_corp_bound_in_two_namespaces_is_a_conflict_and_its_events_are_not_split() {
    let w = two_namespace_world(
        vec![
            binding_obj("acme", "dingacme", "app", 10),
            in_ns(binding_obj("acme", "DingAcme", "app", 20), OTHER_NS),
        ],
        vec![
            target_obj("t1", "ou=acme,dc=example,dc=com", 5),
            in_ns(target_obj("t2", "ou=acme,dc=other,dc=com", 6), OTHER_NS),
        ],
    )
    .await;
    w.reconcile_binding_in(OTHER_NS, "acme").await;
    w.reconcile_binding("acme").await;
    assert_eq!(binding_ready(&w.binding("acme").await).status, "True");
    let dup = binding_ready(&w.binding_in(OTHER_NS, "acme").await);
    assert_eq!(
        (dup.status.as_str(), dup.reason.as_str()),
        ("False", "Conflict")
    );
    assert!(
        dup.message.contains(&format!("{NS}/acme")),
        "{}",
        dup.message
    );

    // Only the holder's target runs and is fed events.
    w.reconcile_target_in(OTHER_NS, "t2").await;
    let waiting = target_ready(&w.target_in(OTHER_NS, "t2").await);
    assert_eq!(waiting.reason, "BindingNotReady", "{}", waiting.message);
    assert_eq!(w.runner.calls.load(Ordering::SeqCst), 0);
    assert_eq!(w.runner.feeds.load(Ordering::SeqCst), 0);
    w.reconcile_target("t1").await;
    assert_eq!(w.runner.calls.load(Ordering::SeqCst), 1);
    assert_eq!(w.runner.feeds.load(Ordering::SeqCst), 1);

    // The holder gone, the newer binding takes the corp on its next look.
    Api::<DingTalkBinding>::namespaced(w.client.clone(), NS)
        .delete("acme", &Default::default())
        .await
        .unwrap();
    w.reconcile_binding_in(OTHER_NS, "acme").await;
    let ready = binding_ready(&w.binding_in(OTHER_NS, "acme").await);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", "Valid")
    );
}

#[tokio::test]
async fn overlapping_nodes_in_two_namespaces_conflict_on_one_server_only() {
    let mut elsewhere = in_ns(
        target_obj("elsewhere", "ou=acme,dc=example,dc=com", 8),
        OTHER_NS,
    );
    elsewhere.spec.directory.ldap.as_mut().unwrap().url = "ldap://other.example.com".into();
    let mut suspended = target_obj("first", "ou=acme,dc=example,dc=com", 5);
    suspended.spec.suspend = true;
    let w = two_namespace_world(
        vec![
            binding_obj("acme", "dingacme", "app", 10),
            in_ns(binding_obj("acme", "dingbeta", "app", 11), OTHER_NS),
        ],
        vec![
            suspended,
            in_ns(
                target_obj("nested", "ou=Sales, ou=ACME,dc=example,dc=com", 6),
                OTHER_NS,
            ),
            elsewhere,
        ],
    )
    .await;
    w.reconcile_binding("acme").await;
    w.reconcile_binding_in(OTHER_NS, "acme").await;
    w.reconcile_target_in(OTHER_NS, "nested").await;
    w.reconcile_target_in(OTHER_NS, "elsewhere").await;
    // A suspended target keeps its node: the newer one in another namespace cannot take it.
    let nested = target_ready(&w.target_in(OTHER_NS, "nested").await);
    assert_eq!(
        (nested.status.as_str(), nested.reason.as_str()),
        ("False", "Conflict")
    );
    assert!(
        nested.message.contains(&format!("{NS}/first")),
        "{}",
        nested.message
    );
    let other = target_ready(&w.target_in(OTHER_NS, "elsewhere").await);
    assert_eq!(other.status, "True", "{}", other.message);
    assert_eq!(w.runner.calls.load(Ordering::SeqCst), 1);
}

// ---- FieldMapping ----

#[tokio::test]
async fn mapping_with_a_broken_template_is_invalid_naming_the_rule() {
    let w = world(
        vec![],
        vec![],
        vec![
            mapping_obj("map", "{{ name | upper "),
            mapping_obj("ok", "{{ name }}"),
        ],
        vec![],
    )
    .await;
    w.reconcile_mapping("map").await;
    w.reconcile_mapping("ok").await;
    let bad = cond(&w.mapping("map").await.status.unwrap().conditions, "Ready");
    assert_eq!(
        (bad.status.as_str(), bad.reason.as_str()),
        ("False", "InvalidRule")
    );
    assert!(
        bad.message.contains("user.attributes[0] (cn)"),
        "{}",
        bad.message
    );
    let good = cond(&w.mapping("ok").await.status.unwrap().conditions, "Ready");
    assert_eq!(
        (good.status.as_str(), good.reason.as_str()),
        ("True", "Valid")
    );
}

// ---- SyncTarget ----

async fn ready_world(targets: Vec<SyncTarget>, mapping_template: &str) -> World {
    let w = world(
        vec![
            app_secret("good-key", "good-secret"),
            secret("ldap", &[("password", "bind-pw")]),
        ],
        vec![binding_obj("acme", "dingacme", "app", 10)],
        vec![mapping_obj("map", mapping_template)],
        targets,
    )
    .await;
    w.reconcile_binding("acme").await;
    w
}

#[tokio::test]
async fn target_happy_path_syncs_once_and_reports() {
    let w = ready_world(
        vec![target_obj("t1", "ou=acme,dc=example,dc=com", 5)],
        "{{ name }}",
    )
    .await;
    w.reconcile_target("t1").await;
    let t = w.target("t1").await;
    let ready = target_ready(&t);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", "Synced")
    );
    let st = t.status.clone().unwrap();
    assert_eq!(cond(&st.conditions, "Synced").status, "True");
    assert_eq!(st.last_sync.as_ref().unwrap().created, 3);
    assert_eq!(st.last_sync.as_ref().unwrap().trigger, "Created");
    assert_eq!(st.people, Some(3));
    assert!(st.baseline.is_some() && st.last_successful_sync_time.is_some());
    assert_eq!(w.runner.calls.load(Ordering::SeqCst), 1);
    let req = w.runner.last.lock().unwrap().clone().unwrap();
    assert_eq!(req.target.directory_secret.expose(), "bind-pw");
    assert_eq!(req.target.app_key, "good-key");
    assert_eq!(
        format!("{req:?}").matches("good-secret").count(),
        0,
        "secrets never print"
    );

    // Nothing changed and the interval has not passed: no run, no status write.
    w.reconcile_target("t1").await;
    assert_eq!(w.runner.calls.load(Ordering::SeqCst), 1);
    // Both reconciles counted and timed.
    let metrics = w.ctx.metrics.encode();
    for series in [
        r#"dingsync_reconciles_total{kind="SyncTarget"} 2"#,
        r#"dingsync_reconcile_duration_seconds_count{kind="SyncTarget"} 2"#,
    ] {
        assert!(metrics.contains(series), "{series} in {metrics}");
    }
    let again = w.target("t1").await;
    assert_eq!(again.metadata.resource_version, t.metadata.resource_version);
    assert_eq!(
        target_ready(&again).last_transition_time,
        ready.last_transition_time
    );
}

/// The cookie a followed directory's session reached is kept in status, and a restarted
/// controller (a fresh runner) is told to resume from it.
#[tokio::test]
async fn the_content_sync_cookie_is_kept_in_status_and_resumed_after_a_restart() {
    let mut w = ready_world(
        vec![target_obj("t1", "ou=acme,dc=example,dc=com", 5)],
        "{{ name }}",
    )
    .await;
    w.reconcile_target("t1").await;
    *w.runner.cookie.lock().unwrap() = Some("rid=000,csn=20261205".into());
    w.reconcile_target("t1").await;
    let st = w.target("t1").await.status.unwrap();
    assert_eq!(
        st.content_sync_cookie.as_deref(),
        Some("rid=000,csn=20261205")
    );
    let restarted = Arc::new(FakeRunner::default());
    w.with_runner(restarted.clone());
    w.reconcile_target("t1").await;
    assert_eq!(
        restarted.resumed.lock().unwrap().as_deref(),
        Some("rid=000,csn=20261205")
    );
}

#[tokio::test]
async fn target_resyncs_on_mapping_change_and_on_request() {
    let w = ready_world(
        vec![target_obj("t1", "ou=acme,dc=example,dc=com", 5)],
        "{{ name }}",
    )
    .await;
    w.reconcile_target("t1").await;
    let mappings = Api::<FieldMapping>::namespaced(w.client.clone(), NS);
    let mut m = w.mapping("map").await;
    m.spec.user.attributes[0].template = "{{ name | upper }}".into();
    mappings
        .replace("map", &Default::default(), &m)
        .await
        .unwrap();
    w.reconcile_target("t1").await;
    assert_eq!(w.runner.calls.load(Ordering::SeqCst), 2);
    assert_eq!(
        w.target("t1")
            .await
            .status
            .unwrap()
            .last_sync
            .unwrap()
            .trigger,
        "SpecChanged"
    );

    let targets = Api::<SyncTarget>::namespaced(w.client.clone(), NS);
    let mut t = w.target("t1").await;
    t.metadata.annotations = Some([("dingsync.io/sync-now".to_string(), "42".to_string())].into());
    targets
        .replace("t1", &Default::default(), &t)
        .await
        .unwrap();
    w.reconcile_target("t1").await;
    w.reconcile_target("t1").await;
    assert_eq!(
        w.runner.calls.load(Ordering::SeqCst),
        3,
        "one annotation value, one run"
    );
    assert_eq!(
        w.target("t1")
            .await
            .status
            .unwrap()
            .last_sync
            .unwrap()
            .trigger,
        "Requested"
    );
}

#[tokio::test]
async fn approving_a_held_run_runs_it_at_once_and_a_stale_token_changes_nothing() {
    let mut w = ready_world(
        vec![target_obj("t1", "ou=acme,dc=example,dc=com", 5)],
        "{{ name }}",
    )
    .await;
    let runner = Arc::new(FakeRunner {
        hold_unless: Some("tok-7"),
        ..Default::default()
    });
    w.with_runner(runner.clone());
    w.reconcile_target("t1").await;
    let held = w.target("t1").await;
    assert_eq!(target_ready(&held).reason, "AwaitingApproval");
    let pending = held
        .status
        .as_ref()
        .unwrap()
        .pending_approval
        .clone()
        .unwrap();
    assert_eq!(pending.token, "tok-7");

    let annotate = |value: &'static str| {
        let client = w.client.clone();
        async move {
            let targets = Api::<SyncTarget>::namespaced(client, NS);
            let mut t = targets.get("t1").await.unwrap();
            t.metadata.annotations = Some(
                [(
                    "dingsync.io/approve-deletions".to_string(),
                    value.to_string(),
                )]
                .into(),
            );
            targets
                .replace("t1", &Default::default(), &t)
                .await
                .unwrap();
        }
    };
    // A stale token approves nothing (a first sync without a baseline plans again, and is
    // held again), and Ready says why.
    annotate("tok-6").await;
    w.reconcile_target("t1").await;
    let held_again = w.target("t1").await.status.unwrap().pending_approval;
    assert_eq!(held_again.map(|p| p.token).as_deref(), Some("tok-7"));
    let before = w.runner.calls.load(Ordering::SeqCst);
    let ready = target_ready(&w.target("t1").await);
    assert_eq!(ready.reason, "AwaitingApproval");
    assert!(
        ready.message.contains("\"tok-6\", not the pending token"),
        "{}",
        ready.message
    );

    // The pending token: the very next reconcile runs it, approved, and the hold is gone.
    annotate("tok-7").await;
    w.reconcile_target("t1").await;
    assert_eq!(w.runner.calls.load(Ordering::SeqCst), before + 1);
    let approved = w.runner.last.lock().unwrap().clone().unwrap();
    assert_eq!(approved.target.approval.as_deref(), Some("tok-7"));
    let st = w.target("t1").await.status.unwrap();
    assert_eq!(st.last_sync.unwrap().trigger, "Approved");
    assert_eq!(target_ready(&w.target("t1").await).reason, "Synced");
    // (The API server drops `pendingApproval` from status because the apply no longer sets
    // it; the fake API keeps fields an apply leaves out, so that step is e2e's to check.)
}

#[tokio::test]
async fn target_paths_that_write_nothing() {
    let mut suspended = target_obj("suspended", "ou=s,dc=example,dc=com", 5);
    suspended.spec.suspend = true;
    let mut nomap = target_obj("nomap", "ou=n,dc=example,dc=com", 5);
    nomap.spec.field_mapping_ref.name = "absent".into();
    let mut nobinding = target_obj("nobinding", "ou=b,dc=example,dc=com", 5);
    nobinding.spec.binding_ref.name = "absent".into();
    let mut nosecret = target_obj("nosecret", "ou=p,dc=example,dc=com", 5);
    nosecret
        .spec
        .directory
        .ldap
        .as_mut()
        .unwrap()
        .password_secret_ref
        .name = "absent".into();
    let w = ready_world(vec![suspended, nomap, nobinding, nosecret], "{{ name }}").await;
    for (name, reason) in [
        ("suspended", "Suspended"),
        ("nomap", "MappingNotFound"),
        ("nobinding", "BindingNotFound"),
        ("nosecret", "SecretNotFound"),
    ] {
        w.reconcile_target(name).await;
        let ready = target_ready(&w.target(name).await);
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", reason),
            "{name}: {}",
            ready.message
        );
        assert_eq!(ready.observed_generation, Some(1));
    }
    assert_eq!(w.runner.calls.load(Ordering::SeqCst), 0, "nothing ran");
}

#[tokio::test]
async fn target_with_an_invalid_mapping_writes_nothing() {
    let w = ready_world(
        vec![target_obj("t1", "ou=acme,dc=example,dc=com", 5)],
        "{% if %}",
    )
    .await;
    w.reconcile_target("t1").await;
    let ready = target_ready(&w.target("t1").await);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "MappingInvalid")
    );
    assert!(
        ready.message.contains("user.attributes[0]"),
        "{}",
        ready.message
    );
    assert_eq!(w.runner.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn target_whose_binding_is_not_ready_waits() {
    let w = world(
        vec![
            app_secret("bad-key", "x"),
            secret("ldap", &[("password", "pw")]),
        ],
        vec![binding_obj("acme", "dingacme", "app", 10)],
        vec![mapping_obj("map", "{{ name }}")],
        vec![target_obj("t1", "ou=acme,dc=example,dc=com", 5)],
    )
    .await;
    w.reconcile_binding("acme").await;
    w.reconcile_target("t1").await;
    let ready = target_ready(&w.target("t1").await);
    assert_eq!(ready.reason, "BindingNotReady");
    assert!(
        ready.message.contains("InvalidCredentials"),
        "{}",
        ready.message
    );
    assert_eq!(w.runner.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn overlapping_nodes_conflict_and_the_older_target_keeps_its_node() {
    let w = ready_world(
        vec![
            target_obj("first", "ou=acme,dc=example,dc=com", 5),
            target_obj("nested", "ou=Sales, ou=ACME,dc=example,dc=com", 6),
            target_obj("elsewhere", "ou=beta,dc=example,dc=com", 7),
        ],
        "{{ name }}",
    )
    .await;
    for t in ["first", "nested", "elsewhere"] {
        w.reconcile_target(t).await;
    }
    assert_eq!(target_ready(&w.target("first").await).status, "True");
    let nested = target_ready(&w.target("nested").await);
    assert_eq!(
        (nested.status.as_str(), nested.reason.as_str()),
        ("False", "Conflict")
    );
    assert!(nested.message.contains("first"), "{}", nested.message);
    assert_eq!(target_ready(&w.target("elsewhere").await).status, "True");
    assert_eq!(w.runner.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn live_progress_is_shown_during_a_run_and_cleared_after() {
    let w = ready_world(
        vec![target_obj("t1", "ou=acme,dc=example,dc=com", 5)],
        "{{ name }}",
    )
    .await;
    let running = tokio::spawn({
        let ctx = w.ctx.clone();
        let t = w.target("t1").await;
        async move { target::reconcile(Arc::new(t), ctx).await.unwrap() }
    });
    let mut seen = None;
    for _ in 0..40 {
        if let Some(p) = w.target("t1").await.status.and_then(|s| s.progress) {
            seen = Some(p);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    running.await.unwrap();
    let p = seen.expect("status.progress while the run goes on");
    assert_eq!(
        (p.phase.as_str(), p.done, p.total),
        ("Applying", 2, Some(7))
    );
    let after = w.target("t1").await.status.unwrap();
    assert!(after.progress.is_none(), "cleared when the run ends");
    assert_eq!(
        cond(&after.conditions, "Ready").status,
        "True",
        "the progress writer does not disturb the result"
    );
}

/// A run that fails as `error` leaves the target not Ready for `reason`, its message naming
/// `named`; the returned action.
async fn failed_run(error: SyncRunError, reason: &str, named: &str) -> Action {
    let mut w = ready_world(
        vec![target_obj("t1", "ou=acme,dc=example,dc=com", 5)],
        "{{ name }}",
    )
    .await;
    w.with_runner(Arc::new(FakeRunner {
        fail: Some(error),
        ..Default::default()
    }));
    let action = target::reconcile(Arc::new(w.target("t1").await), w.ctx.clone())
        .await
        .unwrap();
    let ready = target_ready(&w.target("t1").await);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", reason)
    );
    assert!(ready.message.contains(named), "{}", ready.message);
    action
}

#[tokio::test]
async fn a_directory_refusing_credentials_makes_the_target_not_ready() {
    let error =
        SyncRunError::DirectoryAuth("SCIM server refused the bearer token (HTTP 401)".into());
    let action = failed_run(error, "DirectoryAuthFailed", "401").await;
    assert_eq!(action, Action::await_change(), "waits for a fixed Secret");
}

/// DingTalk refusing a department write the run needs: `PermissionMissing` naming the
/// department, retried (permissions are granted in DingTalk's console, not in the cluster).
#[tokio::test]
async fn a_refused_department_write_makes_the_target_permission_missing() {
    let error = SyncRunError::PermissionMissing(
        "PermissionMissing: the app may not write DingTalk department 9002".into(),
    );
    let action = failed_run(error, "PermissionMissing", "9002").await;
    assert_ne!(action, Action::await_change());
}

#[tokio::test]
async fn repeated_failures_quarantine_the_target_until_a_run_succeeds() {
    let mut w = ready_world(
        vec![target_obj("t1", "ou=acme,dc=example,dc=com", 5)],
        "{{ name }}",
    )
    .await;
    let runner = Arc::new(FakeRunner {
        fail_first: 4,
        ..Default::default()
    });
    w.with_runner(runner.clone());
    let quarantined = |t: &SyncTarget| {
        t.status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Quarantined"))
            .cloned()
    };
    let mut delays = vec![];
    for attempt in 1..=4u32 {
        let action = target::reconcile(Arc::new(w.target("t1").await), w.ctx.clone())
            .await
            .unwrap();
        assert_eq!(
            runner.calls.load(Ordering::SeqCst),
            attempt as usize,
            "a run each time"
        );
        delays.push(format!("{action:?}"));
        let q = quarantined(&w.target("t1").await);
        if attempt < target::QUARANTINE_AFTER {
            assert!(q.is_none(), "attempt {attempt}: not yet quarantined: {q:?}");
        } else {
            let q = q.expect("quarantined");
            assert_eq!(
                (q.status.as_str(), q.reason.as_str()),
                ("True", "SyncFailed")
            );
            assert!(
                q.message.contains(&format!("{attempt} sync failures")),
                "{}",
                q.message
            );
        }
    }
    // The retry interval grows: compare the requeue durations the actions carry.
    let secs: Vec<f64> = delays
        .iter()
        .map(|d| {
            let n: String = d
                .split("requeue_after: Some(")
                .nth(1)
                .unwrap_or_default()
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            n.parse().unwrap_or(0.0)
        })
        .collect();
    assert!(secs[3] > secs[0] * 2.0, "growing intervals: {delays:?}");
    // The next run succeeds: the quarantine lifts by itself.
    target::reconcile(Arc::new(w.target("t1").await), w.ctx.clone())
        .await
        .unwrap();
    let t = w.target("t1").await;
    let q = quarantined(&t).expect("condition kept, now False");
    assert_eq!(
        (q.status.as_str(), q.reason.as_str()),
        ("False", "Recovered")
    );
    assert_eq!(target_ready(&t).status, "True");
}

#[tokio::test]
async fn incremental_sync_is_reported_and_an_event_gap_forces_a_full_sync() {
    let w = ready_world(
        vec![target_obj("t1", "ou=acme,dc=example,dc=com", 5)],
        "{{ name }}",
    )
    .await;
    w.reconcile_target("t1").await;
    let st = w.target("t1").await.status.unwrap();
    let inc = cond(&st.conditions, "IncrementalActive");
    assert_eq!(
        (inc.status.as_str(), inc.reason.as_str()),
        ("True", "Active")
    );
    assert_eq!(w.runner.calls.load(Ordering::SeqCst), 1);
    // Not due: no run.
    w.reconcile_target("t1").await;
    assert_eq!(w.runner.calls.load(Ordering::SeqCst), 1);
    // Events were missed: the next reconcile runs a full sync to close the gap.
    w.runner.gap.store(true, Ordering::SeqCst);
    w.reconcile_target("t1").await;
    assert_eq!(
        w.runner.calls.load(Ordering::SeqCst),
        2,
        "a full sync closed the gap"
    );

    let st = w.target("t1").await.status.unwrap();
    assert_eq!(
        st.last_sync.unwrap().trigger,
        "EventsAsked",
        "the status says the event feed asked for it"
    );
    assert_eq!(cond(&st.conditions, "IncrementalActive").status, "True");
}

#[tokio::test]
async fn incremental_sync_switched_off_is_said_so() {
    let mut t = target_obj("t1", "ou=acme,dc=example,dc=com", 5);
    t.spec.incremental_sync =
        serde_json::from_value(serde_json::json!({"enabled": false})).unwrap();
    let w = ready_world(vec![t], "{{ name }}").await;
    w.reconcile_target("t1").await;
    let st = w.target("t1").await.status.unwrap();
    let inc = cond(&st.conditions, "IncrementalActive");
    assert_eq!(
        (inc.status.as_str(), inc.reason.as_str()),
        ("False", "Disabled")
    );
}

// ---- Login ----

fn login_binding(target: &str) -> DingTalkBinding {
    let mut b = binding_obj("acme", "dingacme", "app", 10);
    b.spec.login = Some(dingsync::api::binding::Login {
        enabled: true,
        issuer: Some("https://login.example.com/dingtalk/acme".into()),
        clients_secret_ref: Some(LocalRef {
            name: "clients".into(),
        }),
        target_ref: Some(LocalRef {
            name: target.into(),
        }),
        ..Default::default()
    });
    b
}

const CLIENTS: &str = "clients:\n- id: grafana\n  secret: 0123456789abcdef0123\n  redirectUris: [https://grafana.example.com/cb]\n";

fn login_condition(b: &DingTalkBinding) -> Condition {
    cond(&b.status.as_ref().expect("status").conditions, "LoginReady")
}

#[tokio::test]
async fn login_ready_names_what_is_missing_or_wrong() {
    let ldap = secret("ldap", &[("password", "pw")]);
    type Case = (
        Vec<Secret>,
        DingTalkBinding,
        Vec<SyncTarget>,
        &'static str,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            vec![],
            login_binding("t1"),
            vec![target_obj("t1", "ou=a,dc=x", 5)],
            "SecretNotFound",
            "login.clientsSecretRef: Secret",
        ),
        (
            vec![secret(
                "clients",
                &[(
                    "clients.yaml",
                    "clients:\n- id: g\n  redirectUris: [ftp://x]\n",
                )],
            )],
            login_binding("t1"),
            vec![target_obj("t1", "ou=a,dc=x", 5)],
            "InvalidClients",
            "client \"g\": redirectUris",
        ),
        (
            vec![secret("clients", &[("clients.yaml", CLIENTS)])],
            login_binding("nope"),
            vec![target_obj("t1", "ou=a,dc=x", 5)],
            "TargetNotFound",
            "login.targetRef: SyncTarget",
        ),
        (
            vec![secret("clients", &[("clients.yaml", CLIENTS)])],
            login_binding("t1"),
            vec![{
                let mut t = target_obj("t1", "ou=a,dc=x", 5);
                t.spec.direction = Direction::Outbound;
                t
            }],
            "InvalidSpec",
            "must be an Inbound target of this binding",
        ),
        (
            vec![secret("clients", &[("clients.yaml", CLIENTS)])],
            login_binding("t1"),
            vec![target_obj("t1", "ou=a,dc=x", 5)],
            "Serving",
            "serving https://login.example.com/dingtalk/acme for 1 client(s)",
        ),
    ];
    for (mut secrets, b, targets, reason, text) in cases {
        secrets.push(app_secret("good-key", "good-secret"));
        secrets.push(ldap.clone());
        let w = world(
            secrets,
            vec![b],
            vec![mapping_obj("map", "{{ name }}")],
            targets,
        )
        .await;
        w.reconcile_binding("acme").await;
        let c = login_condition(&w.binding("acme").await);
        assert_eq!(c.reason, reason, "{}", c.message);
        assert!(c.message.contains(text), "{reason}: {}", c.message);
        assert_eq!(c.status, if reason == "Serving" { "True" } else { "False" });
        assert!(
            !c.message.contains("0123456789abcdef0123"),
            "client secret in status"
        );
        // The binding itself stays Ready: login is a feature of it, not its health.
        assert_eq!(binding_ready(&w.binding("acme").await).status, "True");
    }
    // Login off: no LoginReady condition at all.
    let w = world(
        vec![app_secret("good-key", "good-secret")],
        vec![binding_obj("acme", "dingacme", "app", 10)],
        vec![],
        vec![],
    )
    .await;
    w.reconcile_binding("acme").await;
    let st = w.binding("acme").await.status.unwrap();
    assert!(find_condition(&st.conditions, "LoginReady").is_none());
}

#[tokio::test]
async fn login_keys_live_in_a_secret_created_once_and_never_overwritten_when_unreadable() {
    use dingsync::controller::login::{KEYS_KEY, Login};
    let w = world(vec![], vec![], vec![], vec![]).await;
    let now = jiff::Timestamp::now();
    let a = Login::new();
    a.load_keys(&w.client, NS, "dingsync-login-keys", now)
        .await
        .unwrap();
    let secrets: Api<Secret> = Api::namespaced(w.client.clone(), NS);
    let s = secrets.get("dingsync-login-keys").await.expect("created");
    let stored = s.data.as_ref().unwrap()[KEYS_KEY].0.clone();
    let set = dingsync::login::KeySet::from_json(&stored).unwrap();
    assert_eq!(a.kids(), set.kids(), "signs with what is stored");
    // A second replica loads the same keys; nothing is rewritten.
    let b = Login::new();
    b.load_keys(&w.client, NS, "dingsync-login-keys", now)
        .await
        .unwrap();
    assert_eq!(b.kids(), a.kids());
    let again = secrets.get("dingsync-login-keys").await.unwrap();
    assert_eq!(again.metadata.resource_version, s.metadata.resource_version);
    // Due for rotation: a second key is published next to the first.
    let later = now + dingsync::login::keys::ROTATE_AFTER;
    b.load_keys(&w.client, NS, "dingsync-login-keys", later)
        .await
        .unwrap();
    let rotated = secrets.get("dingsync-login-keys").await.unwrap();
    let set =
        dingsync::login::KeySet::from_json(&rotated.data.as_ref().unwrap()[KEYS_KEY].0).unwrap();
    assert_eq!(set.kids().len(), 2);
    assert_eq!(set.kids()[0], a.kids()[0]);
    // Unreadable keys are an error, and the Secret is left as it is.
    let mut broken = rotated.clone();
    broken.data = Some(BTreeMap::from([(
        KEYS_KEY.to_string(),
        ByteString(b"not json".to_vec()),
    )]));
    secrets
        .replace("dingsync-login-keys", &Default::default(), &broken)
        .await
        .unwrap();
    let c = Login::new();
    let err = c
        .load_keys(&w.client, NS, "dingsync-login-keys", later)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("keys.json"), "{err}");
    let after = secrets.get("dingsync-login-keys").await.unwrap();
    assert_eq!(after.data.unwrap()[KEYS_KEY].0, b"not json".to_vec());
}

// ---- Outbound ----

#[tokio::test]
async fn an_outbound_target_without_the_write_permission_writes_nothing_and_names_it() {
    let outbound = |name: &str| {
        let mut t = target_obj(name, "ou=ext,dc=x", 5);
        t.spec.direction = Direction::Outbound;
        t.spec.scope = dingsync::api::target::Scope {
            department_ids: vec![5001],
            ..Default::default()
        };
        t
    };
    // Read-only app: the target waits, naming the permission; the runner is never called.
    let w = world(
        vec![
            app_secret("good-key", "good-secret"),
            secret("ldap", &[("password", "pw")]),
        ],
        vec![binding_obj("acme", "dingacme", "app", 10)],
        vec![mapping_obj("map", "{{ name }}")],
        vec![outbound("out")],
    )
    .await;
    w.reconcile_binding("acme").await;
    w.reconcile_target("out").await;
    let ready = target_ready(&w.target("out").await);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "PermissionMissing")
    );
    assert!(
        ready.message.contains("qyapi_manage_addresslist"),
        "{}",
        ready.message
    );
    assert_eq!(
        w.runner.calls.load(Ordering::SeqCst),
        0,
        "nothing attempted"
    );

    // With the permission granted, the same target runs.
    let w = world(
        vec![
            app_secret("write-key", "s"),
            secret("ldap", &[("password", "pw")]),
        ],
        vec![binding_obj("acme", "dingacme", "app", 10)],
        vec![mapping_obj("map", "{{ name }}")],
        vec![outbound("out")],
    )
    .await;
    w.reconcile_binding("acme").await;
    w.reconcile_target("out").await;
    assert_eq!(w.runner.calls.load(Ordering::SeqCst), 1);
}

// ---- run reports ----

/// A ready world whose runs fail for `failing` people, after one reconcile of target t1.
async fn failing_world(failing: usize) -> World {
    let mut w = ready_world(
        vec![target_obj("t1", "ou=acme,dc=example,dc=com", 5)],
        "{{ name }}",
    )
    .await;
    w.with_runner(Arc::new(FakeRunner {
        failing,
        ..Default::default()
    }));
    w.reconcile_target("t1").await;
    w
}

fn only_failed(reason: Option<&str>) -> reports::Filter {
    reports::Filter {
        failed: true,
        reason: reason.map(Into::into),
    }
}

#[tokio::test]
async fn a_run_failing_for_1000_people_keeps_them_all_and_status_stays_short() {
    let w = failing_world(1_000).await;
    let t = w.target("t1").await;
    let st = t.status.clone().unwrap();
    assert_eq!(st.last_report.as_deref(), Some("t1-reports"));
    let cm = Api::<ConfigMap>::namespaced(w.client.clone(), NS)
        .get("t1-reports")
        .await
        .unwrap();
    let owners = cm.metadata.owner_references.unwrap_or_default();
    assert_eq!(
        owners
            .iter()
            .map(|o| (o.kind.as_str(), o.name.as_str()))
            .collect::<Vec<_>>(),
        [("SyncTarget", "t1")],
        "deleting the target deletes its reports"
    );

    // `dingsync report t1 --failed` lists every one of them.
    let kept = reports::fetch(&w.client, NS, "t1").await.unwrap();
    let failed = reports::select(kept.clone(), &only_failed(None));
    assert_eq!(reports::failures(&failed).len(), 1_000);
    let table = reports::render(&failed, Format::Table, &only_failed(None)).unwrap();
    assert_eq!(
        table.lines().count(),
        1 + 1_000,
        "a header and one line each"
    );
    assert!(table.contains("user00999") && table.contains("TemplateError"));
    assert!(
        table.contains("uid=user00999,ou=people,dc=example,dc=com"),
        "each failure's DN"
    );
    let json = reports::render(&failed, Format::Json, &only_failed(None)).unwrap();
    let back: Vec<RunReport> = serde_json::from_str(&json).unwrap();
    assert_eq!(back[0].failures.len(), 1_000);
    let none = reports::select(kept, &only_failed(Some("DirectoryRejected")));
    assert!(none.is_empty(), "--reason keeps only that reason");

    // Status: a short, sorted summary that `kubectl describe` shows in a screenful.
    assert_eq!(st.failures.len(), 5);
    assert_eq!(st.failures[0].id, "user00000");
    assert_eq!(st.failures_truncated, Some(995));
    assert_eq!(
        st.failure_reasons,
        [ReasonCount {
            reason: "TemplateError".into(),
            count: 1_000
        }]
    );
    let yaml = serde_yaml::to_string(&st).unwrap();
    assert!(yaml.lines().count() < 100, "{yaml}");
    let ready = target_ready(&t);
    assert_eq!(ready.reason, "PartiallySynced");
    assert!(
        ready.message.contains("dingsync report"),
        "{}",
        ready.message
    );
}

#[tokio::test]
async fn ten_thousand_failures_are_paged_over_several_config_maps() {
    let w = failing_world(10_000).await;
    let maps = Api::<ConfigMap>::namespaced(w.client.clone(), NS);
    let index = maps.get("t1-reports").await.unwrap();
    let entries = dingsync::report::store::decode_index(&index).unwrap();
    let pages = entries[0].pages;
    assert!(pages >= 2, "{pages} pages");
    for k in 1..pages {
        maps.get(&format!("t1-report-1-{k}")).await.unwrap();
    }
    let kept = reports::fetch(&w.client, NS, "t1").await.unwrap();
    let failed = reports::select(kept, &only_failed(Some("TemplateError")));
    assert_eq!(reports::failures(&failed).len(), 10_000);
}

/// A log writer the test reads back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

fn event_batch(failures: Vec<ReportFailure>) -> RunReport {
    RunReport {
        run: RunKind::Events,
        trigger: "Event".into(),
        start_time: Some(jiff::Timestamp::now()),
        end_time: Some(jiff::Timestamp::now()),
        complete: true,
        batches: 1,
        failures,
        ..Default::default()
    }
}

#[tokio::test]
async fn an_event_batch_failing_for_one_person_is_reported_logged_and_in_status() {
    let w = ready_world(
        vec![target_obj("t1", "ou=acme,dc=example,dc=com", 5)],
        "{{ name }}",
    )
    .await;
    w.reconcile_target("t1").await;
    assert!(w.target("t1").await.status.unwrap().failures.is_empty());
    w.runner
        .reports
        .lock()
        .unwrap()
        .push(event_batch(vec![ReportFailure {
            kind: "User".into(),
            id: "zhangsan".into(),
            name: "张三".into(),
            dn: Some("uid=zhangsan,ou=acme,dc=example,dc=com".into()),
            reason: "DirectoryRejected".into(),
            message: "update failed: constraint violation on mail".into(),
        }]));
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(logs.clone())
        .finish();
    {
        let _log = tracing::subscriber::set_default(subscriber);
        w.reconcile_target("t1").await;
    }
    assert_eq!(w.runner.calls.load(Ordering::SeqCst), 1, "no full sync ran");

    // The status says so.
    let st = w.target("t1").await.status.unwrap();
    assert_eq!(st.failures.len(), 1, "{:?}", st.failures);
    assert_eq!(
        (st.failures[0].id.as_str(), st.failures[0].reason.as_str()),
        ("zhangsan", "DirectoryRejected")
    );
    // The report names the person.
    let kept = reports::fetch(&w.client, NS, "t1").await.unwrap();
    assert_eq!(kept.len(), 2, "the full sync's and the batch's");
    assert_eq!((kept[0].run, kept[1].run), (RunKind::Events, RunKind::Full));
    let failed = reports::select(kept, &only_failed(None));
    assert_eq!(reports::failures(&failed)[0].1.id, "zhangsan");
    // One JSON log line for the failed person, one for the run.
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let failed_line = lines
        .iter()
        .find(|l| l["fields"]["event"] == "object_failed")
        .unwrap_or_else(|| panic!("no failure line in {text}"));
    let f = &failed_line["fields"];
    assert_eq!(f["target"], "team/t1");
    assert_eq!(f["id"], "zhangsan");
    assert_eq!(f["name"], "张三");
    assert_eq!(f["reason"], "DirectoryRejected");
    assert_eq!(f["kind"], "User");
    assert_eq!(f["message"], "update failed: constraint violation on mail");
    assert_eq!(failed_line["level"], "WARN");
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["event"] == "run_finished" && l["fields"]["failed"] == 1),
        "{text}"
    );
}

#[tokio::test]
async fn only_the_newest_reports_are_kept() {
    let mut t = target_obj("t1", "ou=acme,dc=example,dc=com", 5);
    t.spec.reports = Some(dingsync::api::target::Reports { keep: Some(2) });
    let w = ready_world(vec![t], "{{ name }}").await;
    w.reconcile_target("t1").await;
    for _ in 0..3 {
        w.runner.reports.lock().unwrap().push(event_batch(vec![]));
        w.reconcile_target("t1").await;
    }
    let kept = reports::fetch(&w.client, NS, "t1").await.unwrap();
    assert_eq!(kept.len(), 2);
    assert!(kept.iter().all(|r| r.run == RunKind::Events));
    // The reports pushed out are deleted; the kept ones are the newest two.
    let maps = Api::<ConfigMap>::namespaced(w.client.clone(), NS);
    assert!(maps.get_opt("t1-report-1").await.unwrap().is_none());
    assert!(maps.get_opt("t1-report-2").await.unwrap().is_none());
    assert!(maps.get_opt("t1-report-4").await.unwrap().is_some());
}

#[tokio::test]
async fn dingsync_approve_shows_the_held_removals_and_sets_the_pending_token() {
    let mut w = ready_world(
        vec![target_obj("t1", "ou=acme,dc=example,dc=com", 5)],
        "{{ name }}",
    )
    .await;
    w.with_runner(Arc::new(FakeRunner {
        hold_unless: Some("tok-7"),
        ..Default::default()
    }));
    w.reconcile_target("t1").await;
    let held = approve::pending(&w.client, NS, "t1").await.unwrap();
    assert_eq!(held.token, "tok-7");
    let kept = reports::fetch(&w.client, NS, "t1").await.unwrap();
    let held_report = kept[0]
        .held
        .as_ref()
        .expect("the report holds the removals");
    assert_eq!(held_report.entries, ["disable 张三", "disable 李四"]);
    let shown = approve::describe("t1", &held, &kept);
    assert!(
        shown.contains("2 of 3 people would be disabled") && shown.contains("disable 李四"),
        "{shown}"
    );

    approve::annotate(&w.client, NS, "t1", &held.token)
        .await
        .unwrap();
    w.reconcile_target("t1").await;
    assert_eq!(w.runner.calls.load(Ordering::SeqCst), 2);
    let st = w.target("t1").await.status.unwrap();
    assert_eq!(st.last_sync.unwrap().trigger, "Approved");
    let kept = reports::fetch(&w.client, NS, "t1").await.unwrap();
    assert_eq!(kept[0].trigger, "Approved");
    assert!(kept[0].held.is_none());
}
