//! Account names. An account keeps the name it has: usernames are logins, and a display-name
//! change in DingTalk must not change someone's login. A new account gets the name its
//! template wants or, when that is taken (homonyms), the name with a suffix; people go in
//! userid order, so every run hands the same suffix to the same person.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::people::Wanted;
use crate::{
    api::mapping::SuffixStyle,
    directory::{Name, PersonEntry, Snapshot},
    mapping::Mapping,
};

/// The names in use in the node, and the attribute that holds them.
pub(super) struct UniqueNames {
    /// The name attribute, as people's attributes are written.
    pub attr: Name,
    /// The name attribute as entries are read (lowercased).
    key: String,
    /// Every name in the node, lowercased: unlinked and skipped entries' included.
    taken: HashSet<String>,
    /// The longest name the directory takes (`uniqueName.maxLength`), in characters.
    max: Option<usize>,
}

impl UniqueNames {
    pub fn of(dir: &Snapshot, mapping: &Mapping) -> Self {
        let attr = mapping.name_attribute();
        let key = attr.to_ascii_lowercase();
        let mut taken: HashSet<String> = dir
            .people
            .iter()
            .chain(&dir.unlinked)
            .filter_map(|p| p.attrs.first(&key))
            .map(str::to_lowercase)
            .collect();
        for name in &dir.taken_names {
            taken.insert(name.to_lowercase());
        }
        UniqueNames {
            attr: Name::new(attr),
            key,
            taken,
            max: mapping.name_max_length(),
        }
    }

    /// The name an entry has now.
    pub fn current(&self, entry: &PersonEntry) -> Option<String> {
        entry.attrs.first(&self.key).map(str::to_owned)
    }

    /// Give everyone without an account name (`wants` in userid order) the name they want, or
    /// the first suffixed form of it that is free.
    pub fn assign(&mut self, wants: &mut [Wanted<'_>], style: SuffixStyle) {
        let mut from = NextSuffix::default();
        for w in wants {
            if w.name.is_some() {
                continue;
            }
            let form = |n| fitted(&w.wanted, n, &w.person.id, style, self.max);
            let mut candidate = form(0);
            let mut n = from.start(&w.wanted, style);
            if n > 2 {
                candidate = form(n - 1);
            }
            while self.taken.contains(&candidate.to_lowercase()) {
                candidate = form(n);
                n += 1;
            }
            from.taken_up_to(&w.wanted, n, style);
            self.taken.insert(candidate.to_lowercase());
            w.name = Some(candidate);
        }
    }
}

impl UniqueNames {
    /// The names [`UniqueNames::assign`] would check whose status the entries read so far
    /// cannot tell (an incremental run reads only part of the node): not held by an entry
    /// read, and not in `asked` (looked up already and found free). Each comes with the next
    /// few suffixed forms, so a run of homonyms costs few look-ups. Once this is empty,
    /// `assign` over these entries hands out what it would over the whole node.
    pub fn unknown(
        &self,
        wants: &[Wanted<'_>],
        style: SuffixStyle,
        asked: &BTreeSet<String>,
    ) -> BTreeSet<String> {
        const AHEAD: usize = 4;
        let mut taken = self.taken.clone();
        let mut unknown = BTreeSet::new();
        let mut from = NextSuffix::default();
        for w in wants.iter().filter(|w| w.name.is_none()) {
            let form = |n| fitted(&w.wanted, n, &w.person.id, style, self.max).to_lowercase();
            let mut candidate = form(0);
            let mut n = from.start(&w.wanted, style);
            if n > 2 {
                candidate = form(n - 1);
            }
            while taken.contains(&candidate) {
                candidate = form(n);
                n += 1;
            }
            if asked.contains(&candidate) {
                from.taken_up_to(&w.wanted, n, style);
                taken.insert(candidate);
                continue;
            }
            unknown.insert(candidate);
            for k in 0..AHEAD {
                unknown.insert(form(n + k));
            }
        }
        unknown.retain(|u| !asked.contains(u));
        unknown
    }
}

/// Where the search for a free numbered name resumes, by wanted name (lowercased): names
/// are only ever taken during a run, so the suffixes below the last one handed out stay
/// taken. Without it the k-th homonym re-checks k names: hours at a million people, where
/// thousands share a common name. (`UserId` suffixes differ per person: nothing to resume.)
#[derive(Default)]
struct NextSuffix(HashMap<String, usize>);

impl NextSuffix {
    /// The suffix after which to try the wanted name's numbered forms; 2 (nothing handed out
    /// yet) means: try the wanted name itself first.
    fn start(&self, wanted: &str, style: SuffixStyle) -> usize {
        match style {
            SuffixStyle::Number => self.0.get(&wanted.to_lowercase()).copied().unwrap_or(2),
            SuffixStyle::UserId => 2,
        }
    }

