//! `SyncTarget`: one directory node kept in step with one binding, in one direction.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::{LocalRef, SecretKeyRef, conditions_schema};

/// Annotation that approves a run held by the deletion threshold. Its value must equal the
/// `status.pendingApproval.token` shown for the held run, so an old approval never releases a
/// new, different mass deletion.
pub const APPROVE_ANNOTATION: &str = "dingsync.io/approve-deletions";
/// Annotation whose change asks for a full sync now (any new value, e.g. a timestamp).
pub const SYNC_NOW_ANNOTATION: &str = "dingsync.io/sync-now";

/// A directory node (LDAP subtree or SCIM server) kept in step with a DingTalk enterprise.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "dingsync.io",
    version = "v1alpha1",
    kind = "SyncTarget",
    namespaced,
    status = "SyncTargetStatus",
    shortname = "st",
    category = "dingsync",
    derive = "Default",
    derive = "PartialEq",
    doc = "A directory node kept in step with one DingTalkBinding, in one direction.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(name = "Direction", type_ = "string", json_path = ".spec.direction"),
    printcolumn(name = "People", type_ = "integer", json_path = ".status.people"),
    printcolumn(
        name = "Failed",
        type_ = "integer",
        json_path = ".status.lastSync.failed"
    ),
    printcolumn(name = "Last Sync", type_ = "date", json_path = ".status.lastSyncTime"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    selectable = ".spec.bindingRef.name",
    cel
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.direction != 'Outbound' || !has(self.scope) || !has(self.scope.departmentIds) || size(self.scope.departmentIds) <= 1").message("scope.departmentIds: an Outbound target mirrors its node under one DingTalk department (the root when left out)"))]
pub struct SyncTargetSpec {
    /// The DingTalkBinding (enterprise) this target syncs with.
    pub binding_ref: LocalRef,
    /// The FieldMapping that turns source records into target records.
    pub field_mapping_ref: LocalRef,
    /// `Inbound`: DingTalk → directory. `Outbound`: directory → DingTalk.
    pub direction: Direction,
    /// The directory: exactly one of `ldap` or `scim`.
    pub directory: DirectorySpec,
    /// The part of the directory this target owns. LDAP: a base DN such as
    /// `ou=acme,dc=example,dc=com`. SCIM: a prefix for the groups it creates, such as `acme`.
    /// Two targets may not own overlapping nodes of one directory.
    #[schemars(length(min = 1, max = 1024))]
    #[x_kube(validation = Rule::new("!self.matches('^\\\\s*$')").message("node must not be blank"))]
    pub node: String,
    /// LDAP: create the node entry when it does not exist (an `organizationalUnit` for an
    /// `ou=` node, an `organization` for an `o=` node; its parent must exist). Default false:
    /// the node is the directory admin's, and a missing one is reported, not created.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub create_node: bool,
    /// Where entries are placed under the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<Layout>,
    /// Which DingTalk departments and people are in scope (default: the app's own contact
    /// scope).
    #[serde(default)]
    pub scope: Scope,
    /// Periodic full sync that corrects drift.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_sync: Option<FullSync>,
    /// Real-time sync from DingTalk events (Inbound) or by polling the directory (Outbound).
    /// Live only after a full sync at the current spec has succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental_sync: Option<IncrementalSync>,
    /// What happens to entries whose source is gone, and the safety gate in front of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion: Option<Deletion>,
    /// Pause all syncing ("save only"). Status keeps the last result.
    #[serde(default)]
    pub suspend: bool,
    /// Compute the plan and put its summary into status, but write nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Outbound only: a directory OU or group whose DingTalk name an existing department
    /// under the same parent already has, and that dingsync did not create, adopts that
    /// department (marks it with the container's id and manages it from then on) instead of
    /// failing. Default false: such a container fails, naming the department.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adopt_existing: bool,
    /// Inbound only (an Outbound target with it is `InvalidSpec`): keep DingTalk's roles as
    /// directory groups, one per role, holding the role's people that this target syncs. LDAP: `groupOfNames` entries
    /// `cn=<role group>-<role>,ou=roles,<node>`; SCIM: Groups named `<node>/role:<role
    /// group>-<role>`. Each is anchored on the role id, so a renamed role renames its group.
    /// Kept in step by full syncs and by role events. A role deleted in DingTalk deletes its
    /// group, through the `deletion` gate (`Retain` keeps it); people are never touched.
    /// Turning this off leaves the role groups as they are (no longer updated, never deleted).
    /// Set here, not in the FieldMapping: it decides which entries a directory node holds,
    /// like `layout`, and one FieldMapping serves targets that may want roles or not.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub roles: bool,
    /// How many run reports are kept (in ConfigMaps the target owns, see `status.lastReport`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reports: Option<Reports>,
}

/// Run reports kept per target: every full sync, event batch window and Outbound poll.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Reports {
    /// The newest reports kept (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub keep: Option<u32>,
}

