//! FieldMapping, compiled once: attribute templates, match rules and the username template,
//! on minijinja with the filters a Chinese org needs.

pub mod outbound;

use std::collections::BTreeSet;

use minijinja::{Environment, UndefinedBehavior, Value as JValue};

use crate::{
    api::{FieldMappingSpec, mapping::Ownership},
    directory::{Attrs, Name},
    model::{DEPARTMENT_FIELDS, Department, PERSON_FIELDS, Person},
};

/// A template that does not compile, or names a field the source does not have.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{rule}: {message}")]
pub struct MappingError {
    /// Which rule, e.g. `user.attributes[2] (mail)`.
    pub rule: String,
    pub message: String,
}

/// A template that failed for one record.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{rule}: {message}")]
pub struct RenderError {
    pub rule: String,
    pub message: String,
}

/// One compiled attribute rule.
#[derive(Debug, Clone)]
struct Rule {
    label: String,
    /// Interned: every rendered person shares it.
    target: Name,
    ownership: Ownership,
}

/// A person's fields prepared for rendering.
pub struct PersonContext(JValue);

/// A compiled FieldMapping.
#[derive(Debug)]
pub struct Mapping {
    env: Environment<'static>,
    user: Vec<Rule>,
    matches: Vec<Rule>,
    name_attr: String,
    suffix: crate::api::mapping::SuffixStyle,
    dept: Vec<Rule>,
}

/// Toneless pinyin (ü as v), lowercase, no separators; characters without pinyin are kept as they are
/// (lowercased ASCII), so `张伟A` becomes `zhangweia`.
pub fn pinyin(s: &str) -> String {
    use pinyin::ToPinyin;
    let mut out = String::with_capacity(s.len() * 2);
    for c in s.chars() {
        match c.to_pinyin() {
            // ü has no ASCII form; `v` is how pinyin input methods and usernames spell it.
            Some(p) => out.push_str(&p.plain().replace('ü', "v")),
            None if c.is_whitespace() => {}
            None => out.extend(c.to_lowercase()),
        }
    }
    out
}

/// Renders the compiled template `label`, trimmed; an error names the rule.
fn render(env: &Environment<'static>, label: &str, ctx: &JValue) -> Result<String, RenderError> {
    let t = env.get_template(label).expect("compiled");
    t.render(ctx)
        .map(|s| s.trim().to_string())
        .map_err(|e| RenderError {
            rule: label.to_string(),
            message: e.to_string(),
        })
}

/// The template environment every person template compiles in, with its filters.
pub(crate) fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    env.add_filter("pinyin", |s: String| pinyin(&s));
    env.add_filter("email_local", |s: String| {
        s.split('@').next().unwrap_or("").to_string()
    });
    env.add_filter("email_domain", |s: String| {
        s.split_once('@')
            .map(|(_, d)| d.to_string())
            .unwrap_or_default()
    });
    env.add_filter("initials", |s: String| {
        use pinyin::ToPinyin;
        s.chars()
            .filter_map(|c| c.to_pinyin().map(|p| p.first_letter().to_string()))
            .collect::<String>()
    });
    env
}

