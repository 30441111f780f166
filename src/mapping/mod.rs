//! FieldMapping, compiled once: attribute templates, match rules and the username template,
//! on minijinja with the filters a Chinese org needs.

pub mod outbound;

use std::collections::BTreeSet;

use minijinja::{Environment, UndefinedBehavior, Value as JValue};

use crate::{
    api::{
        FieldMappingSpec,
        mapping::{AttributeRule, Ownership},
    },
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
    name_max: Option<usize>,
    dept: Vec<Rule>,
    /// `refersTo: Person` rules: kept apart from `user`/`dept`, since their values are
    /// userids the engine turns into entries, never text written as rendered.
    user_refs: Vec<Rule>,
    dept_refs: Vec<Rule>,
}

/// Attributes whose values name other entries (LDAP DN syntax, the SCIM enterprise manager):
/// rendered text there would be refused by the server or point nowhere.
const REFERENCE_ATTRIBUTES: &[&str] = &[
    "manager",
    "owner",
    "secretary",
    "seealso",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:manager",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:manager.value",
];

/// Whether a rule is a reference rule, and whether it is a valid one.
fn is_reference(label: &str, r: &AttributeRule, name_attr: &str) -> Result<bool, MappingError> {
    let err = |message: String| MappingError {
        rule: label.to_string(),
        message,
    };
    let lower = r.target.to_ascii_lowercase();
    if r.refers_to.is_none() {
        if REFERENCE_ATTRIBUTES.contains(&lower.as_str()) {
            return Err(err(format!(
                "{} holds references to entries, not text: add `refersTo: Person` with a \
                 template giving userids, e.g. {{{{ manager_userid }}}}",
                r.target
            )));
        }
        return Ok(false);
    }
    if r.ownership != Ownership::Always {
        return Err(err(
            "refersTo: a reference is always kept in step; ownership must be Always".into(),
        ));
    }
    if lower == name_attr.to_ascii_lowercase() {
        return Err(err(
            "refersTo: the naming attribute cannot be a reference".into()
        ));
    }
    Ok(true)
}

/// A reference rule's rendering as userids: separated by commas or whitespace, blanks and
/// repeats dropped.
fn userids(rendered: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for id in rendered.split(|c: char| c == ',' || c.is_whitespace()) {
        if !id.is_empty() && !out.iter().any(|o| o == id) {
            out.push(id.to_string());
        }
    }
    out
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
    env.add_filter("fromjson", fromjson);
    env.add_filter("initials", |s: String| {
        use pinyin::ToPinyin;
        s.chars()
            .filter_map(|c| c.to_pinyin().map(|p| p.first_letter().to_string()))
            .collect::<String>()
    });
    env
}

/// `{{ field | fromjson }}`: a field holding JSON text, as a value templates can index. Text
/// that is not JSON fails the template (the error says where, never the text: it is often
/// personal data); empty text is none.
fn fromjson(s: String) -> Result<JValue, minijinja::Error> {
    if s.trim().is_empty() {
        return Ok(JValue::from(()));
    }
    serde_json::from_str::<serde_json::Value>(&s)
        .map(JValue::from_serialize)
        .map_err(|e| {
            minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                format!("fromjson: the text is not JSON ({e})"),
            )
        })
}

/// Jinja names are ASCII, but custom field keys are often Chinese: `extension.工号` is read as
/// `extension['工号']`. Rewritten inside `{{ }}` and `{% %}` only, outside string literals;
/// the text keeps its lines, so errors point where the author wrote.
fn bracket_unicode_keys(template: &str) -> std::borrow::Cow<'_, str> {
    if template.is_ascii() {
        return template.into();
    }
    let mut out = String::with_capacity(template.len() + 8);
    let mut chars = template.chars().peekable();
    let (mut in_tag, mut quote) = (false, None::<char>);
    let mut prev = '\0';
    while let Some(c) = chars.next() {
        match (in_tag, quote) {
            (false, _) if prev == '{' && (c == '{' || c == '%') => in_tag = true,
            (true, None) if (c == '}' || c == '%') && chars.peek() == Some(&'}') => in_tag = false,
            (true, None) if c == '"' || c == '\'' => quote = Some(c),
            (true, Some(q)) if c == q && prev != '\\' => quote = None,
            (true, None)
                if c == '.'
                    && chars
                        .peek()
                        .is_some_and(|n| !n.is_ascii() && n.is_alphanumeric()) =>
            {
                let mut key = String::new();
                while let Some(&n) = chars.peek().filter(|n| n.is_alphanumeric() || **n == '_') {
                    key.push(n);
                    chars.next();
                }
                out.push_str("['");
                out.push_str(&key);
                out.push_str("']");
                prev = ']';
                continue;
            }
            _ => {}
        }
        out.push(c);
        prev = c;
    }
    out.into()
}