/// Reports kept when `spec.reports.keep` is not set.
pub const DEFAULT_REPORTS_KEPT: usize = 10;

impl SyncTargetSpec {
    /// `spec.reports.keep`, or the default, within 1..=100.
    pub fn reports_kept(&self) -> usize {
        self.reports
            .as_ref()
            .and_then(|r| r.keep)
            .map_or(DEFAULT_REPORTS_KEPT, |k| k.clamp(1, 100) as usize)
    }
}

/// Sync direction.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum Direction {
    /// DingTalk is the source; the directory node follows it.
    #[default]
    Inbound,
    /// The directory node is the source; a DingTalk department follows it.
    Outbound,
}

/// The directory backend; exactly one must be set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.ldap) ? 1 : 0) + (has(self.scim) ? 1 : 0) + (has(self.activeDirectory) ? 1 : 0) == 1").message("directory: set exactly one of ldap, scim or activeDirectory"))]
pub struct DirectorySpec {
    /// An LDAP server (OpenLDAP, 389 DS, Active Directory with inetOrgPerson).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ldap: Option<LdapSpec>,
    /// A SCIM 2.0 service provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scim: Option<ScimSpec>,
    /// An Active Directory domain (users, security groups, account control bits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_directory: Option<ActiveDirectorySpec>,
}

impl DirectorySpec {
    /// The Secret key holding the directory's credential (bind password or SCIM token), with
    /// the field path for messages.
    pub fn credential_ref(&self) -> Option<(&SecretKeyRef, &'static str)> {
        match (&self.ldap, &self.scim) {
            (Some(l), _) => Some((
                &l.password_secret_ref,
                "spec.directory.ldap.passwordSecretRef",
            )),
            (_, Some(s)) => Some((&s.token_secret_ref, "spec.directory.scim.tokenSecretRef")),
            _ => self.active_directory.as_ref().map(|a| {
                (
                    &a.password_secret_ref,
                    "spec.directory.activeDirectory.passwordSecretRef",
                )
            }),
        }
    }

    /// The server's URL, whichever backend.
    pub fn url(&self) -> Option<&str> {
        (self.ldap.as_ref().map(|l| l.url.as_str()))
            .or(self.scim.as_ref().map(|s| s.url.as_str()))
            .or(self.active_directory.as_ref().map(|a| a.url.as_str()))
    }

    /// The Secret key holding the CA bundle, if one is set.
    pub fn ca_ref(&self) -> Option<&SecretKeyRef> {
        self.ldap
            .as_ref()
            .and_then(|l| l.ca_secret_ref.as_ref())
            .or_else(|| self.scim.as_ref().and_then(|s| s.ca_secret_ref.as_ref()))
            .or_else(|| (self.active_directory.as_ref()).and_then(|a| a.ca_secret_ref.as_ref()))
    }
}

/// LDAP connection.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.startTLS) && self.startTLS && self.url.startsWith('ldaps://'))").message("ldap.startTLS: do not combine StartTLS with an ldaps:// URL"))]
pub struct LdapSpec {
    /// `ldap://host:389` or `ldaps://host:636`.
    #[schemars(length(min = 1, max = 1024))]
    #[x_kube(validation = Rule::new("self.startsWith('ldap://') || self.startsWith('ldaps://')").message("ldap.url must start with ldap:// or ldaps://"))]
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS.
    #[serde(default, rename = "startTLS")]
    pub start_tls: bool,
    /// DN dingsync binds as; it needs write access to the node.
    #[serde(rename = "bindDN")]
    #[schemars(length(min = 1, max = 1024))]
    pub bind_dn: String,
    /// Secret key with the bind password.
    pub password_secret_ref: SecretKeyRef,
    /// Secret key with a PEM CA bundle that signs the server's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
}

