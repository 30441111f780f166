//! Outbound mappings: templates over a directory entry's attributes give DingTalk's fields.
//!
//! The variables are the entry's attribute names, lowercased (`{{ uid }}`, `{{ mail }}`,
//! `{{ cn }}`), each the attribute's first value; directories differ, so any name is allowed
//! and an absent attribute renders empty. Targets are DingTalk user fields, checked here so a
//! typo is a clear mapping error, not a silently ignored rule.

use std::collections::BTreeMap;

use minijinja::{Environment, Value as JValue};

use super::{MappingError, RenderError, environment, render};
use crate::api::{FieldMappingSpec, target::Direction};

/// DingTalk user fields an Outbound mapping may write (besides `extension.<key>`).
pub const DINGTALK_FIELDS: &[&str] = &[
    "name",
    "mobile",
    "email",
    "org_email",
    "title",
    "job_number",
    "work_place",
    "telephone",
    "remark",
    "hired_date",
    "manager_userid",
    "dept_order_list",
    "dept_title_list",
];

/// DingTalk department fields an Outbound mapping may write (`department.attributes`).
pub const DEPARTMENT_FIELDS: &[&str] = &[
    "order",
    "hide_dept",
    "outer_dept",
    "dept_manager_userid_list",
];

/// The fields whose rule may say `refersTo: Person`: the template then gives directory
/// references (an LDAP DN, a SCIM id), one a line; each becomes the userid of that entry.
pub const REFERENCE_FIELDS: &[&str] = &["manager_userid", "dept_manager_userid_list"];

/// DingTalk user fields a `match` rule may compare with: the ones an existing DingTalk user
/// can be found by (`mobile` through `getbymobile`, the others in the target's subtree).
pub const MATCH_FIELDS: &[&str] = &["userid", "mobile", "email", "job_number"];

/// A compiled Outbound mapping.
#[derive(Debug)]
pub struct OutboundMapping {
    env: Environment<'static>,
    /// (label, DingTalk field).
    fields: Vec<(String, String)>,
    /// (label, DingTalk field compared with), in the order they are tried.
    matches: Vec<(String, String)>,
    /// `refersTo: Person` rules for people: (label, DingTalk field).
    refs: Vec<(String, String)>,
    /// Department rules: (label, DingTalk field, refersTo).
    dept_fields: Vec<(String, String, bool)>,
}

/// What one directory entry becomes in DingTalk.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutboundPerson {
    pub userid: String,
    /// DingTalk field → value; an empty value means "no value".
    pub fields: BTreeMap<String, String>,
    /// The `match` rules rendered for this entry, in order: (DingTalk field, value). A rule
    /// that rendered empty is left out (it finds nobody).
    pub keys: Vec<(String, String)>,
    /// `refersTo: Person` rules: DingTalk field → the directory references rendered.
    pub refs: BTreeMap<String, Vec<String>>,
}

/// What one directory container gives DingTalk's department besides its name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutboundDeptFields {
    /// DingTalk field → value; an empty value means "no value".
    pub fields: BTreeMap<String, String>,
    /// `refersTo: Person` rules: DingTalk field → the directory references rendered.
    pub refs: BTreeMap<String, Vec<String>>,
}

impl OutboundPerson {
    /// The value a `match` rule on `field` gives, when there is one.
    pub fn key(&self, field: &str) -> Option<&str> {
        self.keys
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, v)| v.as_str())
    }
}

const USERID: &str = "user.uniqueName";
const DEPT_NAME: &str = "department.nameTemplate";

/// Why a user attribute rule of an Outbound mapping cannot be written, if it cannot.
fn check_user_rule(target: &str, refers: bool) -> Result<(), String> {
    if refers && !REFERENCE_FIELDS.contains(&target) {
        return Err(format!(
            "refersTo on an Outbound mapping applies to {} only",
            REFERENCE_FIELDS.join(", ")
        ));
    }
    let known = DINGTALK_FIELDS.contains(&target)
        || target
            .strip_prefix("extension.")
            .is_some_and(|k| !k.is_empty());
    if !known {
        return Err(format!(
            "{target:?} is not a DingTalk user field; use one of {} or extension.<key>",
            DINGTALK_FIELDS.join(", ")
        ));
    }
    Ok(())
}

