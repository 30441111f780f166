//! Deterministic org generator (`dingsync sim --people N --departments M --seed S`):
//! realistic Chinese names with homonyms (several 张伟), people in several departments,
//! some without mobile (exclusive accounts) or email, a deep and wide tree.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::org::{App, Department, Org, Person, ROOT_DEPT, derive_unionid};

/// What to generate.
#[derive(Clone, Debug)]
pub struct GenSpec {
    pub people: usize,
    pub departments: usize,
    pub seed: u64,
    pub corp_id: String,
    pub org_name: String,
    /// The app added to the org (all permissions, whole org).
    pub app_key: String,
    pub app_secret: String,
}

impl Default for GenSpec {
    fn default() -> Self {
        Self {
            people: 50,
            departments: 10,
            seed: 1,
            corp_id: super::config::DEFAULT_CORP_ID.into(),
            org_name: "示例科技有限公司".into(),
            app_key: super::config::DEFAULT_APP_KEY.into(),
            app_secret: super::config::DEFAULT_APP_SECRET.into(),
        }
    }
}

const SURNAMES: &[(&str, u32)] = &[
    ("王", 14),
    ("李", 14),
    ("张", 13),
    ("刘", 10),
    ("陈", 9),
    ("杨", 6),
    ("黄", 5),
    ("赵", 5),
    ("吴", 4),
    ("周", 4),
    ("徐", 3),
    ("孙", 3),
    ("马", 3),
    ("朱", 3),
    ("胡", 3),
    ("郭", 2),
    ("何", 2),
    ("高", 2),
    ("林", 2),
    ("罗", 2),
    ("郑", 2),
    ("梁", 2),
    ("谢", 1),
    ("宋", 1),
    ("唐", 1),
    ("许", 1),
    ("韩", 1),
    ("冯", 1),
    ("邓", 1),
    ("曹", 1),
    ("欧阳", 1),
    ("司马", 1),
];

const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟",
    "涛", "明", "超", "秀兰", "霞", "平", "刚", "桂英", "建华", "晓明", "子涵", "欣怡", "浩然",
    "宇轩", "梓萱", "一鸣", "思远", "婷婷", "佳琪", "俊杰", "雨桐", "志强", "海燕", "文博", "晨",
];

const TOP_DEPTS: &[&str] = &[
    "研发中心",
    "产品中心",
    "市场部",
    "销售部",
    "财务部",
    "人力资源部",
    "行政部",
    "法务部",
    "客户成功部",
    "运营中心",
    "供应链中心",
    "质量管理部",
];

const SUB_DEPTS: &[&str] = &[
    "平台部",
    "基础架构组",
    "前端组",
    "后端组",
    "测试组",
    "移动端组",
    "数据组",
    "算法组",
    "华东大区",
    "华南大区",
    "华北大区",
    "西南大区",
    "上海分公司",
    "北京分公司",
    "深圳分公司",
    "杭州分公司",
    "成都分公司",
    "招聘组",
    "薪酬组",
    "培训组",
    "一组",
    "二组",
    "三组",
    "存储组",
    "网络组",
    "安全组",
    "运维组",
    "设计组",
    "渠道组",
    "大客户组",
];

const TITLES: &[&str] = &[
    "工程师",
    "高级工程师",
    "资深工程师",
    "产品经理",
    "设计师",
    "销售经理",
    "会计",
    "人事专员",
    "运营专员",
    "总监",
    "经理",
    "实习生",
    "",
];

fn pick<'a>(rng: &mut StdRng, list: &[&'a str]) -> &'a str {
    list[rng.random_range(0..list.len())]
}

fn surname(rng: &mut StdRng) -> &'static str {
    let total: u32 = SURNAMES.iter().map(|(_, w)| w).sum();
    let mut x = rng.random_range(0..total);
    for (s, w) in SURNAMES {
        if x < *w {
            return s;
        }
        x -= w;
    }
    "王"
}

fn pinyin_of(name: &str) -> String {
    use pinyin::ToPinyin;
    name.to_pinyin()
        .map(|p| p.map(|p| p.plain().to_owned()).unwrap_or_default())
        .collect()
}

/// Builds the org. Same spec, same org (within one build of the `rand` crate).
pub fn generate(spec: &GenSpec) -> Org {
    let mut g = Generator {
        rng: StdRng::seed_from_u64(spec.seed),
        org: Org::empty(spec.corp_id.clone(), spec.org_name.clone()),
        names: BTreeMap::new(),
        next_id: 0,
    };
    g.next_id = 100_000_000 + g.rng.random_range(0..1000) as i64;
    g.departments(spec.departments);
    let dept_ids: Vec<i64> = g
        .org
        .departments
        .iter()
        .filter(|d| d.id != ROOT_DEPT)
        .map(|d| d.id)
        .collect();
    g.people(spec, &dept_ids);
    g.appoint_heads(&dept_ids);
    super::roles::generate(&mut g.org, spec.seed);
    g.org
        .apps
        .push(App::new(spec.app_key.clone(), spec.app_secret.clone()));
    g.org
}

