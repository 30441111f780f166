//! The CRDs as users meet them: the committed files equal `dingsync crd`, every example
//! validates against them (schema, strict unknown-field check and CEL rules, as an API server
//! does), and invalid objects are refused with a message naming the field.

use std::path::{Path, PathBuf};

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The committed CRDs, by kind.
fn committed_crds() -> Vec<Value> {
    let mut out = vec![];
    for crd in dingsync::api::crds() {
        let path = root().join("crds").join(dingsync::api::crd_file_name(&crd));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        out.push(serde_yaml::from_str(&text).unwrap());
    }
    out
}

fn schema_for(crds: &[Value], api_version: &str, kind: &str) -> Option<Value> {
    let (group, version) = api_version.split_once('/')?;
    let crd = crds
        .iter()
        .find(|c| c["spec"]["group"] == group && c["spec"]["names"]["kind"] == kind)?;
    let v = crd["spec"]["versions"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == version)?;
    Some(v["schema"]["openAPIV3Schema"].clone())
}

/// Turn an OpenAPI structural schema into a strict JSON Schema: unknown fields are errors (as
/// `kubectl apply --validate=strict` reports them) and `nullable` is honoured.
fn strict(schema: &mut Value) {
    if let Value::Object(map) = schema {
        if map.get("nullable") == Some(&Value::Bool(true))
            && let Some(Value::String(t)) = map.get("type").cloned()
        {
            map.insert("type".into(), serde_json::json!([t, "null"]));
        }
        let preserve = map.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
        if map.contains_key("properties") && !preserve && !map.contains_key("additionalProperties")
        {
            map.insert("additionalProperties".into(), Value::Bool(false));
        }
        for (_, v) in map.iter_mut() {
            strict(v);
        }
    } else if let Value::Array(items) = schema {
        items.iter_mut().for_each(strict);
    }
}

/// Validate one object as the API server would; returns the error messages.
fn validate(crds: &[Value], doc: &Value) -> Vec<String> {
    let api_version = doc["apiVersion"].as_str().unwrap_or_default();
    let kind = doc["kind"].as_str().unwrap_or_default();
    let Some(schema) = schema_for(crds, api_version, kind) else {
        return vec![format!("no CRD for {api_version} {kind}")];
    };
    let mut strict_schema = schema.clone();
    strict(&mut strict_schema);
    // metadata is validated by the API server itself, not by the CRD schema.
    strict_schema["properties"]["metadata"] = serde_json::json!({"type": "object"});
    strict_schema["properties"]["apiVersion"] = serde_json::json!({"type": "string"});
    strict_schema["properties"]["kind"] = serde_json::json!({"type": "string"});
    let validator = jsonschema::validator_for(&strict_schema).expect("CRD schema compiles");
    let mut errors: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("{}: {}", e.instance_path(), e))
        .collect();
    if errors.is_empty()
        && let Err(e) = kube::core::cel::Validator::new().validate(&schema, doc, None)
    {
        errors.extend(e.to_string().lines().map(str::to_string));
    }
    errors
}

fn yaml_docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| <Value as serde::Deserialize>::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn committed_crds_equal_generated() {
    for crd in dingsync::api::crds() {
        let name = dingsync::api::crd_file_name(&crd);
        let committed =
            std::fs::read_to_string(root().join("crds").join(&name)).unwrap_or_default();
        assert!(
            committed == dingsync::api::crd_yaml(&crd),
            "crds/{name} differs from `dingsync crd`: run `cargo run -- crd --out-dir crds`"
        );
    }
    let extra: Vec<_> = yaml_files(&root().join("crds"))
        .into_iter()
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().to_string();
            !dingsync::api::crds()
                .iter()
                .any(|c| dingsync::api::crd_file_name(c) == n)
        })
        .collect();
    assert!(extra.is_empty(), "stale files in crds/: {extra:?}");
}

