//! `DingTalkBinding`: one DingTalk enterprise, bound once, with its app credentials.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::common::{LocalRef, conditions_schema};

/// Connects dingsync to one DingTalk enterprise through an internal app. SyncTargets refer to it
/// by name; one event connection per binding is shared by all of them.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "dingsync.io",
    version = "v1alpha1",
    kind = "DingTalkBinding",
    namespaced,
    status = "DingTalkBindingStatus",
    shortname = "dtb",
    category = "dingsync",
    derive = "Default",
    derive = "PartialEq",
    doc = "One DingTalk enterprise (corpId) and the internal app dingsync uses to reach it.",
    printcolumn(name = "Corp", type_ = "string", json_path = ".spec.corpId"),
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
    printcolumn(
        name = "Events",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"EventsConnected\")].status",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    cel
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.credentialsSecretRef) != has(self.suite)").message("set exactly one of credentialsSecretRef (internal app) and suite (third-party app)"))]
pub struct DingTalkBindingSpec {
    /// The enterprise's DingTalk corpId (starts with `ding`). An enterprise may be bound once per
    /// namespace; a second binding for the same corpId is refused with reason `Conflict`.
    #[serde(rename = "corpId")]
    #[schemars(length(min = 1, max = 64))]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9_-]+$')").message("corpId may contain only letters, digits, '_' and '-'"))]
    pub corp_id: String,

    /// Secret holding the internal app's AppKey and AppSecret (advanced bind). Leave it out
    /// when the enterprise is reached through a third-party app (`suite`).
    #[serde(default, skip_serializing_if = "CredentialsSecretRef::is_unset")]
    pub credentials_secret_ref: CredentialsSecretRef,

    /// Quick bind: the enterprise (`corpId`) authorised a third-party (suite) app by scanning
    /// its QR code (`dingsync bind`); dingsync reads it with corp tokens from the suite's
    /// credentials. Third-party apps are not shown mobiles, email and other personal fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suite: Option<Suite>,

    /// API base URLs. Defaults reach DingTalk's mainland hosts; override them for DingTalk's
    /// international hosts or for the dingsync simulator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Endpoints>,

    /// Calls per second the app may make to each address-book API. DingTalk allows 20 per API
    /// per app on the standard edition; raise it only if your edition allows more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limits: Option<RateLimits>,

    /// How DingTalk tells dingsync about address-book changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Events>,

    /// Log on with DingTalk through dingsync's OIDC provider (QR code and Workbench SSO).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<Login>,
}

/// Where the AppKey and AppSecret live.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsSecretRef {
    /// Name of the Secret, in the binding's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key holding the AppKey (also called ClientID).
    #[serde(default = "default_app_key_key")]
    pub app_key_key: String,
    /// Key holding the AppSecret (also called ClientSecret).
    #[serde(default = "default_app_secret_key")]
    pub app_secret_key: String,
}

impl CredentialsSecretRef {
    /// No Secret named: the binding uses a suite instead.
    pub fn is_unset(&self) -> bool {
        self.name.is_empty()
    }
}

/// A third-party (suite) app the enterprise authorised.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Suite {
    /// Secret holding the suite's SuiteKey and SuiteSecret (from the developer console of the
    /// team that runs dingsync).
    pub secret_ref: SuiteSecretRef,
    /// Secret to read a suiteTicket from (key `suiteTicket`) until DingTalk pushes one:
    /// `dingsync bind --apply` writes it, and `dingsync plan`/`apply` outside the cluster read
    /// it. The controller keeps the latest ticket of every suite in one Secret of its own
    /// namespace (chart value `quickBind.ticketsSecret`) and never writes this one. Default:
    /// `<binding name>-suite-ticket`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_secret_ref: Option<LocalRef>,
}

/// Where the SuiteKey and SuiteSecret live.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SuiteSecretRef {
    /// Name of the Secret, in the binding's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key holding the SuiteKey.
    #[serde(default = "default_suite_key_key")]
    pub suite_key_key: String,
    /// Key holding the SuiteSecret.
    #[serde(default = "default_suite_secret_key")]
    pub suite_secret_key: String,
}

fn default_suite_key_key() -> String {
    "suiteKey".into()
}
fn default_suite_secret_key() -> String {
    "suiteSecret".into()
}

fn default_app_key_key() -> String {
    "appKey".into()
}
fn default_app_secret_key() -> String {
    "appSecret".into()
}