/// Whether an attribute has no value: absent, or only blank values.
fn is_blank(attrs: &Attrs, name: &str) -> bool {
    let values = if name.bytes().any(|b| b.is_ascii_uppercase()) {
        attrs.get(&name.to_ascii_lowercase())
    } else {
        attrs.get(name)
    };
    values.is_none_or(|mut v| v.all(|v| v.trim().is_empty()))
}

/// Of `wanted`, the `IfEmpty` attributes of `rules` stay only where they would fill a blank
/// attribute of `current` with a value: a value already there (the admin's, or one dingsync
/// wrote before) is never replaced, and an empty rendering never clears it.
fn keep_fills(rules: &[Rule], current: &Attrs, wanted: &mut Attrs) {
    for r in rules.iter().filter(|r| r.ownership == Ownership::IfEmpty) {
        let fills = wanted.get(r.target.as_str()).is_some_and(|v| !v.is_empty())
            && is_blank(current, r.target.as_str());
        if !fills {
            wanted.remove(r.target.as_str());
        }
    }
}

impl Mapping {
    /// Compile every template; the first error names the rule and what is wrong.
    pub fn compile(spec: &FieldMappingSpec) -> Result<Self, MappingError> {
        let mut env = environment();
        let add =
            |env: &mut Environment<'static>, label: String, template: &str, known: &[&str]| {
                env.add_template_owned(label.clone(), bracket_unicode_keys(template).into_owned())
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
        let (mut user, mut user_refs) = (vec![], vec![]);
        let name_attr = &spec.user.unique_name.attribute;
        for (i, r) in spec.user.attributes.iter().enumerate() {
            let label = format!("user.attributes[{i}] ({})", r.target);
            add(&mut env, label.clone(), &r.template, PERSON_FIELDS)?;
            let rules = if is_reference(&label, r, name_attr)? {
                &mut user_refs
            } else {
                &mut user
            };
            rules.push(Rule {
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
        let (mut dept, mut dept_refs) = (vec![], vec![]);
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
                let rules = if is_reference(&label, r, "")? {
                    &mut dept_refs
                } else {
                    &mut dept
                };
                rules.push(Rule {
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
            name_max: spec.user.unique_name.max_length.map(|n| n as usize),
            dept,
            user_refs,
            dept_refs,
        })
    }

    /// The attribute that names an account (`uid`, `userName`).
    pub fn name_attribute(&self) -> &str {
        &self.name_attr
    }

    pub fn suffix_style(&self) -> crate::api::mapping::SuffixStyle {
        self.suffix
    }

    /// The longest account name the directory takes (AD's `sAMAccountName`: 20).
    pub fn name_max_length(&self) -> Option<usize> {
        self.name_max
    }

    fn render(&self, label: &str, ctx: &JValue) -> Result<String, RenderError> {
        render(&self.env, label, ctx)
    }

    /// The attributes a person should have. `creating` includes `OnCreate` rules; `IfEmpty`
    /// rules are always rendered, for [`Mapping::keep_person_fills`] to settle against the
    /// entry. An empty result means "no value".
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

    /// Whether a department template reads the department's heads: an event about a person
    /// then re-reads their departments too, since making someone a head changes the
    /// department, and DingTalk may only say so with an event about the person.
    pub fn reads_heads(&self) -> bool {
        (self.dept.iter().chain(&self.dept_refs)).any(|r| {
            let t = self.env.get_template(r.label.as_str()).expect("compiled");
            t.undeclared_variables(false)
                .contains("dept_manager_userid_list")
        })
    }

    /// The person fields the person templates read (top-level names): a source need keep
    /// no other field of a person, plus those the engine reads itself (`mobile`, `email`,
    /// `org_email`, counted when missing).
    pub fn person_fields(&self) -> BTreeSet<String> {
        let labels = (self.user.iter().chain(&self.matches).chain(&self.user_refs))
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
        // `dept_names` follow the order of `dept_id_list`: a lean read must keep it.
        if fields.contains("dept_names") {
            fields.insert("dept_id_list".to_owned());
        }
        fields
    }

    /// Whether the person templates read `dept_names` (filling it costs a field per person).
    pub fn reads_dept_names(&self) -> bool {
        self.person_fields().contains("dept_names")
    }

    /// Drop from `wanted` (a person's rendered attributes) the `IfEmpty` attributes that would
    /// not fill a blank attribute of `current` (their entry's attributes, names lowercase).
    pub fn keep_person_fills(&self, current: &Attrs, wanted: &mut Attrs) {
        keep_fills(&self.user, current, wanted);
    }

    /// [`Mapping::keep_person_fills`] for a department's attributes.
    pub fn keep_department_fills(&self, current: &Attrs, wanted: &mut Attrs) {
        keep_fills(&self.dept, current, wanted);
    }

    /// Only the `IfEmpty` attributes of `attrs` (a person's).
    pub fn person_fills(&self, mut attrs: Attrs) -> Attrs {
        attrs.retain(|k, _| {
            (self.user.iter()).any(|r| r.ownership == Ownership::IfEmpty && r.target == *k)
        });
        // Kept per person for the whole plan: without what the dropped values allocated.
        attrs.shrink();
        attrs
    }

    /// Attributes only dingsync keeps in step (`Always`), whose drift it corrects.
    pub fn owned_person_attributes(&self) -> impl Iterator<Item = &str> {
        self.user
            .iter()
            .filter(|r| r.ownership == Ownership::Always)
            .map(|r| r.target.as_str())
    }

    /// Whether any rule is a reference (`refersTo`).
    pub fn has_references(&self) -> bool {
        !self.user_refs.is_empty() || !self.dept_refs.is_empty()
    }

    /// Whether a department rule is a reference (its heads, say).
    pub fn has_department_references(&self) -> bool {
        !self.dept_refs.is_empty()
    }

    /// The attributes of departments that hold references.
    pub fn department_reference_attributes(&self) -> impl Iterator<Item = &Name> {
        self.dept_refs.iter().map(|r| &r.target)
    }

    /// The attributes of people that hold references.
    pub fn person_reference_attributes(&self) -> impl Iterator<Item = &Name> {
        self.user_refs.iter().map(|r| &r.target)
    }

    /// The userids each reference rule names for a person, by attribute.
    pub fn person_references(
        &self,
        person: &Person,
    ) -> Result<Vec<(Name, Vec<String>)>, RenderError> {
        if self.user_refs.is_empty() {
            return Ok(vec![]);
        }
        let ctx = person.fields.to_jinja();
        (self.user_refs.iter())
            .map(|r| Ok((r.target.clone(), userids(&self.render(&r.label, &ctx)?))))
            .collect()
    }

    /// The userids each reference rule names for a department, by attribute.
    pub fn department_references(
        &self,
        dept: &Department,
    ) -> Result<Vec<(Name, Vec<String>)>, RenderError> {
        if self.dept_refs.is_empty() {
            return Ok(vec![]);
        }
        let ctx = dept.fields.to_jinja();
        (self.dept_refs.iter())
            .map(|r| Ok((r.target.clone(), userids(&self.render(&r.label, &ctx)?))))
            .collect()
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
    use crate::directory::Attrs;

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
    fn references_are_userids_kept_apart_and_validated() {
        use crate::api::mapping::RefersTo;
        let rule = |target: &str, refers_to, ownership| AttributeRule {
            target: target.into(),
            template: "{{ manager_userid }}, {{ userid }} {{ manager_userid }}".into(),
            ownership,
            refers_to,
        };
        let mut s = spec("{{ email }}");
        s.user
            .attributes
            .push(rule("manager", Some(RefersTo::Person), Ownership::Always));
        let m = Mapping::compile(&s).unwrap();
        assert!(m.has_references());
        assert!(m.person_fields().contains("manager_userid"));
        let mut p = person();
        p.fields = p
            .fields
            .with(&[("manager_userid", serde_json::json!("boss"))]);
        let refs = m.person_references(&p).unwrap();
        assert_eq!(
            refs,
            vec![(Name::new("manager"), vec!["boss".into(), "u1".into()])]
        );
        assert!(
            !m.person_attributes(&p, true)
                .unwrap()
                .contains_key("manager"),
            "never rendered as text"
        );

        let refused = |r: AttributeRule, says: &str| {
            let mut s = spec("{{ email }}");
            s.user.attributes.push(r);
            let e = Mapping::compile(&s).unwrap_err();
            assert!(e.rule.contains("user.attributes[1]"), "{e}");
            assert!(e.message.contains(says), "{e}");
        };
        refused(rule("Manager", None, Ownership::Always), "refersTo: Person");
        refused(
            rule("manager", Some(RefersTo::Person), Ownership::OnCreate),
            "ownership must be Always",
        );
        refused(
            rule("uid", Some(RefersTo::Person), Ownership::Always),
            "naming attribute",
        );
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

    fn with_extension(ext: serde_json::Value) -> Person {
        let mut p = person();
        p.fields.insert("extension", ext);
        p.fields
            .insert("remark", serde_json::json!("{\"badge\": [\"B7\"]}"));
        p
    }

    #[test]
    fn custom_fields_read_by_chinese_key_dotted_or_bracketed() {
        let m = Mapping::compile(&spec(
            "{{ extension.工号 }}|{{ extension['desk no'] }}|{{ extension.楼层 }}|{{ '.张' }}|\
             {{ extension.missing | default('-') }}",
        ))
        .unwrap();
        let p = with_extension(serde_json::json!({"工号": "A1", "desk no": "3F", "楼层": "7"}));
        let a = m.person_attributes(&p, true).unwrap();
        assert_eq!(a.first("mail"), Some("A1|3F|7|.张|-"));
        assert_eq!(
            bracket_unicode_keys("工号 {{ a.工号_2 ~ \"b.工号\" }} c.工号 {% if a.名 %}"),
            "工号 {{ a['工号_2'] ~ \"b.工号\" }} c.工号 {% if a['名'] %}"
        );
    }

    #[test]
    fn fromjson_reads_json_text_and_names_bad_json() {
        let m = Mapping::compile(&spec("{{ (remark | fromjson).badge[0] }}")).unwrap();
        let p = with_extension(serde_json::json!({}));
        assert_eq!(
            m.person_attributes(&p, true).unwrap().first("mail"),
            Some("B7")
        );
        let mut bad = p.clone();
        bad.fields.insert("remark", serde_json::json!("{secret"));
        let e = m.person_attributes(&bad, true).unwrap_err();
        assert_eq!(e.rule, "user.attributes[0] (mail)");
        assert!(e.message.contains("fromjson: the text is not JSON"), "{e}");
        assert!(!e.message.contains("secret"), "never the text: {e}");
    }

    #[test]
    fn if_empty_fills_only_what_the_entry_lacks() {
        let mut s = spec("{{ email }}");
        s.user.attributes.push(AttributeRule {
            target: "telephoneNumber".into(),
            template: "{{ mobile }}".into(),
            ownership: Ownership::IfEmpty,
            ..Default::default()
        });
        let m = Mapping::compile(&s).unwrap();
        let p = person();
        let rendered = m.person_attributes(&p, false).unwrap();
        assert_eq!(rendered.first("telephoneNumber"), Some("13800000000"));
        let settle = |current: &[(&str, &[&str])], rendered: &Attrs| {
            let current: Attrs = current
                .iter()
                .map(|(k, v)| (*k, v.iter().map(|s| s.to_string()).collect()))
                .collect();
            let mut wanted = rendered.clone();
            m.keep_person_fills(&current, &mut wanted);
            wanted.first("telephoneNumber").map(str::to_owned)
        };
        assert_eq!(
            settle(&[], &rendered).as_deref(),
            Some("13800000000"),
            "absent"
        );
        assert_eq!(
            settle(&[("telephonenumber", &[" "])], &rendered).as_deref(),
            Some("13800000000"),
            "blank"
        );
        assert_eq!(
            settle(&[("telephonenumber", &["139"])], &rendered),
            None,
            "kept"
        );
        let mut no_mobile = p.clone();
        no_mobile.fields.insert("mobile", serde_json::json!(""));
        let empty = m.person_attributes(&no_mobile, false).unwrap();
        assert_eq!(
            settle(&[("telephonenumber", &["139"])], &empty),
            None,
            "never cleared"
        );
        assert_eq!(settle(&[], &empty), None, "nothing to fill with");
        assert_eq!(
            m.person_fills(rendered)
                .keys()
                .map(|k| k.as_str())
                .collect::<Vec<_>>(),
            ["telephoneNumber"]
        );
        assert!(
            m.owned_person_attributes().all(|a| a == "mail"),
            "never digested"
        );
    }

    #[test]
    fn dept_names_keep_dept_id_list_in_a_lean_read() {
        let m = Mapping::compile(&spec("{{ dept_names | join(',') }}")).unwrap();
        assert!(m.reads_dept_names());
        assert!(m.person_fields().contains("dept_id_list"));
        assert!(
            !Mapping::compile(&spec("{{ name }}"))
                .unwrap()
                .reads_dept_names()
        );
    }
}