/// Active Directory connection (Windows Server or Samba AD). Simple bind only, and only
/// over LDAPS or StartTLS: AD refuses passwords (bind and `unicodePwd`) in the clear.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.startTLS) && self.startTLS && self.url.startsWith('ldaps://'))").message("activeDirectory.startTLS: do not combine StartTLS with an ldaps:// URL"))]
pub struct ActiveDirectorySpec {
    /// `ldaps://dc.example.com:636`, or `ldap://dc.example.com:389` with `startTLS`.
    #[schemars(length(min = 1, max = 1024))]
    #[x_kube(validation = Rule::new("self.startsWith('ldap://') || self.startsWith('ldaps://')").message("activeDirectory.url must start with ldap:// or ldaps://"))]
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS.
    #[serde(default, rename = "startTLS")]
    pub start_tls: bool,
    /// DN or user principal name (`svc-dingsync@example.com`) dingsync binds as; it needs
    /// to create, change and disable users and groups in the node.
    #[serde(rename = "bindDN")]
    #[schemars(length(min = 1, max = 1024))]
    pub bind_dn: String,
    /// Secret key with the bind password.
    pub password_secret_ref: SecretKeyRef,
    /// Secret key with a PEM CA bundle that signs the domain controller's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
    /// What a new account looks like until its owner sets a password.
    #[serde(default)]
    pub new_accounts: NewAccounts,
    /// The part after `@` of `userPrincipalName` when the mapping does not write one;
    /// default: the domain of the node's `DC=` components.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub upn_suffix: Option<String>,
}

/// How new AD accounts are created.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum NewAccounts {
    /// Disabled until someone sets a password (`userAccountControl` 546).
    #[default]
    Disabled,
    /// Enabled (512) with a random password nobody knows, set over the encrypted
    /// connection; people then set their own (self-service login or a reset).
    EnabledWithRandomPassword,
}

/// SCIM connection.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScimSpec {
    /// Base URL of the SCIM service, e.g. `https://idp.example.com/scim/v2`.
    #[schemars(length(min = 1, max = 1024))]
    #[x_kube(validation = Rule::new("self.startsWith('https://') || self.startsWith('http://')").message("scim.url must be an http(s) URL"))]
    pub url: String,
    /// Secret key with the bearer token.
    pub token_secret_ref: SecretKeyRef,
    /// Secret key with a PEM CA bundle that signs the server's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
}

/// Entry placement under the node.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum Layout {
    /// People flat in one OU, departments as a tree of groups with members, so a person's DN
    /// does not change when they change department (default).
    #[default]
    FlatWithGroups,
    /// Departments as nested OUs, each person under their main department's OU, plus groups.
    OuTree,
}

/// Which DingTalk departments and people are in scope. People left out of scope (an excluded
/// or hidden department, the people filter) are treated like leavers: `deletion.policy` and
/// its gate apply to those already synced; they are never created.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Scope {
    /// Inbound: roots of the subtrees to sync (1 = the whole enterprise). Left out: the app's
    /// own contact scope as DingTalk reports it (its departments and the people authorised
    /// one by one); a scope narrower than the whole enterprise is named in the `Synced`
    /// condition. Outbound: the one department under which the node is mirrored (left out:
    /// 1, the root).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub department_ids: Vec<i64>,
    /// Inbound only: departments whose whole subtrees are left out. Their people are not
    /// synced unless they also belong to a department in scope (they keep only the
    /// memberships in scope).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000))]
    pub exclude_department_ids: Vec<i64>,
    /// Inbound only: also sync departments DingTalk marks hidden (`hide_dept`) and their
    /// subtrees. Default false: they are left out like `excludeDepartmentIds`. A department
    /// named in `departmentIds` is synced even when hidden.
    #[serde(default)]
    pub include_hidden: bool,
    /// Inbound only: a minijinja expression over a person's fields (the names FieldMapping
    /// templates use, e.g. `active`, `title`, `extension`) that renders `true` for the people
    /// to sync, e.g. `{{ active and title != '实习生' }}`. `false` or empty leaves the person
    /// out. Checked when the target is admitted: it must compile and name only known fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub people_filter: Option<String>,
}

impl Scope {
    /// The DingTalk department an Outbound target mirrors its node under (default: the root).
    pub fn outbound_root(&self) -> Result<i64, &'static str> {
        match self.department_ids.as_slice() {
            [] => Ok(1),
            [root] => Ok(*root),
            _ => Err(
                "scope.departmentIds: an Outbound target mirrors its node under one DingTalk department (the root when left out)",
            ),
        }
    }

    /// Whether any Inbound-only filter is set.
    pub fn filters(&self) -> bool {
        !self.exclude_department_ids.is_empty()
            || self.include_hidden
            || self.people_filter.is_some()
    }
}

/// Periodic full sync.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct FullSync {
    /// Time between full syncs, Go duration format (default `6h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<kube::core::Duration>,
}

/// Real-time sync.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct IncrementalSync {
    /// Apply changes as they happen (default true).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Outbound only: how often the directory is polled for changes (default `1m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_interval: Option<kube::core::Duration>,
}