/// DingTalk API base URLs.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Endpoints {
    /// Legacy server API (`/gettoken`, `/topapi/...`). Default `https://oapi.dingtalk.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.startsWith('https://') || self.startsWith('http://')").message("oapi must be an http(s) URL"))]
    pub oapi: Option<String>,
    /// New server API (`/v1.0/...`, Stream gateway). Default `https://api.dingtalk.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.startsWith('https://') || self.startsWith('http://')").message("api must be an http(s) URL"))]
    pub api: Option<String>,
    /// Browser login host. Default `https://login.dingtalk.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.startsWith('https://') || self.startsWith('http://')").message("login must be an http(s) URL"))]
    pub login: Option<String>,
}

/// Per-API call rate for the app.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimits {
    /// Calls per second allowed to each API (default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub per_api_per_second: Option<u32>,
}

/// How address-book change events arrive.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum EventDelivery {
    /// An outbound WebSocket from dingsync to DingTalk; needs no ingress (default).
    #[default]
    Stream,
    /// DingTalk posts encrypted callbacks to dingsync's HTTP port; needs an ingress.
    Callback,
    /// No events; only periodic full syncs.
    None,
}

/// Event connection settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.delivery) || self.delivery != 'Callback' || has(self.callbackSecretRef)").message("events.callbackSecretRef is required when delivery is Callback"))]
pub struct Events {
    /// `Stream` (default), `Callback` or `None`.
    #[serde(default)]
    pub delivery: EventDelivery,
    /// For `Callback`: Secret with keys `token` and `aesKey` (the 43-character EncodingAESKey)
    /// entered in DingTalk's developer console.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_secret_ref: Option<LocalRef>,
}

/// Logon settings for the OIDC provider that fronts DingTalk's login.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!self.enabled || (has(self.issuer) && has(self.clientsSecretRef) && has(self.targetRef))").message("login: enabled needs issuer, clientsSecretRef and targetRef"))]
pub struct Login {
    /// Serve the OIDC provider for this enterprise (on every replica).
    #[serde(default)]
    pub enabled: bool,
    /// Public URL of the provider (the OIDC issuer), e.g.
    /// `https://login.example.com/dingtalk/acme`. dingsync serves it under the URL's path, so
    /// route that path to dingsync. Register `<issuer>/callback` as the redirect URL of the
    /// DingTalk app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.startsWith('https://') || self.startsWith('http://')").message("issuer must be an http(s) URL"))]
    pub issuer: Option<String>,
    /// Secret whose key `clients.yaml` lists the OIDC clients (id, secret, redirect URIs,
    /// scopes, Workbench homepage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clients_secret_ref: Option<LocalRef>,
    /// Inbound SyncTarget of this binding whose directory accounts people log in as: the ID
    /// token's claims are that account's attributes (through the target's FieldMapping), and a
    /// person without an enabled account there is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<LocalRef>,
    /// Extra claims: claim name → directory attribute (e.g. `employee_number: employeeNumber`).
    /// Overrides the standard claims derived from the FieldMapping.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: BTreeMap<String, String>,
    /// How long one DingTalk login signs the browser in to further apps (SSO session).
    /// Default `8h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_ttl: Option<kube::core::Duration>,
    /// Account self-service at `<issuer>/account` after a DingTalk login. Off by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_service: Option<SelfService>,
    /// A member of the enterprise without an account yet (their hire not synced yet) gets one
    /// at their first login: the target is synced for that person alone, with its scope,
    /// mapping and gates. Off by default.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub provision_on_login: bool,
}

/// What people may do to their own directory account.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SelfService {
    /// Set their directory password (LDAP Password Modify, so the server's password policy
    /// applies). Needs a DingTalk login less than 5 minutes old.
    #[serde(default)]
    pub password: bool,
}

/// What dingsync found out about the binding.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DingTalkBindingStatus {
    /// Generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `CredentialsValid`, `PermissionsGranted`, `EventsConnected`.
    #[serde(default)]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// Address-book permissions found by probing the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Permissions>,
    /// SyncTargets that use this binding.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
}

/// Permissions found by probing, not guessed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Permissions {
    /// Read departments and people.
    pub contact_read: bool,
    /// Create, update and delete departments and people (needed by Outbound targets).
    pub contact_write: bool,
    /// Read people's mobile numbers.
    pub mobile: bool,
    /// Read people's email and other personal fields.
    pub email: bool,
    /// Permission codes DingTalk reported as missing, e.g. `qyapi_get_member`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
}
