//! Every Kubernetes API access the controller's code makes. The Helm chart's RBAC is tested
//! against this table, so keep it exact: a new call here needs a rule there, and the chart
//! grants nothing that is not listed here.

/// (API group, resource, verbs, why).
pub const API_ACCESS: &[(&str, &str, &[&str], &str)] = &[
    (
        "dingsync.io",
        "dingtalkbindings",
        &["get", "list", "watch"],
        "watch bindings; find a corpId bound twice in any watched namespace",
    ),
    (
        "dingsync.io",
        "fieldmappings",
        &["get", "list", "watch"],
        "watch mappings and read the ones targets use",
    ),
    (
        "dingsync.io",
        "synctargets",
        &["get", "list", "watch"],
        "watch targets; find overlapping nodes in any watched namespace",
    ),
    (
        "dingsync.io",
        "dingtalkbindings/status",
        &["patch"],
        "server-side apply of binding status",
    ),
    (
        "dingsync.io",
        "fieldmappings/status",
        &["patch"],
        "server-side apply of mapping status",
    ),
    (
        "dingsync.io",
        "synctargets/status",
        &["patch"],
        "server-side apply of target status",
    ),
    (
        "",
        "secrets",
        &["get", "list", "watch"],
        "credentials the resources reference; re-sync when they change",
    ),
    (
        "",
        "configmaps",
        &["create", "get", "update", "delete"],
        "run reports, in ConfigMaps each target owns, in the targets' namespaces",
    ),
    (
        "events.k8s.io",
        "events",
        &["create", "patch"],
        "Events on condition transitions (patch aggregates series)",
    ),
    (
        "coordination.k8s.io",
        "leases",
        &["get", "create", "update", "patch"],
        "leader election, namespaced",
    ),
    (
        "",
        "pods",
        &["get"],
        "the leader's pod IP, where other replicas hand DingTalk callback pushes",
    ),
];

/// The only Secrets the controller writes: the login provider's signing keys and the kept
/// suiteTickets of third-party apps, in the release namespace, by name (RBAC cannot limit
/// `create` by name, so that Role stays in that namespace). Every replica reads them;
/// whichever replica finds one missing, due for rotation or behind a pushed ticket writes it. Next to it, the Leases of the login's single-use ledger (named by hashes, so
/// not limited by name).
pub const LOGIN_KEYS_ACCESS: &[(&str, &str, &[&str], &str)] = &[
    (
        "",
        "secrets",
        &["get", "create", "update"],
        "login signing keys and suiteTickets: create if missing, rotate, keep the latest",
    ),
    (
        "coordination.k8s.io",
        "leases",
        &["create", "get", "list", "delete"],
        "login single-use ledger: a Lease per redeemed code, expired ones deleted",
    ),
];
