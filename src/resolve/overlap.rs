//! Two SyncTargets never own overlapping nodes of one directory, so two enterprises' (or two
//! targets') accounts never merge. These decide what "the same directory" and "overlapping"
//! mean; the cluster source applies them to every target it knows.

use crate::api::SyncTargetSpec;

/// Whether two directory nodes overlap (one equals or contains the other). DNs compare
/// case-insensitively with spaces around separators ignored.
pub fn nodes_overlap(a: &str, b: &str) -> bool {
    let a = normalise_dn(a);
    let b = normalise_dn(b);
    a == b || a.ends_with(&format!(",{b}")) || b.ends_with(&format!(",{a}"))
}

fn normalise_dn(dn: &str) -> String {
    dn.split(',')
        .map(|rdn| {
            rdn.split('=')
                .map(|p| p.trim().to_lowercase())
                .collect::<Vec<_>>()
                .join("=")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Whether two targets on one directory would act on the same entries. LDAP nodes are
/// subtrees; SCIM users have no container, so one enterprise's targets on one SCIM server always
/// share its users, whatever their group prefixes.
pub fn owns_same_entries(a: &SyncTargetSpec, b: &SyncTargetSpec) -> bool {
    if a.directory.scim.is_some() {
        a.binding_ref.name == b.binding_ref.name || nodes_overlap(&a.node, &b.node)
    } else {
        nodes_overlap(&a.node, &b.node)
    }
}

/// The server a target writes to, so nodes are only compared within one directory.
pub fn directory_identity(spec: &SyncTargetSpec) -> String {
    let url = spec.directory.url().unwrap_or_default().to_string();
    match url::Url::parse(&url) {
        Ok(u) => {
            let port = u.port_or_known_default().unwrap_or(match u.scheme() {
                "ldap" => 389,
                "ldaps" => 636,
                _ => 0,
            });
            format!(
                "{}://{}:{}{}",
                u.scheme().trim_end_matches('s'),
                u.host_str().unwrap_or("").to_lowercase(),
                port,
                u.path().trim_end_matches('/')
            )
        }
        Err(_) => url.to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_is_containment_ignoring_case_and_spaces() {
        assert!(nodes_overlap(
            "ou=acme,dc=example,dc=com",
            "OU=Acme, DC=example,dc=com"
        ));
        assert!(nodes_overlap(
            "ou=sales,ou=acme,dc=example,dc=com",
            "ou=acme,dc=example,dc=com"
        ));
        assert!(nodes_overlap(
            "ou=acme,dc=example,dc=com",
            "ou=sales,ou=acme,dc=example,dc=com"
        ));
        assert!(!nodes_overlap(
            "ou=acme,dc=example,dc=com",
            "ou=beta,dc=example,dc=com"
        ));
        assert!(!nodes_overlap(
            "ou=acme2,dc=example,dc=com",
            "ou=acme,dc=example,dc=com"
        ));
    }

    #[test]
    fn directory_identity_normalises_default_ports() {
        let mut a = SyncTargetSpec::default();
        a.directory.ldap = Some(crate::api::target::LdapSpec {
            url: "ldap://LDAP.example.com".into(),
            ..Default::default()
        });
        let mut b = a.clone();
        b.directory.ldap.as_mut().unwrap().url = "ldap://ldap.example.com:389/".into();
        assert_eq!(directory_identity(&a), directory_identity(&b));
        b.directory.ldap.as_mut().unwrap().url = "ldap://other.example.com:389".into();
        assert_ne!(directory_identity(&a), directory_identity(&b));
    }

    #[test]
    fn one_enterprise_twice_on_one_scim_server_overlaps() {
        let scim = |binding: &str, node: &str| {
            let mut t = SyncTargetSpec {
                node: node.into(),
                ..Default::default()
            };
            t.binding_ref.name = binding.into();
            t.directory.scim = Some(crate::api::target::ScimSpec {
                url: "https://idp.example.com/scim/v2".into(),
                ..Default::default()
            });
            t
        };
        assert!(owns_same_entries(
            &scim("acme", "sales"),
            &scim("acme", "engineering")
        ));
        assert!(!owns_same_entries(
            &scim("acme", "sales"),
            &scim("beta", "beta")
        ));
        let ldap = |node: &str| SyncTargetSpec {
            node: node.into(),
            ..Default::default()
        };
        assert!(!owns_same_entries(&ldap("ou=a,dc=x"), &ldap("ou=b,dc=x")));
    }
}
