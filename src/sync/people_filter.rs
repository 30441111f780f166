//! A target's people filter (`spec.scope.peopleFilter`): a minijinja expression over a
//! person's fields, compiled with the FieldMapping's filters and field names, that says who
//! is synced. People it leaves out are treated like people out of scope.

use std::collections::BTreeSet;

use minijinja::Environment;

use crate::model::{PERSON_FIELDS, Person};

/// The field path every message names.
pub const FIELD: &str = "spec.scope.peopleFilter";

const NAME: &str = "peopleFilter";

/// Why a people filter cannot be used, or could not decide about one person.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// The template does not compile.
    #[error("{FIELD}: {detail}")]
    Syntax {
        detail: String,
        #[source]
        source: minijinja::Error,
    },
    /// The template names a field people do not have.
    #[error("{FIELD}: unknown field {field:?}; known fields: {known}")]
    UnknownField { field: String, known: String },
    /// Rendering failed for one person.
    #[error("{FIELD}: user {userid}: {source}")]
    Render {
        userid: String,
        #[source]
        source: minijinja::Error,
    },
    /// It rendered something other than `true`, `false` or nothing.
    #[error("{FIELD}: user {userid}: rendered {output:?}, not true or false")]
    NotBoolean { userid: String, output: String },
}

/// A compiled people filter.
#[derive(Debug)]
pub struct PeopleFilter {
    env: Environment<'static>,
    fields: BTreeSet<String>,
}

impl PeopleFilter {
    /// Compiles `template`; it must name only fields people have (a typo would otherwise
    /// render empty and leave everybody out).
    pub fn compile(template: &str) -> Result<Self, FilterError> {
        let mut env = crate::mapping::environment();
        env.add_template_owned(NAME, template.to_string())
            .map_err(|source| FilterError::Syntax {
                detail: format!(
                    "{}{}",
                    source.detail().unwrap_or("syntax error"),
                    source
                        .line()
                        .map(|l| format!(" (line {l})"))
                        .unwrap_or_default()
                ),
                source,
            })?;
        let fields = env
            .get_template(NAME)
            .expect("just added")
            .undeclared_variables(false);
        if let Some(field) = fields.iter().find(|f| !PERSON_FIELDS.contains(&f.as_str())) {
            return Err(FilterError::UnknownField {
                field: field.clone(),
                known: PERSON_FIELDS.join(", "),
            });
        }
        Ok(Self {
            env,
            fields: fields.into_iter().collect(),
        })
    }

    /// The person fields the filter reads: a lean read must keep them.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(String::as_str)
    }

    /// Whether `person` is synced: `true` keeps them; `false` or nothing (an absent field)
    /// leaves them out.
    pub fn keeps(&self, person: &Person) -> Result<bool, FilterError> {
        let t = self.env.get_template(NAME).expect("compiled");
        let out = t
            .render(person.fields.to_jinja())
            .map_err(|source| FilterError::Render {
                userid: person.id.clone(),
                source,
            })?;
        match out.trim() {
            "true" | "True" => Ok(true),
            "false" | "False" | "" => Ok(false),
            other => Err(FilterError::NotBoolean {
                userid: person.id.clone(),
                output: other.chars().take(80).collect(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Fields;
    use serde_json::json;

    fn person(fields: serde_json::Value) -> Person {
        let serde_json::Value::Object(m) = fields else {
            unreachable!()
        };
        Person {
            id: "u1".into(),
            name: "王芳".into(),
            departments: vec![],
            main_department: None,
            fields: m.into_iter().collect::<Fields>(),
        }
    }

    #[test]
    fn keeps_whom_the_expression_says() {
        let f = PeopleFilter::compile("{{ active and not title == '实习生' }}").unwrap();
        assert!(
            f.keeps(&person(json!({"active": true, "title": "工程师"})))
                .unwrap()
        );
        assert!(
            !f.keeps(&person(json!({"active": true, "title": "实习生"})))
                .unwrap()
        );
        assert!(!f.keeps(&person(json!({"active": false}))).unwrap());
        assert_eq!(
            f.fields().collect::<Vec<_>>(),
            vec!["active", "title"],
            "what a lean read keeps"
        );
        let f = PeopleFilter::compile("{{ extension['类型'] != '外包' }}").unwrap();
        assert!(
            !f.keeps(&person(json!({"extension": {"类型": "外包"}})))
                .unwrap()
        );
        assert!(
            f.keeps(&person(json!({"extension": {"类型": "正式"}})))
                .unwrap()
        );
    }

    #[test]
    fn refuses_syntax_errors_unknown_fields_and_non_booleans() {
        let e = PeopleFilter::compile("{{ active and }}")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("spec.scope.peopleFilter: "), "{e}");
        let e = PeopleFilter::compile("{{ actve }}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field \"actve\""), "{e}");
        let f = PeopleFilter::compile("{{ title }}").unwrap();
        let e = f
            .keeps(&person(json!({"title": "工程师"})))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("user u1") && e.contains("not true or false"),
            "{e}"
        );
    }
}