/// Why a department attribute rule of an Outbound mapping cannot be written, if it cannot.
fn check_dept_rule(target: &str, refers: bool) -> Result<(), String> {
    if !DEPARTMENT_FIELDS.contains(&target) {
        return Err(format!(
            "{target:?} is not a DingTalk department field an Outbound mapping writes; use one of {}",
            DEPARTMENT_FIELDS.join(", ")
        ));
    }
    if refers && !REFERENCE_FIELDS.contains(&target) {
        return Err("refersTo applies to dept_manager_userid_list only".into());
    }
    Ok(())
}

impl OutboundMapping {
    pub fn compile(spec: &FieldMappingSpec) -> Result<Self, MappingError> {
        let err = |rule: String, message: String| MappingError { rule, message };
        if spec.direction != Direction::Outbound {
            return Err(err(
                "direction".into(),
                "an Outbound target needs a FieldMapping with direction: Outbound".into(),
            ));
        }
        if spec.user.unique_name.attribute != "userid" {
            return Err(err(
                "user.uniqueName.attribute".into(),
                format!(
                    "must be userid for an Outbound mapping (the template gives the DingTalk userid), got {:?}",
                    spec.user.unique_name.attribute
                ),
            ));
        }
        let mut env = environment();
        let mut add = |label: String, template: &str| {
            env.add_template_owned(label.clone(), template.to_string())
                .map_err(|e| err(label, e.detail().unwrap_or("syntax error").to_string()))
        };
        add(USERID.into(), &spec.user.unique_name.template)?;
        let name_template = spec
            .department
            .as_ref()
            .and_then(|d| d.name_template.clone())
            .unwrap_or_else(|| "{{ name }}".into());
        add(DEPT_NAME.into(), &name_template)?;
        let (mut fields, mut refs) = (Vec::new(), Vec::new());
        for (i, r) in spec.user.attributes.iter().enumerate() {
            let label = format!("user.attributes[{i}] ({})", r.target);
            check_user_rule(&r.target, r.refers_to.is_some()).map_err(|m| err(label.clone(), m))?;
            add(label.clone(), &r.template)?;
            match r.refers_to {
                Some(_) => refs.push((label, r.target.clone())),
                None => fields.push((label, r.target.clone())),
            }
        }
        let mut dept_fields = Vec::new();
        let dept_rules = spec.department.iter().flat_map(|d| &d.attributes);
        for (i, r) in dept_rules.enumerate() {
            let label = format!("department.attributes[{i}] ({})", r.target);
            check_dept_rule(&r.target, r.refers_to.is_some()).map_err(|m| err(label.clone(), m))?;
            add(label.clone(), &r.template)?;
            dept_fields.push((label, r.target.clone(), r.refers_to.is_some()));
        }
        let mut matches = Vec::new();
        for (i, r) in spec.user.match_rules.iter().enumerate() {
            let label = format!("user.match[{i}] ({})", r.target);
            if !MATCH_FIELDS.contains(&r.target.as_str()) {
                return Err(err(
                    label,
                    format!(
                        "an Outbound match rule compares with one of {}, not {:?}",
                        MATCH_FIELDS.join(", "),
                        r.target
                    ),
                ));
            }
            add(label.clone(), &r.source)?;
            matches.push((label, r.target.clone()));
        }
        if !fields.iter().any(|(_, f)| f == "name") {
            return Err(err(
                "user.attributes".into(),
                "an Outbound mapping must give DingTalk's required name".into(),
            ));
        }
        Ok(OutboundMapping {
            env,
            fields,
            matches,
            refs,
            dept_fields,
        })
    }

    fn render(&self, label: &str, ctx: &JValue) -> Result<String, RenderError> {
        render(&self.env, label, ctx)
    }