/// The org under construction and the one random stream every step draws from, in a fixed
/// order (so a seed always gives the same org).
struct Generator {
    rng: StdRng,
    org: Org,
    /// Department names taken under each parent.
    names: BTreeMap<i64, BTreeSet<String>>,
    next_id: i64,
}

impl Generator {
    /// A deep chain first (depth up to 7), then a wide spread.
    fn departments(&mut self, count: usize) {
        let chain = count.min(6);
        let mut parent = ROOT_DEPT;
        for i in 0..chain {
            let base = if i == 0 {
                TOP_DEPTS[0]
            } else {
                SUB_DEPTS[i % SUB_DEPTS.len()]
            };
            parent = self.add_dept(parent, base, i as i64);
        }
        // The departments a new one may go under (not the root, depth below 10), in the order
        // they were made, kept as they are made: recomputed for each new department, this
        // was quadratic (hours at 50,000 departments).
        let mut depths: HashMap<i64, usize> = (self.org.departments.iter())
            .map(|d| (d.id, self.org.depth(d.id)))
            .collect();
        let mut eligible: Vec<i64> = (self.org.departments.iter())
            .filter(|d| d.id != ROOT_DEPT && depths[&d.id] < 10)
            .map(|d| d.id)
            .collect();
        for i in chain..count {
            let top_level = self.rng.random_bool(0.25) || self.org.departments.len() < 3;
            let (parent, base) = if top_level {
                (ROOT_DEPT, pick(&mut self.rng, TOP_DEPTS))
            } else {
                (
                    eligible[self.rng.random_range(0..eligible.len())],
                    pick(&mut self.rng, SUB_DEPTS),
                )
            };
            let id = self.add_dept(parent, base, i as i64);
            let depth = depths[&parent] + 1;
            depths.insert(id, depth);
            if depth < 10 {
                eligible.push(id);
            }
        }
    }

    /// A department named `base` (numbered when the parent has one already); returns its id.
    fn add_dept(&mut self, parent: i64, base: &str, order: i64) -> i64 {
        let taken = self.names.entry(parent).or_default();
        let mut name = base.to_owned();
        let mut n = 2;
        while taken.contains(&name) {
            name = format!("{base}{n}");
            n += 1;
        }
        taken.insert(name.clone());
        self.next_id += self.rng.random_range(1..50) as i64;
        let mut d = Department::new(self.next_id, name, Some(parent));
        d.order = order;
        d.create_dept_group = self.rng.random_bool(0.3);
        d.auto_add_user = d.create_dept_group;
        self.org.departments.push(d);
        self.next_id
    }

    fn people(&mut self, spec: &GenSpec, dept_ids: &[i64]) {
        let mut userids = BTreeSet::new();
        let mut mobiles = BTreeSet::new();
        for i in 0..spec.people {
            let name = match i {
                0..=2 => "张伟".to_owned(),
                3 | 4 => "王芳".to_owned(),
                _ => format!("{}{}", surname(&mut self.rng), pick(&mut self.rng, GIVEN)),
            };
            let userid = loop {
                let u = format!(
                    "0{:015}",
                    self.rng.random_range(10u64.pow(13)..10u64.pow(15))
                );
                if userids.insert(u.clone()) {
                    break u;
                }
            };
            let exclusive = i % 37 == 36;
            let mobile = (!exclusive).then(|| {
                loop {
                    let m = format!(
                        "1{}{:09}",
                        pick(&mut self.rng, &["3", "5", "7", "8", "9"]),
                        self.rng.random_range(0..1_000_000_000u64)
                    );
                    if mobiles.insert(m.clone()) {
                        break m;
                    }
                }
            });
            let p = self.person(spec, i, name, userid, mobile, dept_ids);
            self.org.people.push(p);
        }
    }

