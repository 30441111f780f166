//! Who lacks a mobile or an email: the people behind a run's `missing_mobile` and
//! `missing_email` counts, by userid and name, so a report or `dingsync plan` can say whom an
//! admin has to chase (an account without either cannot be matched or reached).

use crate::model::Person;

/// People a run's report names per list; its counts stay exact beyond that.
pub const REPORT_CAP: usize = 1_000;

/// Someone a list names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    /// The DingTalk userid.
    pub id: String,
    pub name: String,
}

/// The people without a mobile and those without an email, each list in userid order and cut
/// at the cap it was made with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lacking {
    pub mobile: Vec<Named>,
    pub email: Vec<Named>,
}

/// No mobile number, or a blank one.
pub fn lacks_mobile(p: &Person) -> bool {
    !p.has_text("mobile")
}

/// Neither a personal nor an enterprise email.
pub fn lacks_email(p: &Person) -> bool {
    !p.has_text("email") && !p.has_text("org_email")
}

impl Lacking {
    /// The first `cap` (by userid) of `people` without a mobile, and of those without an
    /// email.
    pub fn of(people: &[Person], cap: usize) -> Self {
        let list = |lacks: fn(&Person) -> bool| {
            let mut found: Vec<&Person> = people.iter().filter(|p| lacks(p)).collect();
            found.sort_by(|a, b| a.id.cmp(&b.id));
            found
                .into_iter()
                .take(cap)
                .map(|p| Named {
                    id: p.id.clone(),
                    name: p.name.clone(),
                })
                .collect()
        };
        Self {
            mobile: list(lacks_mobile),
            email: list(lacks_email),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn person(id: &str, fields: &[(&str, &str)]) -> Person {
        Person {
            id: id.into(),
            name: format!("name {id}"),
            departments: vec![],
            main_department: None,
            fields: fields.iter().map(|(k, v)| (*k, json!(v))).collect(),
        }
    }

    #[test]
    fn lists_name_who_lacks_what_in_userid_order_up_to_the_cap() {
        let people = vec![
            person("u3", &[("mobile", " "), ("email", "a@x")]),
            person("u1", &[("org_email", "b@x")]),
            person("u2", &[("mobile", "138")]),
            person("u0", &[("mobile", "139"), ("email", "c@x")]),
        ];
        let all = Lacking::of(&people, usize::MAX);
        let ids = |l: &[Named]| l.iter().map(|n| n.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&all.mobile), ["u1", "u3"]);
        assert_eq!(ids(&all.email), ["u2"]);
        assert_eq!(all.mobile[0].name, "name u1");
        let capped = Lacking::of(&people, 1);
        assert_eq!(ids(&capped.mobile), ["u1"]);
    }
}