    /// Renders one entry (attribute names lowercased; first values, except for `refersTo`
    /// rules, which see every value, one a line).
    pub fn person(&self, attrs: &crate::directory::Attrs) -> Result<OutboundPerson, RenderError> {
        let ctx = JValue::from_serialize(first_values(attrs));
        let userid = self.render(USERID, &ctx)?;
        let mut fields = BTreeMap::new();
        for (label, field) in &self.fields {
            fields.insert(field.clone(), self.render(label, &ctx)?);
        }
        let mut keys = Vec::new();
        for (label, field) in &self.matches {
            let v = self.render(label, &ctx)?;
            if !v.trim().is_empty() {
                keys.push((field.clone(), v.trim().to_string()));
            }
        }
        let refs = self.references(&self.refs, attrs)?;
        Ok(OutboundPerson {
            userid,
            fields,
            keys,
            refs,
        })
    }

    /// Renders `refersTo` rules over every value of each attribute, one a line.
    fn references<'r>(
        &self,
        rules: impl IntoIterator<Item = &'r (String, String)>,
        attrs: &crate::directory::Attrs,
    ) -> Result<BTreeMap<String, Vec<String>>, RenderError> {
        let all: BTreeMap<String, String> = attrs
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_vec().join("\n")))
            .collect();
        let ctx = JValue::from_serialize(&all);
        let mut refs = BTreeMap::new();
        for (label, field) in rules {
            let text = self.render(label, &ctx)?;
            let list = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect();
            refs.insert(field.clone(), list);
        }
        Ok(refs)
    }

    /// A container's department fields (`department.attributes`).
    pub fn department_fields(
        &self,
        name: &str,
        attrs: &crate::directory::Attrs,
    ) -> Result<OutboundDeptFields, RenderError> {
        let mut ctx = first_values(attrs);
        ctx.insert("name".into(), name.to_string());
        let ctx = JValue::from_serialize(&ctx);
        let mut out = OutboundDeptFields::default();
        let mut ref_rules = Vec::new();
        for (label, field, refers) in &self.dept_fields {
            if *refers {
                ref_rules.push((label.clone(), field.clone()));
            } else {
                out.fields
                    .insert(field.clone(), self.render(label, &ctx)?.trim().to_string());
            }
        }
        out.refs = self.references(&ref_rules, attrs)?;
        Ok(out)
    }

    /// Whether the mapping writes any department field besides the name.
    pub fn has_department_fields(&self) -> bool {
        !self.dept_fields.is_empty()
    }

    /// A department's DingTalk name from its directory entry (`name` is the entry's own name,
    /// e.g. the OU).
    pub fn department_name(
        &self,
        name: &str,
        attrs: &crate::directory::Attrs,
    ) -> Result<String, RenderError> {
        let mut ctx = first_values(attrs);
        ctx.insert("name".into(), name.to_string());
        self.render(DEPT_NAME, &JValue::from_serialize(&ctx))
    }

    /// Whether any `match` rule compares with `field`.
    pub fn matches_on(&self, field: &str) -> bool {
        self.matches.iter().any(|(_, f)| f == field)
    }

    /// Fields the mapping writes (the rest of a DingTalk user is left alone).
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|(_, f)| f.as_str())
    }
}