    /// The `i`-th person, around the name, userid and mobile already drawn.
    fn person(
        &mut self,
        spec: &GenSpec,
        i: usize,
        name: String,
        userid: String,
        mobile: Option<String>,
        dept_ids: &[i64],
    ) -> Person {
        let rng = &mut self.rng;
        let exclusive = mobile.is_none();
        let email = rng
            .random_bool(0.75)
            .then(|| format!("{}{}@example.com", pinyin_of(&name), i));
        let mut departments = vec![if dept_ids.is_empty() {
            ROOT_DEPT
        } else {
            dept_ids[rng.random_range(0..dept_ids.len())]
        }];
        if dept_ids.len() > 1 && rng.random_bool(0.12) {
            let second = dept_ids[rng.random_range(0..dept_ids.len())];
            if second != departments[0] {
                departments.push(second);
            }
        }
        let title = pick(rng, TITLES);
        let created = BASE_MS + (i as i64) * 3_600_000;
        Person {
            unionid: derive_unionid(&spec.corp_id, &userid),
            userid,
            name,
            mobile,
            state_code: "86".into(),
            email,
            title: (!title.is_empty()).then(|| title.to_owned()),
            job_number: Some(format!("E{:05}", i + 1)),
            work_place: rng
                .random_bool(0.3)
                .then(|| pick(rng, &["上海", "北京", "杭州", "深圳"]).to_owned()),
            hired_date: rng
                .random_bool(0.8)
                .then(|| BASE_MS - rng.random_range(0..3_000_000_000_000i64) / 10),
            departments,
            active: rng.random_bool(0.92),
            admin: i == 0,
            boss: i == 0,
            exclusive_account: exclusive,
            exclusive_account_type: exclusive.then(|| "sso".to_owned()),
            login_id: exclusive.then(|| format!("sso{}", i + 1)),
            extension: custom_fields(i),
            created_ms: created,
            modified_ms: created,
            ..Person::default()
        }
    }

    /// Department heads: the first member of most departments; managers point at them, and a
    /// head's own manager is the head of the nearest department above with one, so managers
    /// chain up the tree.
    fn appoint_heads(&mut self, dept_ids: &[i64]) {
        let org = &mut self.org;
        // Each department's first member, in one pass (a search per department is
        // quadratic: minutes at a million people).
        let mut first_member: HashMap<i64, &str> = HashMap::new();
        for p in &org.people {
            if let Some(d) = p.departments.first() {
                first_member.entry(*d).or_insert(&p.userid);
            }
        }
        let mut heads: BTreeMap<i64, String> = BTreeMap::new();
        for d in dept_ids {
            if let Some(first) = first_member.get(d)
                && self.rng.random_bool(0.7)
            {
                heads.insert(*d, (*first).to_owned());
            }
        }
        let parents: HashMap<i64, Option<i64>> = org
            .departments
            .iter()
            .map(|d| (d.id, d.parent_id))
            .collect();
        // The head of `d` or of the nearest department above it with one, other than `who`.
        let head_above = |mut d: Option<i64>, who: &str| {
            while let Some(id) = d {
                match heads.get(&id) {
                    Some(h) if h != who => return Some(h.clone()),
                    _ => d = parents.get(&id).copied().flatten(),
                }
            }
            None
        };
        for p in &mut org.people {
            for d in &p.departments {
                if heads.get(d) == Some(&p.userid) {
                    p.leader_in.push(*d);
                }
            }
            if let Some(m) = head_above(p.departments.first().copied(), &p.userid) {
                p.manager_userid = Some(m);
            }
        }
        for d in &mut org.departments {
            if let Some(h) = heads.get(&d.id) {
                d.manager_userids.push(h.clone());
            }
        }
    }
}

/// People were created an hour apart from this instant on (September 2020).
const BASE_MS: i64 = 1_600_000_000_000;

/// Custom fields of every third person, as DingTalk sends them: a JSON object in a string,
/// with Chinese keys, a key with a space and a number. Drawn from `i` alone, so the random
/// stream (and every other generated value) is the same with or without them.
fn custom_fields(i: usize) -> Option<String> {
    (i % 3 == 1).then(|| {
        serde_json::json!({
            "工号": format!("A{:05}", i + 1),
            "desk no": format!("{}F-{:03}", i % 9 + 1, i % 1000),
            "楼层": i % 9 + 1,
        })
        .to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_valid_and_realistic() {
        let spec = GenSpec {
            people: 300,
            departments: 40,
            seed: 42,
            ..Default::default()
        };
        let a = generate(&spec);
        let b = generate(&spec);
        assert_eq!(a, b);
        a.validate().unwrap();
        assert_eq!(a.people.len(), 300);
        assert_eq!(a.departments.len(), 41);
        assert!(a.people.iter().filter(|p| p.name == "张伟").count() >= 3);
        assert!(a.people.iter().any(|p| p.departments.len() > 1));
        assert!(
            a.people
                .iter()
                .any(|p| p.mobile.is_none() && p.exclusive_account)
        );
        assert!(a.people.iter().any(|p| p.email.is_none()));
        let ext: serde_json::Value =
            serde_json::from_str(a.people[1].extension.as_deref().expect("custom fields")).unwrap();
        assert_eq!(ext["工号"], "A00002");
        assert_eq!(ext["楼层"], 2, "a number, as a custom field may hold");
        assert!(
            a.people[0].extension.is_none(),
            "not everyone has custom fields"
        );
        let max_depth = a.departments.iter().map(|d| a.depth(d.id)).max().unwrap();
        assert!(max_depth >= 6, "depth {max_depth}");
        assert!(a.children(ROOT_DEPT).len() >= 3);
        let other = generate(&GenSpec { seed: 43, ..spec });
        assert_ne!(a.people[5].userid, other.people[5].userid);
    }
}
