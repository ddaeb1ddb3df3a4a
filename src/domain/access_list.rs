//! API key access lists (Atlas's "API Access List"): the addresses a key may authenticate
//! from. An entry is one address (`ipAddress`) or a network (`cidrBlock`), IPv4 or IPv6; a key
//! with no entries is not restricted (Atlas's default for an organization that does not
//! require access lists; dbcert has no such organization setting). A key holds at most
//! [`MAX_ACCESS_LIST_ENTRIES`].

use std::net::{IpAddr, SocketAddr};

use super::api_keys::api_key_not_found;
use super::audit::{AuditAction, AuditEvent};
use super::auth::{Access, Principal};
use super::core::{Core, store_error};
use super::error::{AtlasError, AtlasResult, ErrorCode};
use super::model::{ApiKeyId, OrgId};

/// The most entries one key's access list holds.
pub const MAX_ACCESS_LIST_ENTRIES: usize = 100;

/// The most entries one request adds.
pub const MAX_ACCESS_LIST_ENTRIES_PER_REQUEST: usize = MAX_ACCESS_LIST_ENTRIES;

/// The longest address or CIDR block text accepted (an IPv6 block is at most 43 characters).
const MAX_TEXT_LEN: usize = 64;

/// One entry of a key's access list: a network, in canonical form (host bits zero; an
/// IPv4-mapped IPv6 address taken as the IPv4 address it maps).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AccessListEntry {
    network: IpAddr,
    prefix: u8,
}

impl AccessListEntry {
    /// Parses Atlas's `ipAddress`: one address, IPv4 or IPv6.
    pub fn parse_ip_address(text: &str) -> AtlasResult<Self> {
        let ip = parse_ip(text).ok_or_else(|| invalid("ipAddress", text))?;
        Ok(Self {
            network: ip,
            prefix: full_prefix(ip),
        })
    }

    /// Parses Atlas's `cidrBlock`: `address/prefix` whose host bits are zero. The spec's
    /// pattern also takes the `/` percent-encoded (`%2F`, as in a path), so that is read too.
    pub fn parse_cidr_block(text: &str) -> AtlasResult<Self> {
        let decoded = text.replacen("%2F", "/", 1).replacen("%2f", "/", 1);
        parse_cidr(&decoded).ok_or_else(|| invalid("cidrBlock", text))
    }

    /// Parses the `{ipAddress}` of a path: an address or a CIDR block (its `/` percent-encoded).
    pub fn parse_path(text: &str) -> AtlasResult<Self> {
        let parsed = if text.contains('/') {
            parse_cidr(text)
        } else {
            parse_ip(text).map(|ip| Self {
                network: ip,
                prefix: full_prefix(ip),
            })
        };
        parsed.ok_or_else(|| {
            AtlasError::new(
                ErrorCode::InvalidAttribute,
                format!("IP address {text} is invalid."),
                vec![text.to_owned()],
            )
        })
    }

    /// Reads a stored entry (its [`cidr_block`](Self::cidr_block)); `None` if it is not one.
    pub fn from_stored(text: &str) -> Option<Self> {
        parse_cidr(text)
    }

    /// Whether `ip` is in this entry's network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                mask_v4(u32::from(ip), self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask_v6(u128::from(ip), self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }

    /// The entry as Atlas's `cidrBlock` (`192.0.2.7/32` for a single address), also the form
    /// it is stored in.
    pub fn cidr_block(&self) -> String {
        format!("{}/{}", self.network, self.prefix)
    }

    /// Atlas's `ipAddress` of an entry that is one address; `None` for a wider network.
    pub fn ip_address(&self) -> Option<String> {
        (self.prefix == full_prefix(self.network)).then(|| self.network.to_string())
    }
}

/// An entry as stored, with when it was added.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessListItem {
    /// The network.
    pub entry: AccessListEntry,
    /// When it was added.
    pub created: time::OffsetDateTime,
}

/// What adding entries to a key's access list did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessListAdd {
    /// The entries are on the list (those already there are kept as they were).
    Added,
    /// The organization has no such key; nothing changed.
    NoSuchKey,
    /// The list would hold more than its limit; nothing changed.
    Full,
}

