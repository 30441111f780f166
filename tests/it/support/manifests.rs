//! The manifests the command-line tests feed to `dingsync plan` / `apply`: a Secret with the
//! app's credentials, a DingTalkBinding pointing at the simulator, a FieldMapping, an Inbound
//! SyncTarget into an LDAP node, and the node's bind password.

/// The simulator's app key; the corpId the tests' generated orgs use.
pub const CORP: &str = "dingsimcorp";

pub struct InboundLdap<'a> {
    pub sim_url: &'a str,
    pub app_key: &'a str,
    /// In the Secret itself; `None`: left to `DINGSYNC_SECRET_APP_APPSECRET`.
    pub app_secret: Option<&'a str>,
    pub ldap_url: &'a str,
    pub bind_dn: &'a str,
    pub node: &'a str,
    pub password: &'a str,
    /// Mapped attributes beyond `cn` and `sn`: (target, template).
    pub attributes: &'a [(&'a str, &'a str)],
}

impl InboundLdap<'_> {
    pub fn yaml(&self) -> String {
        let secret = match self.app_secret {
            Some(s) => format!(", appSecret: \"{s}\""),
            None => String::new(),
        };
        let mut attributes = String::new();
        for (target, template) in [("cn", "{{ name }}"), ("sn", "{{ name[:1] }}")]
            .iter()
            .chain(self.attributes)
        {
            attributes.push_str(&format!(
                "      - {{target: {target}, template: \"{template}\"}}\n"
            ));
        }
        let InboundLdap {
            sim_url,
            app_key,
            ldap_url,
            bind_dn,
            node,
            password,
            ..
        } = self;
        format!(
            r#"
apiVersion: v1
kind: Secret
metadata: {{name: app}}
stringData: {{appKey: "{app_key}"{secret}}}
---
apiVersion: dingsync.io/v1alpha1
kind: DingTalkBinding
metadata: {{name: acme}}
spec:
  corpId: {CORP}
  credentialsSecretRef: {{name: app}}
  endpoints: {{oapi: "{sim_url}", api: "{sim_url}", login: "{sim_url}"}}
---
apiVersion: dingsync.io/v1alpha1
kind: FieldMapping
metadata: {{name: map}}
spec:
  user:
    uniqueName: {{attribute: uid, template: "{{{{ name | pinyin }}}}"}}
    attributes:
{attributes}---
apiVersion: dingsync.io/v1alpha1
kind: SyncTarget
metadata: {{name: to-ldap}}
spec:
  bindingRef: {{name: acme}}
  fieldMappingRef: {{name: map}}
  direction: Inbound
  directory:
    ldap: {{url: "{ldap_url}", bindDN: "{bind_dn}", passwordSecretRef: {{name: ldap, key: password}}}}
  node: "{node}"
  deletion: {{maxPercent: 100}}
---
apiVersion: v1
kind: Secret
metadata: {{name: ldap}}
stringData: {{password: "{password}"}}
"#
        )
    }
}