#[test]
fn crds_have_the_promised_shape() {
    for crd in committed_crds() {
        let kind = crd["spec"]["names"]["kind"].as_str().unwrap().to_string();
        assert_eq!(crd["spec"]["group"], "dingsync.io");
        assert_eq!(crd["spec"]["scope"], "Namespaced");
        assert!(
            crd["spec"]["names"]["categories"]
                .as_array()
                .unwrap()
                .contains(&"dingsync".into())
        );
        assert!(
            !crd["spec"]["names"]["shortNames"]
                .as_array()
                .unwrap()
                .is_empty()
        );
        let v = &crd["spec"]["versions"][0];
        assert_eq!(v["name"], "v1alpha1");
        assert!(
            v["subresources"]["status"].is_object(),
            "{kind}: status subresource"
        );
        let cols: Vec<&str> = v["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        for want in ["Ready", "Status", "Age"] {
            assert!(
                cols.contains(&want),
                "{kind}: printer column {want} in {cols:?}"
            );
        }
        let conds =
            &v["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]["conditions"];
        assert_eq!(
            conds["x-kubernetes-list-type"], "map",
            "{kind}: conditions list-map"
        );
        assert_eq!(conds["x-kubernetes-list-map-keys"][0], "type");
        assert!(
            conds["items"]["properties"]["observedGeneration"].is_object(),
            "{kind}: observedGeneration on conditions"
        );
        // Every spec field is documented, so `kubectl explain` reads well.
        let mut undocumented = vec![];
        fn walk(s: &Value, path: &str, out: &mut Vec<String>) {
            if let Some(props) = s["properties"].as_object() {
                for (k, v) in props {
                    let p = format!("{path}.{k}");
                    if v["description"].as_str().unwrap_or("").is_empty() {
                        out.push(p.clone());
                    }
                    walk(v, &p, out);
                    walk(&v["items"], &p, out);
                }
            }
        }
        walk(
            &v["schema"]["openAPIV3Schema"]["properties"]["spec"],
            "spec",
            &mut undocumented,
        );
        assert!(
            undocumented.is_empty(),
            "{kind}: undocumented fields {undocumented:?}"
        );
    }
    let st = committed_crds()
        .into_iter()
        .find(|c| c["spec"]["names"]["kind"] == "SyncTarget")
        .unwrap();
    let cols: Vec<String> = st["spec"]["versions"][0]["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    for want in ["Direction", "People", "Failed", "Last Sync"] {
        assert!(
            cols.iter().any(|c| c == want),
            "SyncTarget printer column {want}"
        );
    }
}

#[test]
fn every_example_validates() {
    let crds = committed_crds();
    let mut seen = std::collections::BTreeSet::new();
    for file in yaml_files(&root().join("examples")) {
        for doc in yaml_docs(&file) {
            let kind = doc["kind"].as_str().unwrap_or_default().to_string();
            if doc["apiVersion"]
                .as_str()
                .unwrap_or_default()
                .starts_with("dingsync.io/")
            {
                let errors = validate(&crds, &doc);
                assert!(errors.is_empty(), "{}: {kind}: {errors:#?}", file.display());
                seen.insert(kind.clone());
                // The typed API reads it too.
                match kind.as_str() {
                    "DingTalkBinding" => drop(serde_json::from_value::<
                        dingsync::api::DingTalkBinding,
                    >(doc)),
                    "FieldMapping" => {
                        drop(serde_json::from_value::<dingsync::api::FieldMapping>(doc))
                    }
                    "SyncTarget" => drop(serde_json::from_value::<dingsync::api::SyncTarget>(doc)),
                    other => panic!("unexpected kind {other}"),
                }
            } else {
                assert!(
                    ["Secret", "Namespace"].contains(&kind.as_str()),
                    "{}: {kind}",
                    file.display()
                );
            }
        }
    }
    assert_eq!(seen.len(), 3, "examples cover all three kinds: {seen:?}");
}

#[test]
fn invalid_objects_are_refused_naming_the_field() {
    let crds = committed_crds();
    let files = yaml_files(&root().join("tests/fixtures/invalid"));
    assert!(files.len() >= 8);
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let expect = text
            .lines()
            .find_map(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{}: no '# expect:' line", file.display()))
            .trim()
            .to_string();
        let doc = yaml_docs(&file).remove(0);
        let errors = validate(&crds, &doc);
        assert!(!errors.is_empty(), "{} was accepted", file.display());
        let joined = errors.join("\n");
        // JSON pointers use '/', users read '.': accept either spelling of the path.
        let pointer = format!("/{}", expect.replace('.', "/"));
        assert!(
            joined.contains(&expect) || joined.contains(&pointer),
            "{}: errors do not name `{expect}`:\n{joined}",
            file.display()
        );
    }
}

#[test]
fn every_example_mapping_compiles_with_the_engine() {
    let mut n = 0;
    for file in yaml_files(&root().join("examples")) {
        for doc in yaml_docs(&file) {
            if doc["kind"] == "FieldMapping" {
                let m: dingsync::api::FieldMapping = serde_json::from_value(doc).unwrap();
                if let Err(e) = dingsync::mapping::Mapping::compile(&m.spec) {
                    panic!(
                        "{}: FieldMapping {}: {e}",
                        file.display(),
                        m.metadata.name.unwrap_or_default()
                    );
                }
                n += 1;
            }
        }
    }
    assert!(n >= 3);
}