/// Parses one address; an IPv4-mapped IPv6 address is taken as its IPv4 address.
fn parse_ip(text: &str) -> Option<IpAddr> {
    if text.len() > MAX_TEXT_LEN {
        return None;
    }
    // Rust's parser refuses zone ids, leading zeros in IPv4 octets and surrounding spaces.
    text.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

/// Parses `address/prefix`, refusing set host bits (as Atlas does: `10.0.0.1/8` is no block).
fn parse_cidr(text: &str) -> Option<AccessListEntry> {
    let (address, prefix) = text.split_once('/')?;
    if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let raw: IpAddr = address.parse().ok()?;
    let mut prefix: u8 = prefix.parse().ok()?;
    if prefix > full_prefix(raw) {
        return None;
    }
    // `::ffff:a.b.c.d/n` with n >= 96 is the IPv4 block `a.b.c.d/(n-96)`.
    let network = match raw {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => {
            if prefix < 96 {
                raw
            } else {
                prefix -= 96;
                IpAddr::V4(v6.to_ipv4_mapped()?)
            }
        }
        _ => raw,
    };
    let canonical = match network {
        IpAddr::V4(ip) => mask_v4(u32::from(ip), prefix) == u32::from(ip),
        IpAddr::V6(ip) => mask_v6(u128::from(ip), prefix) == u128::from(ip),
    };
    (canonical && text.len() <= MAX_TEXT_LEN).then_some(AccessListEntry { network, prefix })
}

fn full_prefix(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

fn mask_v4(ip: u32, prefix: u8) -> u32 {
    ip & u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask_v6(ip: u128, prefix: u8) -> u128 {
    ip & u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

fn invalid(field: &'static str, value: &str) -> AtlasError {
    AtlasError::invalid_attribute(field, value)
}

/// Atlas's refusal of a key used from an address not on its access list: 403
/// `IP_ADDRESS_NOT_ON_ACCESS_LIST`.
/// `None`: the transport knows no address (refused: a list is never bypassed).
pub fn not_on_access_list(ip: Option<IpAddr>) -> AtlasError {
    let ip = ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_canonical().to_string());
    AtlasError::new(
        ErrorCode::IpAddressNotOnAccessList,
        format!("IP address {ip} is not allowed to access this resource."),
        vec![ip],
    )
}

impl Core {
    /// Checks that a key may be used from `client`: a key with an empty access list may be
    /// used from anywhere; one with entries only from an address in one of them. The list is
    /// read through the store's cache (seen by other replicas within its TTL).
    pub async fn check_access_list(
        &self,
        principal: &Principal,
        client: Option<SocketAddr>,
    ) -> AtlasResult<()> {
        let list = self
            .store
            .api_key_access_list(&principal.key_id)
            .await
            .map_err(store_error)?;
        if list.is_empty() {
            return Ok(());
        }
        let ip = client.map(|c| c.ip());
        match ip {
            Some(ip) if list.iter().any(|item| item.entry.contains(ip)) => Ok(()),
            _ => Err(not_on_access_list(ip)),
        }
    }
}

impl Core {
    /// A key's access list (any member of its organization reads it, and a key its own).
    pub async fn api_key_access_list(
        &self,
        principal: &Principal,
        org_id: &str,
        api_key_id: &str,
    ) -> AtlasResult<Vec<AccessListItem>> {
        if api_key_id == principal.key_id.as_str() && org_id == principal.org_id.as_str() {
            return self
                .store
                .api_key_access_list(&principal.key_id)
                .await
                .map_err(store_error);
        }
        let org = self.authorized_org(principal, org_id, Access::Read).await?;
        let id = self.org_api_key(&org.id, api_key_id).await?;
        self.store
            .api_key_access_list(&id)
            .await
            .map_err(store_error)
    }

    /// One entry of a key's access list; `RESOURCE_NOT_FOUND` when the list lacks it.
    pub async fn api_key_access_list_entry(
        &self,
        principal: &Principal,
        org_id: &str,
        api_key_id: &str,
        ip_address: &str,
    ) -> AtlasResult<AccessListItem> {
        let entry = AccessListEntry::parse_path(ip_address)?;
        self.api_key_access_list(principal, org_id, api_key_id)
            .await?
            .into_iter()
            .find(|item| item.entry == entry)
            .ok_or_else(|| entry_not_found(api_key_id, ip_address))
    }

    /// Adds entries to a key's access list (ORG_OWNER); returns the whole list. Entries
    /// already there are kept; one audit event per entry asked for.
    pub async fn add_api_key_access_list(
        &self,
        principal: &Principal,
        org_id: &str,
        api_key_id: &str,
        entries: &[AccessListEntry],
    ) -> AtlasResult<Vec<AccessListItem>> {
        let org = self
            .authorized_org(principal, org_id, Access::Write)
            .await?;
        let id = ApiKeyId::parse(api_key_id)?;
        if entries.is_empty() {
            return Err(AtlasError::missing_attribute("entries", "ipAddress"));
        }
        if entries.len() > MAX_ACCESS_LIST_ENTRIES_PER_REQUEST {
            return Err(too_many());
        }
        let now = self.clock.now();
        match self
            .store
            .add_api_key_access_list(&org.id, &id, entries, now, MAX_ACCESS_LIST_ENTRIES)
            .await
            .map_err(store_error)?
        {
            AccessListAdd::Added => {}
            AccessListAdd::NoSuchKey => return Err(api_key_not_found(&id)),
            AccessListAdd::Full => return Err(too_many()),
        }
        for entry in entries {
            self.audit(
                AuditEvent::by(
                    principal,
                    now,
                    AuditAction::ApiKeyAccessListEntryAdded,
                    None,
                )
                .with_org(org.id.clone())
                .with_target(format!("{id} {}", entry.cidr_block())),
            )
            .await;
        }
        self.store
            .api_key_access_list(&id)
            .await
            .map_err(store_error)
    }

    /// Removes one entry of a key's access list (ORG_OWNER).
    pub async fn delete_api_key_access_list_entry(
        &self,
        principal: &Principal,
        org_id: &str,
        api_key_id: &str,
        ip_address: &str,
    ) -> AtlasResult<()> {
        let org = self
            .authorized_org(principal, org_id, Access::Write)
            .await?;
        let id = self.org_api_key(&org.id, api_key_id).await?;
        let entry = AccessListEntry::parse_path(ip_address)?;
        // The check and the removal under one lock: two removals by the key of two entries
        // that each leave the other cannot both pass (in this process; across replicas the
        // store's cache TTL bounds what a check may miss).
        let _own = if id == principal.key_id {
            let guard = self.own_access_list.lock().await;
            self.refuse_own_lockout(principal, &id, &entry).await?;
            Some(guard)
        } else {
            None
        };
        if !self
            .store
            .delete_api_key_access_list_entry(&id, &entry)
            .await
            .map_err(store_error)?
        {
            return Err(entry_not_found(api_key_id, ip_address));
        }
        self.audit(
            AuditEvent::by(
                principal,
                self.clock.now(),
                AuditAction::ApiKeyAccessListEntryDeleted,
                None,
            )
            .with_org(org.id.clone())
            .with_target(format!("{id} {}", entry.cidr_block())),
        )
        .await;
        Ok(())
    }

    /// Refuses removing `entry` from the caller's own key when the list left would not hold
    /// the caller's address (Atlas's `CANNOT_REMOVE_CALLER_FROM_ACCESS_LIST`): the key would
    /// lock itself out. Emptying the list lifts the restriction, so it is not refused.
    async fn refuse_own_lockout(
        &self,
        principal: &Principal,
        id: &ApiKeyId,
        entry: &AccessListEntry,
    ) -> AtlasResult<()> {
        let list = self
            .store
            .api_key_access_list(id)
            .await
            .map_err(store_error)?;
        let mut left = list.iter().filter(|item| &item.entry != entry).peekable();
        let caller = principal.client_address.map(|a| a.ip());
        let locked_out = left.peek().is_some()
            && !left.any(|item| caller.is_some_and(|ip| item.entry.contains(ip)));
        if locked_out {
            let ip =
                caller.map_or_else(|| "unknown".to_owned(), |ip| ip.to_canonical().to_string());
            return Err(AtlasError::new(
                ErrorCode::CannotRemoveCallerFromAccessList,
                format!("Cannot remove caller's IP address {ip} from access list."),
                vec![ip],
            ));
        }
        Ok(())
    }

    /// The id of a key of the organization; `INVALID_API_KEY_ID` otherwise.
    async fn org_api_key(&self, org_id: &OrgId, api_key_id: &str) -> AtlasResult<ApiKeyId> {
        let id = ApiKeyId::parse(api_key_id)?;
        match self.store.api_key(&id).await.map_err(store_error)? {
            Some(key) if &key.org_id == org_id => Ok(id),
            _ => Err(api_key_not_found(&id)),
        }
    }
}

fn entry_not_found(api_key_id: &str, ip_address: &str) -> AtlasError {
    AtlasError::new(
        ErrorCode::ResourceNotFound,
        format!("IP address {ip_address} not found in the access list of API key {api_key_id}."),
        vec![ip_address.to_owned(), api_key_id.to_owned()],
    )
}

fn too_many() -> AtlasError {
    AtlasError::new(
        ErrorCode::InvalidAttribute,
        format!("An API key's access list holds at most {MAX_ACCESS_LIST_ENTRIES} entries."),
        vec!["accessList".to_owned()],
    )
    .with_field("accessList")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_and_blocks_parse_strictly() {
        let one = AccessListEntry::parse_ip_address("192.0.2.7").unwrap();
        assert_eq!(one.cidr_block(), "192.0.2.7/32");
        assert_eq!(one.ip_address().as_deref(), Some("192.0.2.7"));
        let v6 = AccessListEntry::parse_ip_address("2001:DB8::1").unwrap();
        assert_eq!(v6.cidr_block(), "2001:db8::1/128");
        let block = AccessListEntry::parse_cidr_block("2001:db8::/32").unwrap();
        assert_eq!(block.ip_address(), None);
        let mapped = AccessListEntry::parse_ip_address("::ffff:10.1.2.3").unwrap();
        assert_eq!(mapped.cidr_block(), "10.1.2.3/32");
        let mapped = AccessListEntry::parse_cidr_block("::ffff:10.0.0.0/104").unwrap();
        assert_eq!(mapped.cidr_block(), "10.0.0.0/8");
        // The spec's pattern takes the slash percent-encoded too.
        for encoded in ["198.51.100.0%2F24", "198.51.100.0%2f24"] {
            let block = AccessListEntry::parse_cidr_block(encoded).unwrap();
            assert_eq!(block.cidr_block(), "198.51.100.0/24");
        }
        assert!(AccessListEntry::parse_cidr_block("198.51.100.0%2F%2F24").is_err());
        for bad in [
            "",
            "10.0.0.1/8",
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0.0/08x",
            "010.0.0.1/32",
            " 10.0.0.0/8",
            "2001:db8::1/64",
            "2001:db8::/129",
            "fe80::1%eth0/128",
            "10.0.0.0/8/8",
            "example.org/32",
        ] {
            assert!(AccessListEntry::parse_cidr_block(bad).is_err(), "{bad:?}");
        }
        for bad in [
            "",
            "10.0.0.256",
            "10.0.0.1/32",
            "1.2.3",
            "fe80::1%eth0",
            "::1 ",
        ] {
            assert!(AccessListEntry::parse_ip_address(bad).is_err(), "{bad:?}");
        }
        let err = AccessListEntry::parse_cidr_block("10.0.0.1/8").unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidAttribute);
        assert_eq!(
            AccessListEntry::parse_path("10.0.0.0/8").unwrap(),
            AccessListEntry::parse_cidr_block("10.0.0.0/8").unwrap()
        );
        assert!(AccessListEntry::parse_path("10.0.0.1/8").is_err());
    }

    #[test]
    fn membership() {
        let block = AccessListEntry::parse_cidr_block("10.20.0.0/16").unwrap();
        assert!(block.contains(ip("10.20.255.1")));
        assert!(block.contains(ip("::ffff:10.20.0.9")));
        assert!(!block.contains(ip("10.21.0.0")));
        assert!(!block.contains(ip("::1")));
        let all = AccessListEntry::parse_cidr_block("0.0.0.0/0").unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        assert!(!all.contains(ip("2001:db8::1")));
        let one = AccessListEntry::parse_ip_address("127.0.0.2").unwrap();
        assert!(one.contains(ip("127.0.0.2")));
        assert!(!one.contains(ip("127.0.0.1")));
        let v6 = AccessListEntry::parse_cidr_block("2001:db8:ab00::/40").unwrap();
        assert!(v6.contains(ip("2001:db8:abff::1")));
        assert!(!v6.contains(ip("2001:db8:ac00::1")));
        let v6all = AccessListEntry::parse_cidr_block("::/0").unwrap();
        assert!(v6all.contains(ip("::1")));
        assert!(!v6all.contains(ip("127.0.0.1")));
    }
}
