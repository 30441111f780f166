//! `FieldMapping`: how a source record becomes a target record.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::conditions_schema;

/// Attribute rules, matching rules and username generation for people and departments.
/// Templates use Jinja syntax (`{{ name | pinyin }}`) over the source record's fields.
///
/// A person's custom fields are a map of text: `{{ extension.工号 }}`, or
/// `{{ extension['desk no'] }}` for a key with spaces. `{{ field | fromjson }}` reads another
/// field holding JSON text. `dept_names` lists the person's departments by name (in the order
/// of their `dept_id_list`); a department's `path` is the names from the scope's root joined
/// by `/`. `main_dept_id` is the person's first in-scope department of `dept_id_list` (it
/// places them in the `OuTree` layout); a template that wants another department picks it
/// from `dept_id_list` or `dept_names` instead, e.g. `{{ dept_names | last }}`.
/// `manager_userid` is the person's direct manager, `is_leader` says whether they head any of
/// their in-scope departments and `leader_of` lists those departments' ids; a department rule
/// reads its heads as `dept_manager_userid_list`. A rule with `refersTo: Person` turns userids
/// into the entries of those people (a manager's DN, a department's owners).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "dingsync.io",
    version = "v1alpha1",
    kind = "FieldMapping",
    namespaced,
    status = "FieldMappingStatus",
    shortname = "fm",
    category = "dingsync",
    derive = "Default",
    derive = "PartialEq",
    doc = "How DingTalk people and departments map to directory entries (or back).",
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
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    cel
)]
#[serde(rename_all = "camelCase")]
pub struct FieldMappingSpec {
    /// `Inbound` (default): templates read DingTalk's fields and targets are directory
    /// attributes. `Outbound`: templates read directory attributes (`{{ uid }}`, `{{ mail }}`)
    /// and targets are DingTalk fields (`name`, `mobile`, `email`, `title`, `job_number`,
    /// `work_place`, `telephone`, `remark`, `org_email`, `hired_date` (milliseconds or
    /// `YYYY-MM-DD`), `manager_userid`, `dept_order_list` and `dept_title_list` (the person's
    /// order and title in their department), `extension.<key>`); `uniqueName` then names the
    /// DingTalk `userid` (attribute `userid`); `match` rules compare with `userid`, `mobile`,
    /// `email` or `job_number` of DingTalk users; department rules write `order`,
    /// `hide_dept`, `outer_dept` and `dept_manager_userid_list`.
    #[serde(default, skip_serializing_if = "is_inbound")]
    pub direction: super::target::Direction,
    /// How a person becomes a directory account.
    pub user: UserMapping,
    /// How a department becomes a directory group (or OU). Defaults apply when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<DepartmentMapping>,
}

fn is_inbound(d: &super::target::Direction) -> bool {
    *d == super::target::Direction::Inbound
}

/// Rules for people.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserMapping {
    /// `target attribute ← template` rules.
    #[schemars(length(min = 1, max = 64))]
    #[x_kube(validation = Rule::new("self.all(a, self.exists_one(b, b.target == a.target))").message("user.attributes: each target attribute may appear once"))]
    pub attributes: Vec<AttributeRule>,
    /// Ordered rules that link a source person to an existing, not-yet-linked target account the
    /// first time. The first rule that finds exactly one account wins; a rule that finds two
    /// links none and the conflict is reported.
    #[serde(default, skip_serializing_if = "Vec::is_empty", rename = "match")]
    #[schemars(length(max = 16))]
    pub match_rules: Vec<MatchRule>,
    /// How usernames (the naming attribute) are generated and kept unique.
    pub unique_name: UniqueName,
}

/// Rules for departments.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DepartmentMapping {
    /// `target attribute ← template` rules.
    #[serde(default)]
    #[schemars(length(max = 64))]
    #[x_kube(validation = Rule::new("self.all(a, self.exists_one(b, b.target == a.target))").message("department.attributes: each target attribute may appear once"))]
    pub attributes: Vec<AttributeRule>,
    /// Template of the group's (or OU's) name. Default `{{ name }}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_template: Option<String>,
}

