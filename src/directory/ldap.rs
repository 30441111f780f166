//! OpenLDAP backend: keeps one node (a base DN) of an LDAP server in step.
//!
//! # What it writes, in standard schema only
//!
//! Nothing here needs a custom schema, so a platform team can point dingsync at any OpenLDAP
//! (or 389 DS) with the stock `core`, `cosine` and `inetorgperson` schemas.
//!
//! * **Layout** (`FlatWithGroups`, the default): people are `inetOrgPerson` entries
//!   `uid=<uid>,ou=people,<node>`, flat, so a person's DN does not change when they change
//!   department. Departments are `groupOfNames` entries whose DNs nest like the department
//!   tree: `cn=Backend,cn=Engineering,cn=Acme,ou=groups,<node>`. Nesting (rather than a
//!   parent attribute) keeps the tree visible in any LDAP browser, makes sibling names the
//!   only uniqueness constraint (two "Sales" under two regions do not collide), and turns a
//!   department rename or move into one modrdn of its group, subgroups included. A person is a
//!   direct `member` of every department group they belong to (not of the ancestors).
//!   With `OuTree`, each department is additionally an `organizationalUnit` nested under
//!   `ou=people,<node>` and each person lives in the OU of their main department (moving
//!   with it); the groups stay as above for multi-department membership.
//! * **Anchor**: every entry dingsync creates carries `businessCategory:
//!   dingsync:<user|dept>:<corpId>:<DingTalk id>`. `businessCategory` is a multi-valued
//!   attribute allowed by `inetOrgPerson`, `groupOfNames` and `organizationalUnit` alike and
//!   exists in every stock OpenLDAP; the `dingsync:` prefix keeps other values of it intact
//!   (a mapping that writes `businessCategory` gets its values merged next to the anchor).
//!   Trade-off: the value is visible to anyone who can read the entry and is matched
//!   case-insensitively by the server (dingsync compares anchors exactly itself), and it is
//!   not a dedicated attribute that an ACL could protect separately; a custom
//!   `dingsyncAnchor` attribute would need a schema every site must deploy. Entries under the
//!   node with another enterprise's anchor are never read as this target's (two enterprises
//!   never merge); entries without an anchor are offered to the matching rules as unlinked
//!   and get the anchor added when linked.
//! * **Empty departments**: `groupOfNames` requires at least one `member`, so an empty
//!   department group holds the node's own DN as placeholder member; it is removed when the
//!   first person joins and put back when the last one leaves. It is never read as a person.
//! * **Leavers** (deletion policy `Disable`): the account is locked the ppolicy way,
//!   `pwdAccountLockedTime: 000001010000Z` ("locked by an administrator", slapo-ppolicy(5)),
//!   and removed from every department group; a rehire deletes the lock. The server needs
//!   the `ppolicy` overlay, and the password policy that applies to these entries must have
//!   `pwdLockout: TRUE` for the lock to refuse binds; without the overlay the disable fails
//!   with an error that says so.
//! * Renames and moves are always modrdn (`deleteoldrdn`), never delete + add, so the
//!   entry (its `entryUUID`, password, any attribute dingsync does not manage) survives.
//!   Group `member` values are repointed after a person's DN changes (the `refint` overlay
//!   does this too when present).
//!
//! Reads are paged (simple paged results) from the node down; a read the server cuts short
//! (size, time or admin limit) is an error, never a shorter list, so it cannot disable anyone.
//! DN values are escaped per RFC 4514 and filter values per RFC 4515 (see [`dn`]).

pub mod client;
pub mod dn;
pub mod schema;
pub mod store;

use std::time::Duration;

pub use client::{ConnectOptions, LdapError, Pool, Secret};
pub use store::{DeptEntry, PersonEntry, Snapshot, Store};

use crate::api::target::{Layout, LdapSpec};

/// Everything needed to open a target's LDAP node, resolved from the spec and its Secrets.
#[derive(Clone, Debug)]
pub struct LdapTarget {
    pub connect: ConnectOptions,
    pub node: String,
    pub layout: Layout,
    /// The enterprise whose anchors this target owns.
    pub corp_id: String,
}

impl LdapTarget {
    /// Build from the SyncTarget's `directory.ldap`, with the Secret values already read.
    pub fn from_spec(
        spec: &LdapSpec,
        password: Secret,
        ca_pem: Option<String>,
        node: &str,
        layout: Option<Layout>,
        corp_id: &str,
    ) -> Self {
        let mut connect = ConnectOptions::new(spec.url.clone(), spec.bind_dn.clone(), password);
        connect.start_tls = spec.start_tls;
        connect.ca_pem = ca_pem;
        connect.timeout = Duration::from_secs(30);
        LdapTarget {
            connect,
            node: node.to_string(),
            layout: layout.unwrap_or_default(),
            corp_id: corp_id.to_string(),
        }
    }

    /// Connect, bind and open the node.
    pub async fn open(&self) -> Result<Store, LdapError> {
        let pool = Pool::connect(self.connect.clone()).await?;
        Store::open(pool, &self.node, self.layout, &self.corp_id).await
    }
}