    /// Every form of `wanted` below suffix `n` is taken now.
    fn taken_up_to(&mut self, wanted: &str, n: usize, style: SuffixStyle) {
        if style == SuffixStyle::Number && n > 2 {
            self.0.insert(wanted.to_lowercase(), n);
        }
    }
}

/// The name `wanted` with suffix `n` (none below 2), cut to `max` characters: the suffix
/// stays whole and the wanted part loses its tail, so homonyms stay distinct within a limit
/// such as AD's 20-character `sAMAccountName`.
fn fitted(wanted: &str, n: usize, userid: &str, style: SuffixStyle, max: Option<usize>) -> String {
    let full = match n {
        0 | 1 => wanted.to_owned(),
        n => suffixed(wanted, n, userid, style),
    };
    match max {
        Some(max) if full.chars().count() > max => {
            let suffix = &full[wanted.len()..];
            let keep = max.saturating_sub(suffix.chars().count());
            let mut out: String = wanted.chars().take(keep).collect();
            out.push_str(suffix);
            out
        }
        _ => full,
    }
}

fn suffixed(wanted: &str, n: usize, userid: &str, style: SuffixStyle) -> String {
    match style {
        SuffixStyle::Number => format!("{wanted}{n}"),
        SuffixStyle::UserId if n == 2 => format!("{wanted}.{}", userid.to_lowercase()),
        SuffixStyle::UserId => format!("{wanted}.{}{n}", userid.to_lowercase()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Free names handed out by trying every form from the start, for comparison.
    fn naive(taken: &mut HashSet<String>, wanted: &str, id: &str, style: SuffixStyle) -> String {
        let mut candidate = wanted.to_owned();
        let mut n = 2;
        while taken.contains(&candidate.to_lowercase()) {
            candidate = suffixed(wanted, n, id, style);
            n += 1;
        }
        taken.insert(candidate.to_lowercase());
        candidate
    }

    #[test]
    fn resumed_suffixes_are_the_ones_a_full_search_hands_out() {
        use super::super::people::Rendering;
        use crate::model::Person;
        let people: Vec<Person> = (0..60)
            .map(|i| Person {
                id: format!("u{i:02}"),
                name: String::new(),
                departments: vec![],
                main_department: None,
                fields: Default::default(),
            })
            .collect();
        let wanted = ["zhangwei", "ZhangWei", "lina", "zhangwei2x"];
        for style in [SuffixStyle::Number, SuffixStyle::UserId] {
            let held = ["zhangwei3", "lina", "zhangwei7", "lina2"];
            let mut names = UniqueNames {
                attr: Name::new("uid"),
                key: "uid".into(),
                taken: held.iter().map(|s| s.to_string()).collect(),
                max: None,
            };
            let mut wants: Vec<Wanted> = (people.iter().enumerate())
                .map(|(i, p)| Wanted {
                    person: p,
                    entry: None,
                    link: None,
                    wanted: wanted[i % wanted.len()].to_owned(),
                    name: None,
                    attrs: Ok(Rendering::Full(Default::default())),
                })
                .collect();
            let mut expected = names.taken.clone();
            let expected: Vec<String> = (wants.iter())
                .map(|w| naive(&mut expected, &w.wanted, &w.person.id, style))
                .collect();
            names.assign(&mut wants, style);
            let got: Vec<String> = wants.into_iter().map(|w| w.name.unwrap()).collect();
            assert_eq!(got, expected, "{style:?}");
        }
    }

    #[test]
    fn names_fit_a_length_limit_with_their_suffix() {
        let n = SuffixStyle::Number;
        let long = "ouyangxiaoxiaoxiaoming"; // 22 characters
        assert_eq!(fitted(long, 0, "U1", n, Some(20)), "ouyangxiaoxiaoxiaomi");
        assert_eq!(fitted(long, 2, "U1", n, Some(20)), "ouyangxiaoxiaoxiaom2");
        assert_eq!(fitted(long, 10, "U1", n, Some(20)), "ouyangxiaoxiaoxiao10");
        assert_eq!(fitted("lina", 2, "U1", n, Some(20)), "lina2");
        assert_eq!(fitted(long, 2, "U1", n, None), "ouyangxiaoxiaoxiaoming2");
        let mut names = UniqueNames {
            attr: Name::new("sAMAccountName"),
            key: "samaccountname".into(),
            taken: ["ouyangxiaoxiaoxiaomi".to_string()].into(),
            max: Some(20),
        };
        let p = crate::model::Person {
            id: "u1".into(),
            name: String::new(),
            departments: vec![],
            main_department: None,
            fields: Default::default(),
        };
        let mut wants = vec![Wanted {
            person: &p,
            entry: None,
            link: None,
            wanted: long.into(),
            name: None,
            attrs: Ok(super::super::people::Rendering::Full(Default::default())),
        }];
        names.assign(&mut wants, n);
        assert_eq!(wants[0].name.as_deref(), Some("ouyangxiaoxiaoxiaom2"));
    }

    #[test]
    fn suffixes() {
        assert_eq!(
            suffixed("zhangwei", 2, "U1", SuffixStyle::Number),
            "zhangwei2"
        );
        assert_eq!(
            suffixed("zhangwei", 2, "U1", SuffixStyle::UserId),
            "zhangwei.u1"
        );
        assert_eq!(
            suffixed("zhangwei", 3, "U1", SuffixStyle::UserId),
            "zhangwei.u13"
        );
    }
}