impl Mapping {
    /// Compile every template; the first error names the rule and what is wrong.
    pub fn compile(spec: &FieldMappingSpec) -> Result<Self, MappingError> {
        let mut env = environment();
        let add =
            |env: &mut Environment<'static>, label: String, template: &str, known: &[&str]| {
                env.add_template_owned(label.clone(), template.to_string())
                    .map_err(|e| MappingError {
                        rule: label.clone(),
                        message: format!(
                            "{}{}",
                            e.detail().unwrap_or("syntax error"),
                            e.line().map(|l| format!(" (line {l})")).unwrap_or_default()
                        ),
                    })?;
                let tmpl = env.get_template(&label).expect("just added");
                let unknown: BTreeSet<String> = tmpl
                    .undeclared_variables(false)
                    .into_iter()
                    .filter(|v| !known.contains(&v.as_str()))
                    .collect();
                if let Some(v) = unknown.into_iter().next() {
                    return Err(MappingError {
                        rule: label,
                        message: format!("unknown field {v:?}; known fields: {}", known.join(", ")),
                    });
                }
                Ok(())
            };
        let mut user = vec![];
        for (i, r) in spec.user.attributes.iter().enumerate() {
            let label = format!("user.attributes[{i}] ({})", r.target);
            add(&mut env, label.clone(), &r.template, PERSON_FIELDS)?;
            user.push(Rule {
                label,
                target: Name::new(&r.target),
                ownership: r.ownership,
            });
        }
        let mut matches = vec![];
        for (i, r) in spec.user.match_rules.iter().enumerate() {
            let label = format!("user.match[{i}] ({})", r.target);
            add(&mut env, label.clone(), &r.source, PERSON_FIELDS)?;
            matches.push(Rule {
                label,
                target: Name::new(&r.target),
                ownership: Ownership::Always,
            });
        }
        add(
            &mut env,
            "user.uniqueName".into(),
            &spec.user.unique_name.template,
            PERSON_FIELDS,
        )?;
        let mut dept = vec![];
        let name_template = spec
            .department
            .as_ref()
            .and_then(|d| d.name_template.clone())
            .unwrap_or_else(|| "{{ name }}".into());
        add(
            &mut env,
            "department.nameTemplate".into(),
            &name_template,
            DEPARTMENT_FIELDS,
        )?;
        if let Some(d) = &spec.department {
            for (i, r) in d.attributes.iter().enumerate() {
                let label = format!("department.attributes[{i}] ({})", r.target);
                add(&mut env, label.clone(), &r.template, DEPARTMENT_FIELDS)?;
                dept.push(Rule {
                    label,
                    target: Name::new(&r.target),
                    ownership: r.ownership,
                });
            }
        }
        Ok(Self {
            env,
            user,
            matches,
            name_attr: spec.user.unique_name.attribute.clone(),
            suffix: spec.user.unique_name.suffix,
            dept,
        })
    }

    /// The attribute that names an account (`uid`, `userName`).
    pub fn name_attribute(&self) -> &str {
        &self.name_attr
    }

    pub fn suffix_style(&self) -> crate::api::mapping::SuffixStyle {
        self.suffix
    }

    fn render(&self, label: &str, ctx: &JValue) -> Result<String, RenderError> {
        render(&self.env, label, ctx)
    }

    /// The attributes a person should have. `creating` includes `OnCreate` rules. An empty
    /// result means "no value".
    pub fn person_attributes(&self, person: &Person, creating: bool) -> Result<Attrs, RenderError> {
        self.person_attributes_in(&self.context(person), creating)
    }

    /// A person's template context, built once and reused by every rule (the diff renders
    /// several templates per person; converting the fields each time dominated its cost).
    pub fn context(&self, person: &Person) -> PersonContext {
        PersonContext(person.fields.to_jinja())
    }

    /// [`Mapping::person_attributes`] with a prepared context.
    pub fn person_attributes_in(
        &self,
        ctx: &PersonContext,
        creating: bool,
    ) -> Result<Attrs, RenderError> {
        let ctx = &ctx.0;
        let mut out = Attrs::new();
        for r in &self.user {
            if r.ownership == Ownership::OnCreate && !creating {
                continue;
            }
            let v = self.render(&r.label, ctx)?;
            out.insert(
                r.target.clone(),
                if v.is_empty() { vec![] } else { vec![v] },
            );
        }
        Ok(out)
    }

    /// The person fields the person templates read (top-level names): a source need keep
    /// no other field of a person, plus those the engine reads itself (`mobile`, `email`,
    /// `org_email`, counted when missing).
    pub fn person_fields(&self) -> BTreeSet<String> {
        let labels = (self.user.iter().chain(&self.matches))
            .map(|r| r.label.as_str())
            .chain(["user.uniqueName"]);
        let mut fields: BTreeSet<String> = ["mobile", "email", "org_email"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        for label in labels {
            let t = self.env.get_template(label).expect("compiled");
            fields.extend(t.undeclared_variables(false));
        }
        fields
    }

    /// Attributes only dingsync keeps in step (`Always`), whose drift it corrects.
    pub fn owned_person_attributes(&self) -> impl Iterator<Item = &str> {
        self.user
            .iter()
            .filter(|r| r.ownership == Ownership::Always)
            .map(|r| r.target.as_str())
    }

    /// The name the person would like (before de-duplication).
    pub fn wanted_name(&self, person: &Person) -> Result<String, RenderError> {
        self.wanted_name_in(person, &self.context(person))
    }

    /// [`Mapping::wanted_name`] with a prepared context.
    pub fn wanted_name_in(
        &self,
        person: &Person,
        ctx: &PersonContext,
    ) -> Result<String, RenderError> {
        let name = self.render("user.uniqueName", &ctx.0)?;
        if name.is_empty() {
            return Err(RenderError {
                rule: "user.uniqueName".into(),
                message: format!("renders empty for {}", person.id),
            });
        }
        Ok(name)
    }

    /// (target attribute, lowercased value) per match rule, in order; empty values skipped.
    pub fn match_values(&self, person: &Person) -> Result<Vec<(String, String)>, RenderError> {
        self.match_values_in(&self.context(person))
    }

    /// [`Mapping::match_values`] with a prepared context.
    pub fn match_values_in(
        &self,
        ctx: &PersonContext,
    ) -> Result<Vec<(String, String)>, RenderError> {
        let mut out = vec![];
        for r in &self.matches {
            let v = self.render(&r.label, &ctx.0)?;
            if !v.is_empty() {
                out.push((r.target.to_string(), v.to_lowercase()));
            }
        }
        Ok(out)
    }

    /// The group (or OU) name of a department.
    pub fn department_name(&self, dept: &Department) -> Result<String, RenderError> {
        let name = self.render("department.nameTemplate", &dept.fields.to_jinja())?;
        if name.is_empty() {
            return Err(RenderError {
                rule: "department.nameTemplate".into(),
                message: format!("renders empty for department {}", dept.id),
            });
        }
        Ok(name)
    }

    /// Department attributes; `creating` includes `OnCreate` rules.
    pub fn department_attributes(
        &self,
        dept: &Department,
        creating: bool,
    ) -> Result<Attrs, RenderError> {
        let ctx = dept.fields.to_jinja();
        let mut out = Attrs::new();
        for r in &self.dept {
            if r.ownership == Ownership::OnCreate && !creating {
                continue;
            }
            let v = self.render(&r.label, &ctx)?;
            out.insert(
                r.target.clone(),
                if v.is_empty() { vec![] } else { vec![v] },
            );
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::mapping::{AttributeRule, MatchRule, UniqueName, UserMapping};

    fn spec(attr_template: &str) -> FieldMappingSpec {
        FieldMappingSpec {
            direction: Default::default(),
            user: UserMapping {
                attributes: vec![AttributeRule {
                    target: "mail".into(),
                    template: attr_template.into(),
                    ..Default::default()
                }],
                match_rules: vec![MatchRule {
                    source: "{{ mobile }}".into(),
                    target: "mobile".into(),
                }],
                unique_name: UniqueName {
                    attribute: "uid".into(),
                    template: "{{ name | pinyin }}".into(),
                    ..Default::default()
                },
            },
            department: None,
        }
    }

    #[test]
    fn person_fields_are_what_the_templates_read() {
        let m = Mapping::compile(&spec(
            "{{ job_number or title }}@{{ extension['工号'] | default('x') }}",
        ))
        .unwrap();
        let fields: Vec<String> = m.person_fields().into_iter().collect();
        assert_eq!(
            fields,
            [
                "email",
                "extension",
                "job_number",
                "mobile",
                "name",
                "org_email",
                "title"
            ]
        );
    }

    fn person() -> Person {
        let fields = serde_json::json!({"userid": "u1", "name": "张伟", "email": "Zhang.Wei@Example.com", "mobile": "13800000000"});
        Person {
            id: "u1".into(),
            name: "张伟".into(),
            departments: vec![],
            main_department: None,
            fields: serde_json::from_value(fields).unwrap(),
        }
    }

    #[test]
    fn pinyin_is_toneless_lowercase_and_keeps_other_characters() {
        assert_eq!(pinyin("张伟"), "zhangwei");
        assert_eq!(pinyin("吕 布B"), "lvbub");
    }

    #[test]
    fn renders_with_filters() {
        let m = Mapping::compile(&spec("{{ email | lower }}")).unwrap();
        let p = person();
        assert_eq!(
            m.person_attributes(&p, true)
                .unwrap()
                .values_of("mail")
                .unwrap(),
            vec!["zhang.wei@example.com".to_string()]
        );
        assert_eq!(m.wanted_name(&p).unwrap(), "zhangwei");
        assert_eq!(
            m.match_values(&p).unwrap(),
            vec![("mobile".to_string(), "13800000000".to_string())]
        );
    }

    #[test]
    fn syntax_errors_and_unknown_fields_name_the_rule() {
        let e = Mapping::compile(&spec("{{ email | lower ")).unwrap_err();
        assert_eq!(e.rule, "user.attributes[0] (mail)");
        let e = Mapping::compile(&spec("{{ emial }}")).unwrap_err();
        assert_eq!(e.rule, "user.attributes[0] (mail)");
        assert!(e.message.contains("emial"), "{e}");
    }
}