/// One `target attribute ← template` rule.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttributeRule {
    /// Target attribute (LDAP attribute, SCIM attribute path, or DingTalk field for outbound).
    #[schemars(length(min = 1, max = 128))]
    pub target: String,
    /// Jinja template over the source fields, e.g. `{{ email | lower }}`. An empty result leaves
    /// the attribute unset. Custom fields: `{{ extension.工号 }}`, `{{ extension['desk no'] }}`;
    /// departments: `{{ dept_names | join(',') }}`, `{{ path }}` (department rules).
    #[schemars(length(min = 1, max = 4096))]
    pub template: String,
    /// `Always` (default): dingsync keeps the attribute equal to the template.
    /// `OnCreate`: written once when the entry is created, then left to the directory's owners.
    /// `IfEmpty`: written only while the directory's value is empty, so a value an admin
    /// entered by hand survives; use it for `mobile` and `mail`, which DingTalk often lacks.
    /// A value there is never replaced or cleared, even when DingTalk later gains or changes
    /// its own; empty it in the directory and the next sync fills it from DingTalk.
    /// Ownership applies to Inbound mappings; an Outbound mapping writes every rule.
    #[serde(default)]
    pub ownership: Ownership,
    /// `Person`: the attribute holds the entries of the people the template names (see
    /// [`RefersTo`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refers_to: Option<RefersTo>,
}

/// `Person`: the template gives DingTalk userids (several separated by commas) and the
/// attribute holds those people's entries in this same target — their DN in LDAP, their
/// SCIM `id` in SCIM — kept right when they are renamed or moved, and dropped while they
/// have no enabled entry (left, disabled, out of scope or excluded). A person's manager:
/// `{target: manager, template: "{{ manager_userid }}", refersTo: Person}` (SCIM: the
/// enterprise extension's `manager.value`); department heads as the group's owners:
/// `{target: owner, template: "{{ dept_manager_userid_list | join(',') }}", refersTo:
/// Person}` (SCIM: the heads become the members of a `<group> heads` Group). LDAP `manager`
/// and `owner` hold DNs, so a rule for them without `refersTo` is refused. Written after
/// everyone's entries exist, so a manager created in the same run is found; ownership is
/// always `Always`. Outbound: on `manager_userid` and a department's
/// `dept_manager_userid_list`, the template gives directory references (`{{ manager }}`,
/// `{{ owner }}`: every value, one a line), each turned into the userid of that entry.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum RefersTo {
    /// People of the same target, by DingTalk userid.
    Person,
}

/// Who owns an attribute after creation.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum Ownership {
    /// dingsync corrects any drift.
    #[default]
    Always,
    /// Only set when dingsync creates the entry.
    OnCreate,
    /// Set at creation, and later only while the directory's value is empty (absent or
    /// blank). A value there is never replaced or cleared, even when DingTalk later gains or
    /// changes its own: the directory keeps it until someone empties it, and then the next
    /// sync fills it from DingTalk again. Never folded into a lean read's digest.
    IfEmpty,
}

/// Links a source person to an existing target account by equal values.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MatchRule {
    /// Template giving the source value, e.g. `{{ mobile }}`.
    #[schemars(length(min = 1, max = 1024))]
    pub source: String,
    /// Target attribute compared with it (case-insensitive), e.g. `mobile` or `mail`.
    #[schemars(length(min = 1, max = 128))]
    pub target: String,
}

/// Username generation.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct UniqueName {
    /// The attribute that names the account (LDAP RDN attribute such as `uid`, SCIM `userName`).
    #[schemars(length(min = 1, max = 128))]
    pub attribute: String,
    /// Template of the wanted name, e.g. `{{ name | pinyin }}`.
    #[schemars(length(min = 1, max = 1024))]
    pub template: String,
    /// How a taken name is made unique: `Number` appends 2, 3, … (kept stable once given);
    /// `UserId` appends the DingTalk userid.
    #[serde(default)]
    pub suffix: SuffixStyle,
    /// The longest name the directory accepts, in characters (Active Directory's
    /// `sAMAccountName`: 20). Longer names, suffixes included, are cut to fit: the suffix
    /// stays whole, the wanted part loses its tail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2, max = 1024))]
    pub max_length: Option<u32>,
}

/// How a name collision is resolved.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum SuffixStyle {
    /// `zhangwei`, `zhangwei2`, `zhangwei3`, …
    #[default]
    Number,
    /// `zhangwei`, `zhangwei.<userid>`.
    UserId,
}

/// Whether the templates compile.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct FieldMappingStatus {
    /// Generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` (reason `Valid` or `InvalidRule`, with the rule and position in the message).
    #[serde(default)]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
}
