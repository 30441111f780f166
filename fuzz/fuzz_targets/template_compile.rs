//! FieldMapping templates are user input: any template compiles or is refused with an error
//! naming the rule, and a compiled one renders or fails per person, never panics — for
//! Inbound mappings (over DingTalk's fields) and Outbound ones (over directory attributes).
#![no_main]

use dingsync::{
    api::{
        FieldMappingSpec,
        mapping::{AttributeRule, UniqueName, UserMapping},
        target::Direction,
    },
    directory::Attrs,
    mapping::{Mapping, outbound::OutboundMapping},
    model::Person,
};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let Ok(template) = std::str::from_utf8(data) else {
        return;
    };
    let outbound = FieldMappingSpec {
        direction: Direction::Outbound,
        user: UserMapping {
            attributes: vec![AttributeRule {
                target: "name".into(),
                template: template.into(),
                ..Default::default()
            }],
            unique_name: UniqueName {
                attribute: "userid".into(),
                template: "{{ uid }}".into(),
                ..Default::default()
            },
            ..Default::default()
        },
        department: None,
    };
    if let Ok(m) = OutboundMapping::compile(&outbound) {
        let attrs: Attrs = [
            ("uid", "zhangwei"),
            ("cn", "张伟·Zhang\u{1F600}"),
            ("mail", "A@B.example"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
        .collect();
        let _ = m.person(&attrs);
        let _ = m.department_name("研发", &attrs);
    }
    let spec = FieldMappingSpec {
        direction: Direction::Inbound,
        user: UserMapping {
            attributes: vec![AttributeRule {
                target: "cn".into(),
                template: template.into(),
                ..Default::default()
            }],
            unique_name: UniqueName {
                attribute: "uid".into(),
                template: "{{ name | pinyin }}".into(),
                ..Default::default()
            },
            ..Default::default()
        },
        department: None,
    };
    let Ok(mapping) = Mapping::compile(&spec) else {
        return;
    };
    let fields = [
        ("userid", json!("u1")),
        ("name", json!("张伟·Zhang\u{1F600}")),
        ("email", json!("A@B.example")),
        ("mobile", json!(null)),
        ("dept_id_list", json!([1, 2])),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let person = Person {
        id: "u1".into(),
        name: "张伟".into(),
        departments: vec!["1".into()],
        main_department: None,
        fields,
    };
    let _ = mapping.person_attributes(&person, true);
});