fn default_true() -> bool {
    true
}

/// Deletion policy and its safety gate.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Deletion {
    /// `Disable` (default): leavers are disabled and re-enabled on rehire. `Delete`: removed.
    /// `Retain`: left as they are (only unlinked from departments).
    #[serde(default)]
    pub policy: DeletionPolicy,
    /// Above this many disables or deletes in one run, the run writes nothing and waits for
    /// approval. Default 50; 0 turns the count check off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_count: Option<u32>,
    /// Above this percentage of the entries the target owns, the run writes nothing and waits
    /// for approval. Default 10; 100 turns the percentage check off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub max_percent: Option<u32>,
}

/// What to do with entries whose source is gone.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum DeletionPolicy {
    /// Disable the account (standard, reversible); re-enable on rehire.
    #[default]
    Disable,
    /// Delete the entry.
    Delete,
    /// Leave the entry untouched.
    Retain,
}

/// What the last runs did.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncTargetStatus {
    /// Generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Synced`, `IncrementalActive`, `Quarantined`.
    #[serde(default)]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// People in the node after the last run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub people: Option<i64>,
    /// Departments in the node after the last run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub departments: Option<i64>,
    /// When the last full sync ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<Time>,
    /// When the last fully successful full sync ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_sync_time: Option<Time>,
    /// Fingerprint of the spec (own, binding, mapping) the last successful full sync ran with;
    /// incremental sync is live only while it equals the current one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
    /// Outbound from OpenLDAP with content synchronisation: the cookie up to which the
    /// directory's changes are in DingTalk. A restarted controller resumes after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_sync_cookie: Option<String>,
    /// Value of the sync-now annotation last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_request: Option<String>,
    /// Counts of the last run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync: Option<RunSummary>,
    /// The first few current failures (the last full run and the event batches and polls
    /// since), sorted by reason and id; every one is in the reports `lastReport` names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<Failure>,
    /// Failures not listed because of the cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failures_truncated: Option<i64>,
    /// The current failures counted by reason, most frequent first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failure_reasons: Vec<ReasonCount>,
    /// The ConfigMap holding the target's run reports (`dingsync report <target>` reads it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_report: Option<String>,
    /// Progress of the run in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    /// A run held by the deletion gate, waiting for approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_approval: Option<PendingApproval>,
    /// With `dryRun`: the plan that would be applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<PlanSummary>,
}

/// Counts of one run.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    /// `Created`, `SpecChanged`, `Interval`, `Requested`, `Approved`, `EventsAsked` (the event
    /// feed asked for a full sync: events missed, or `org_change`), `Event` (an event batch).
    pub trigger: String,
    /// Start of the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// End of the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Time>,
    pub created: i64,
    pub updated: i64,
    pub moved: i64,
    pub disabled: i64,
    pub enabled: i64,
    pub deleted: i64,
    pub unchanged: i64,
    pub failed: i64,
    /// People in scope without a mobile number.
    #[serde(default)]
    pub missing_mobile: i64,
    /// People in scope without an email address.
    #[serde(default)]
    pub missing_email: i64,
}

/// One object that could not be synced.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    /// `User` or `Department`.
    pub kind: String,
    /// Source id (DingTalk userid or dept_id; directory anchor for Outbound).
    pub id: String,
    /// Display name, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Short CamelCase reason, e.g. `AmbiguousMatch`, `TemplateError`, `DirectoryRejected`.
    pub reason: String,
    /// What went wrong, naming the field.
    pub message: String,
    /// The directory entry's DN (SCIM: its id), when the run knew it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dn: Option<String>,
}

/// How many failures had one reason.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReasonCount {
    pub reason: String,
    pub count: i64,
}

/// Progress of a running sync.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// `ReadingSource`, `ReadingDirectory`, `Planning`, `Applying`.
    pub phase: String,
    /// Items done in this phase.
    pub done: i64,
    /// Items in this phase, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
}

/// A run stopped by the deletion gate.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingApproval {
    /// Disables and deletes the held run would make.
    pub removals: i64,
    /// Entries the target owns.
    pub owned: i64,
    /// Set the approve annotation to this value to let exactly this run through.
    pub token: String,
    /// Why the run was held.
    pub message: String,
}

/// Summary of a plan (dry run).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanSummary {
    pub create: i64,
    pub update: i64,
    pub moves: i64,
    pub disable: i64,
    pub enable: i64,
    pub delete: i64,
    /// The first operations of the plan, one line each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sample: Vec<String>,
}
