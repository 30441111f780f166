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
];

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
        let mut fields = Vec::new();
        for (i, r) in spec.user.attributes.iter().enumerate() {
            let label = format!("user.attributes[{i}] ({})", r.target);
            if r.refers_to.is_some() {
                return Err(err(
                    label,
                    "refersTo applies to Inbound mappings only".into(),
                ));
            }
            let known = DINGTALK_FIELDS.contains(&r.target.as_str())
                || r.target
                    .strip_prefix("extension.")
                    .is_some_and(|k| !k.is_empty());
            if !known {
                return Err(err(
                    label,
                    format!(
                        "{:?} is not a DingTalk user field; use one of {} or extension.<key>",
                        r.target,
                        DINGTALK_FIELDS.join(", ")
                    ),
                ));
            }
            add(label.clone(), &r.template)?;
            fields.push((label, r.target.clone()));
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
        })
    }

    fn render(&self, label: &str, ctx: &JValue) -> Result<String, RenderError> {
        render(&self.env, label, ctx)
    }

    /// Renders one entry (attribute names lowercased; first values).
    pub fn person(&self, attrs: &crate::directory::Attrs) -> Result<OutboundPerson, RenderError> {
        let ctx: BTreeMap<String, String> = attrs
            .iter()
            .filter_map(|(k, v)| v.first().map(|v| (k.to_ascii_lowercase(), v.to_owned())))
            .collect();
        let ctx = JValue::from_serialize(&ctx);
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
        Ok(OutboundPerson {
            userid,
            fields,
            keys,
        })
    }

    /// A department's DingTalk name from its directory entry (`name` is the entry's own name,
    /// e.g. the OU).
    pub fn department_name(
        &self,
        name: &str,
        attrs: &crate::directory::Attrs,
    ) -> Result<String, RenderError> {
        let mut ctx: BTreeMap<String, String> = attrs
            .iter()
            .filter_map(|(k, v)| v.first().map(|v| (k.to_ascii_lowercase(), v.to_owned())))
            .collect();
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
