//! The simulated enterprise: departments and people as DingTalk holds them, loadable from YAML
//! and generated deterministically for demos, tests and benchmarks.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng, rngs::StdRng, seq::IndexedRandom};
use serde::{Deserialize, Serialize};

/// A department (`dept_id` 1 is the root and always exists).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimDept {
    pub dept_id: i64,
    pub name: String,
    #[serde(default)]
    pub parent_id: Option<i64>,
    #[serde(default)]
    pub order: i64,
}

/// A person, with DingTalk's field names. Absent optional fields stay absent on the wire.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SimUser {
    pub userid: String,
    #[serde(default)]
    pub unionid: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_place: Option<String>,
    pub dept_id_list: Vec<i64>,
    #[serde(default = "yes")]
    pub active: bool,
    #[serde(default)]
    pub exclusive_account: bool,
}

fn yes() -> bool {
    true
}

/// An org file (`--org FILE`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Org {
    #[serde(default)]
    pub departments: Vec<SimDept>,
    #[serde(default)]
    pub users: Vec<SimUser>,
}

impl Org {
    /// Parse YAML; names the first problem (unknown parent, duplicate id, unknown department).
    pub fn from_yaml(text: &str) -> Result<Self, String> {
        let org: Org = serde_yaml::from_str(text).map_err(|e| format!("org file: {e}"))?;
        org.check()?;
        Ok(org)
    }

    /// Check references; the root department 1 is implied.
    pub fn check(&self) -> Result<(), String> {
        let mut ids = std::collections::HashSet::from([1i64]);
        for d in &self.departments {
            if !ids.insert(d.dept_id) {
                return Err(format!("departments: dept_id {} appears twice", d.dept_id));
            }
        }
        for d in &self.departments {
            if let Some(p) = d.parent_id
                && !ids.contains(&p)
            {
                return Err(format!(
                    "departments: {} ({}) has unknown parent_id {p}",
                    d.dept_id, d.name
                ));
            }
        }
        let mut users = std::collections::HashSet::new();
        for u in &self.users {
            if !users.insert(&u.userid) {
                return Err(format!("users: userid {} appears twice", u.userid));
            }
            if let Some(d) = u.dept_id_list.iter().find(|d| !ids.contains(d)) {
                return Err(format!("users: {} is in unknown department {d}", u.userid));
            }
        }
        Ok(())
    }
}

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "高", "林", "罗", "吕", "欧阳",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
    "超", "秀英", "霞", "平", "刚", "桂英", "婷", "浩然", "子涵", "雨桐",
];
const UNITS: &[&str] = &[
    "研发", "产品", "市场", "销售", "财务", "人事", "法务", "运营", "客服", "设计", "数据", "安全",
    "测试", "采购", "行政",
];
const PLACES: &[&str] = &[
    "北京", "上海", "杭州", "深圳", "成都", "武汉", "西安", "南京",
];
const TITLES: &[&str] = &[
    "工程师",
    "高级工程师",
    "经理",
    "总监",
    "专员",
    "主管",
    "实习生",
];

/// A deterministic org: a deep and wide tree, homonyms (common names repeat), people in
/// several departments, some without mobile or email, a few exclusive accounts.
pub fn generate(people: usize, departments: usize, seed: u64) -> Org {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut org = Org::default();
    let departments = departments.max(1);
    // Department ids look like DingTalk's (8-9 digits); the first few form a deep chain.
    for i in 0..departments {
        let id = 100_000_000 + i as i64 * 7 + 3;
        let parent = if i == 0 {
            1
        } else if i < 8 {
            org.departments[i - 1].dept_id
        } else {
            org.departments[rng.random_range(0..i)].dept_id
        };
        let unit = UNITS[i % UNITS.len()];
        let place = PLACES[(i / UNITS.len()) % PLACES.len()];
        let name = if i < UNITS.len() {
            format!("{unit}部")
        } else {
            format!("{place}{unit}{}组", i / (UNITS.len() * PLACES.len()) + 1)
        };
        org.departments.push(SimDept {
            dept_id: id,
            name,
            parent_id: Some(parent),
            order: i as i64,
        });
    }
    for i in 0..people {
        let surname = SURNAMES[rng.random_range(0..SURNAMES.len())];
        // Few given names: homonyms are common, as in real Chinese orgs.
        let given = GIVEN[rng.random_range(0..GIVEN.len())];
        let name = format!("{surname}{given}");
        let mut depts = vec![
            org.departments
                .choose(&mut rng)
                .expect("departments")
                .dept_id,
        ];
        if rng.random_bool(0.08) {
            let extra = org
                .departments
                .choose(&mut rng)
                .expect("departments")
                .dept_id;
            if !depts.contains(&extra) {
                depts.push(extra);
            }
        }
        let exclusive = rng.random_bool(0.01);
        let userid = format!("{:06}{}", i, ["a", "b", "c", "d"][i % 4]);
        org.users.push(SimUser {
            unionid: format!(
                "union{:x}",
                seed.wrapping_mul(1_000_003).wrapping_add(i as u64)
            ),
            mobile: (!exclusive && !rng.random_bool(0.05))
                .then(|| format!("13{:09}", 100_000_000 + i)),
            email: (!rng.random_bool(0.1)).then(|| format!("user{i}@corp.example")),
            title: Some(TITLES[rng.random_range(0..TITLES.len())].to_string()),
            job_number: Some(format!("E{:05}", i + 1)),
            work_place: rng
                .random_bool(0.5)
                .then(|| PLACES[rng.random_range(0..PLACES.len())].to_string()),
            userid,
            name,
            dept_id_list: depts,
            active: true,
            exclusive_account: exclusive,
            org_email: None,
        });
    }
    org
}

/// Count of people per department, for call-count bounds.
pub fn members_per_department(org: &Org) -> BTreeMap<i64, usize> {
    let mut m: BTreeMap<i64, usize> = org.departments.iter().map(|d| (d.dept_id, 0)).collect();
    m.insert(1, 0);
    for u in &org.users {
        for d in &u.dept_id_list {
            *m.entry(*d).or_default() += 1;
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_has_homonyms() {
        let a = generate(500, 40, 7);
        assert_eq!(a, generate(500, 40, 7));
        assert!(a.check().is_ok());
        let mut names: Vec<&str> = a.users.iter().map(|u| u.name.as_str()).collect();
        names.sort();
        let before = names.len();
        names.dedup();
        assert!(names.len() < before, "homonyms exist");
        assert!(a.users.iter().any(|u| u.dept_id_list.len() > 1));
        assert!(a.users.iter().any(|u| u.mobile.is_none()));
        assert!(a.users.iter().any(|u| u.email.is_none()));
    }

    #[test]
    fn bad_org_files_name_the_problem() {
        let e = Org::from_yaml("departments: [{dept_id: 2, name: A, parent_id: 9}]").unwrap_err();
        assert!(e.contains("unknown parent_id 9"), "{e}");
        let e = Org::from_yaml("users: [{userid: u, name: N, dept_id_list: [5]}]").unwrap_err();
        assert!(e.contains("unknown department 5"), "{e}");
    }
}