/// Each attribute's first value, by its lowercased name.
fn first_values(attrs: &crate::directory::Attrs) -> BTreeMap<String, String> {
    attrs
        .iter()
        .filter_map(|(k, v)| v.first().map(|v| (k.to_ascii_lowercase(), v.to_owned())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> FieldMappingSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn renders_directory_attributes_into_dingtalk_fields() {
        let m = OutboundMapping::compile(&spec(
            "direction: Outbound\nuser:\n  uniqueName: {attribute: userid, template: '{{ uid }}'}\n  attributes:\n  - {target: name, template: '{{ cn }}'}\n  - {target: email, template: '{{ mail | lower }}'}\n  - {target: extension.badge, template: '{{ employeenumber }}'}\n",
        ))
        .unwrap();
        let attrs = crate::directory::Attrs::from([
            ("uid".to_string(), vec!["zhangwei".to_string()]),
            ("cn".to_string(), vec!["张伟".to_string()]),
            (
                "mail".to_string(),
                vec!["Zhang.Wei@Example.com".to_string()],
            ),
        ]);
        let p = m.person(&attrs).unwrap();
        assert_eq!(p.userid, "zhangwei");
        assert_eq!(p.fields["name"], "张伟");
        assert_eq!(p.fields["email"], "zhang.wei@example.com");
        assert_eq!(
            p.fields["extension.badge"], "",
            "absent attribute renders empty"
        );
    }

    #[test]
    fn references_see_every_value_and_department_fields_are_checked() {
        let m = OutboundMapping::compile(&spec(
            "direction: Outbound\nuser:\n  uniqueName: {attribute: userid, template: '{{ uid }}'}\n  attributes:\n  - {target: name, template: '{{ cn }}'}\n  - {target: manager_userid, template: '{{ manager }}', refersTo: Person}\ndepartment:\n  attributes:\n  - {target: dept_manager_userid_list, template: '{{ owner }}', refersTo: Person}\n  - {target: hide_dept, template: 'true'}\n",
        ))
        .unwrap();
        let attrs = crate::directory::Attrs::from([
            ("uid".to_string(), vec!["a".to_string()]),
            (
                "owner".to_string(),
                vec!["uid=x,o=t".to_string(), "uid=y,o=t".to_string()],
            ),
            ("manager".to_string(), vec!["uid=x,o=t".to_string()]),
        ]);
        let p = m.person(&attrs).unwrap();
        assert_eq!(p.refs["manager_userid"], ["uid=x,o=t"]);
        assert!(!p.fields.contains_key("manager_userid"));
        let d = m.department_fields("研发", &attrs).unwrap();
        assert_eq!(
            d.refs["dept_manager_userid_list"],
            ["uid=x,o=t", "uid=y,o=t"]
        );
        assert_eq!(d.fields["hide_dept"], "true");
        for (yaml, want) in [
            (
                "  - {target: title, template: '{{ manager }}', refersTo: Person}\n",
                "user.attributes[1] (title)",
            ),
            (
                "department:\n  attributes:\n  - {target: brief, template: 'x'}\n",
                "department.attributes[0] (brief)",
            ),
            (
                "  match:\n  - {source: '{{ cn }}', target: name}\n",
                "user.match[0] (name)",
            ),
        ] {
            let text = format!(
                "direction: Outbound\nuser:\n  uniqueName: {{attribute: userid, template: '{{{{ uid }}}}'}}\n  attributes:\n  - {{target: name, template: '{{{{ cn }}}}'}}\n{yaml}"
            );
            let e = OutboundMapping::compile(&spec(&text))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{yaml}: {e}");
        }
    }

    #[test]
    fn errors_name_the_rule() {
        for (yaml, want) in [
            (
                "user:\n  uniqueName: {attribute: userid, template: '{{ uid }}'}\n  attributes:\n  - {target: name, template: '{{ cn }}'}\n",
                "direction",
            ),
            (
                "direction: Outbound\nuser:\n  uniqueName: {attribute: uid, template: '{{ uid }}'}\n  attributes:\n  - {target: name, template: '{{ cn }}'}\n",
                "user.uniqueName.attribute",
            ),
            (
                "direction: Outbound\nuser:\n  uniqueName: {attribute: userid, template: '{{ uid }}'}\n  attributes:\n  - {target: nickname, template: '{{ cn }}'}\n",
                "user.attributes[0] (nickname)",
            ),
            (
                "direction: Outbound\nuser:\n  uniqueName: {attribute: userid, template: '{{ uid }}'}\n  attributes:\n  - {target: title, template: '{{ cn }}'}\n",
                "required name",
            ),
            (
                "direction: Outbound\nuser:\n  uniqueName: {attribute: userid, template: '{{ uid'}\n  attributes:\n  - {target: name, template: '{{ cn }}'}\n",
                "user.uniqueName",
            ),
        ] {
            let e = OutboundMapping::compile(&spec(yaml))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{yaml}: {e}");
        }
    }
}
