//! Validated newtypes and records of the service core: parse at the edge, never validate later.

use std::fmt;

use time::OffsetDateTime;

use super::error::{AtlasError, AtlasResult, ErrorCode};
use super::key_type::KeyType;
pub use super::roles::{OrgRole, ProjectRole};
pub use super::user_attributes::UserAttributes;

// === ids ===

/// Generates a 24-hex-character id shaped like a MongoDB ObjectId (4 bytes of seconds since
/// the epoch, then 8 random bytes), as Atlas's ids are: they sort by creation time.
fn new_object_id(now: OffsetDateTime) -> String {
    let seconds = u32::try_from(now.unix_timestamp()).unwrap_or(u32::MAX);
    let random: [u8; 8] = rand::random();
    let mut bytes = seconds.to_be_bytes().to_vec();
    bytes.extend_from_slice(&random);
    hex::encode(bytes)
}

fn is_object_id(s: &str) -> bool {
    s.len() == 24 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

macro_rules! object_id {
    ($(#[$doc:meta])* $name:ident, $invalid:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Generates a fresh id.
            pub fn generate(now: OffsetDateTime) -> Self {
                Self(new_object_id(now))
            }

            /// Parses 24 hexadecimal characters (stored lowercase).
            pub fn parse(s: &str) -> AtlasResult<Self> {
                if is_object_id(s) {
                    Ok(Self(s.to_ascii_lowercase()))
                } else {
                    Err($invalid(s))
                }
            }

            /// Returns the id as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

object_id!(
    /// A project (Atlas "group") id.
    ProjectId,
    AtlasError::invalid_group_id
);
object_id!(
    /// An organization id.
    OrgId,
    |s: &str| AtlasError::new(
        ErrorCode::InvalidOrgId,
        format!("An invalid organization ID {s} was specified."),
        vec![s.to_owned()],
    )
    .with_field("org_id")
);
object_id!(
    /// An API key's id (Atlas `apiUserId`; not its public key).
    ApiKeyId,
    |s: &str| AtlasError::new(
        ErrorCode::InvalidApiKeyId,
        format!("An invalid API key ID {s} was specified."),
        vec![s.to_owned()],
    )
    .with_field("api_key_id")
);

// === names ===

/// The longest username accepted (bytes).
pub const MAX_USERNAME_LEN: usize = 1024;
/// The longest project, organization or API key description accepted (characters).
pub const MAX_NAME_LEN: usize = 256;

/// The longest username of a MANAGED X.509 user (characters): it becomes the certificate's
/// subject CN, which X.520 bounds at `ub-common-name` = 64 (OpenSSL refuses a longer CN).
pub const MAX_MANAGED_USERNAME_CHARS: usize = 64;

/// Unicode format characters (general category Cf, Unicode 15.1): invisible characters that
/// change how text around them is shown (bidi overrides and isolates, zero-width characters,
/// the byte order mark, ...), so a username holding one could pass for another.
const FORMAT_CHARS: &[(char, char)] = &[
    ('\u{00AD}', '\u{00AD}'),
    ('\u{0600}', '\u{0605}'),
    ('\u{061C}', '\u{061C}'),
    ('\u{06DD}', '\u{06DD}'),
    ('\u{070F}', '\u{070F}'),
    ('\u{0890}', '\u{0891}'),
    ('\u{08E2}', '\u{08E2}'),
    ('\u{180E}', '\u{180E}'),
    ('\u{200B}', '\u{200F}'),
    ('\u{202A}', '\u{202E}'),
    ('\u{2060}', '\u{2064}'),
    ('\u{2066}', '\u{206F}'),
    ('\u{FEFF}', '\u{FEFF}'),
    ('\u{FFF9}', '\u{FFFB}'),
    ('\u{110BD}', '\u{110BD}'),
    ('\u{110CD}', '\u{110CD}'),
    ('\u{13430}', '\u{1343F}'),
    ('\u{1BCA0}', '\u{1BCA3}'),
    ('\u{1D173}', '\u{1D17A}'),
    ('\u{E0001}', '\u{E0001}'),
    ('\u{E0020}', '\u{E007F}'),
];

/// Whether `c` is a control (Cc) or format (Cf) character.
fn is_control_or_format(c: char) -> bool {
    c.is_control()
        || FORMAT_CHARS
            .iter()
            .any(|&(first, last)| (first..=last).contains(&c))
}

/// A database username: non-empty, not only whitespace, at most [`MAX_USERNAME_LEN`] bytes, no
/// control (Cc) or format (Cf) characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    /// Parses a username.
    pub fn parse(s: &str) -> AtlasResult<Self> {
        if s.is_empty() {
            return Err(AtlasError::missing_attribute("username", "username"));
        }
        if s.trim().is_empty() || s.len() > MAX_USERNAME_LEN || s.chars().any(is_control_or_format)
        {
            return Err(AtlasError::invalid_attribute("username", "username"));
        }
        Ok(Self(s.to_owned()))
    }

    /// Returns the username.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses a display name (project, organization, key description).
pub fn parse_name(field: &'static str, atlas_name: &str, s: &str) -> AtlasResult<String> {
    let trimmed = s.trim();
    if trimmed.is_empty() {
        return Err(AtlasError::missing_attribute(field, atlas_name));
    }
    if trimmed.chars().count() > MAX_NAME_LEN || trimmed.chars().any(char::is_control) {
        return Err(AtlasError::invalid_attribute(field, atlas_name));
    }
    Ok(trimmed.to_owned())
}

/// The authentication database of a database user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatabaseName {
    /// `admin`: password (SCRAM) users.
    Admin,
    /// `$external`: X.509 users.
    External,
}

impl DatabaseName {
    /// Parses `admin` or `$external`.
    pub fn parse(s: &str) -> AtlasResult<Self> {
        match s {
            "admin" => Ok(Self::Admin),
            "$external" => Ok(Self::External),
            "" => Err(AtlasError::missing_attribute(
                "database_name",
                "databaseName",
            )),
            _ => Err(AtlasError::invalid_attribute(
                "database_name",
                "databaseName",
            )),
        }
    }

    /// Returns the database name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::External => "$external",
        }
    }
}

/// How a database user authenticates with X.509 (Atlas `x509Type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum X509Type {
    /// Not an X.509 user.
    None,
    /// Certificates issued by dbcert.
    Managed,
    /// Certificates issued by the customer's own CA.
    Customer,
}

impl X509Type {
    /// Returns the Atlas name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Managed => "MANAGED",
            Self::Customer => "CUSTOMER",
        }
    }

    /// Parses the Atlas name.
    pub fn parse(s: &str) -> AtlasResult<Self> {
        match s {
            "NONE" => Ok(Self::None),
            "MANAGED" => Ok(Self::Managed),
            "CUSTOMER" => Ok(Self::Customer),
            _ => Err(AtlasError::invalid_enum_value("x509_type", s)),
        }
    }
}

/// A MongoDB role of a database user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseUserRole {
    /// The database the role applies to.
    pub database_name: String,
    /// The role's name, e.g. `readWriteAnyDatabase`.
    pub role_name: String,
    /// The collection, or empty.
    pub collection_name: String,
}

impl DatabaseUserRole {
    /// Validates a role.
    pub fn parse(database_name: &str, role_name: &str, collection_name: &str) -> AtlasResult<Self> {
        if role_name.is_empty() {
            return Err(AtlasError::missing_attribute("roles", "roles.roleName"));
        }
        if database_name.is_empty() {
            return Err(AtlasError::missing_attribute("roles", "roles.databaseName"));
        }
        for value in [database_name, role_name, collection_name] {
            if value.len() > MAX_NAME_LEN || value.chars().any(char::is_control) {
                return Err(AtlasError::invalid_attribute("roles", "roles"));
            }
        }
        Ok(Self {
            database_name: database_name.to_owned(),
            role_name: role_name.to_owned(),
            collection_name: collection_name.to_owned(),
        })
    }
}

// === paging ===

/// The default page size of list calls.
pub const DEFAULT_ITEMS_PER_PAGE: u32 = 100;
/// The largest page size of list calls.
pub const MAX_ITEMS_PER_PAGE: u32 = 500;

/// A validated page request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    /// 1-based page number.
    pub num: u32,
    /// Page size.
    pub items_per_page: u32,
    /// Whether to count all results.
    pub include_count: bool,
}

impl Page {
    /// Parses paging parameters: 0 means the default; out-of-range values are refused.
    pub fn parse(
        page_num: i32,
        items_per_page: i32,
        include_count: Option<bool>,
    ) -> AtlasResult<Self> {
        let num = match page_num {
            0 => 1,
            n if n > 0 => n as u32,
            _ => return Err(invalid_query_parameter("pageNum", page_num)),
        };
        let items = match items_per_page {
            0 => DEFAULT_ITEMS_PER_PAGE,
            n if n > 0 && n as u32 <= MAX_ITEMS_PER_PAGE => n as u32,
            _ => return Err(invalid_query_parameter("itemsPerPage", items_per_page)),
        };
        Ok(Self {
            num,
            items_per_page: items,
            include_count: include_count.unwrap_or(true),
        })
    }

    /// The number of items to skip.
    pub fn offset(&self) -> u64 {
        u64::from(self.num - 1) * u64::from(self.items_per_page)
    }
}

fn invalid_query_parameter(name: &str, value: i32) -> AtlasError {
    AtlasError::new(
        ErrorCode::InvalidQueryParameter,
        format!("Invalid query parameter {name} specified: {value}."),
        vec![name.to_owned()],
    )
    .with_field(if name == "pageNum" {
        "page_num"
    } else {
        "items_per_page"
    })
}

/// One page of results.
#[derive(Clone, Debug)]
pub struct Paged<T> {
    /// The page's items.
    pub results: Vec<T>,
    /// The number of all items, when asked for.
    pub total_count: Option<u64>,
    /// Whether a page follows.
    pub has_next_page: bool,
}

impl<T> Paged<T> {
    /// The page `page` of `items`, all of which are at hand (a short list, such as a key's
    /// access list).
    pub fn of_all(items: Vec<T>, page: Page) -> Self {
        let total = items.len() as u64;
        let offset = usize::try_from(page.offset()).unwrap_or(usize::MAX);
        let per_page = page.items_per_page as usize;
        let results: Vec<T> = items.into_iter().skip(offset).take(per_page).collect();
        let has_next_page = (offset as u64).saturating_add(results.len() as u64) < total;
        Self {
            results,
            total_count: page.include_count.then_some(total),
            has_next_page,
        }
    }

    /// Maps the items.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Paged<U> {
        Paged {
            results: self.results.into_iter().map(f).collect(),
            total_count: self.total_count,
            has_next_page: self.has_next_page,
        }
    }
}

// === records ===

/// An organization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Organization {
    /// Its id.
    pub id: OrgId,
    /// Its name.
    pub name: String,
}

/// A project (Atlas "group").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Project {
    /// Its id.
    pub id: ProjectId,
    /// Its name, unique in the organization.
    pub name: String,
    /// The owning organization.
    pub org_id: OrgId,
    /// When it was created.
    pub created: OffsetDateTime,
}

/// A database user of a project.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseUser {
    /// The project.
    pub project_id: ProjectId,
    /// The username.
    pub username: Username,
    /// The authentication database.
    pub database_name: DatabaseName,
    /// The X.509 mode.
    pub x509_type: X509Type,
    /// The MongoDB roles.
    pub roles: Vec<DatabaseUserRole>,
    /// Atlas's description, labels, scopes and deleteAfterDate.
    pub attributes: UserAttributes,
}

/// A project's X.509 settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserSecurity {
    /// The customer CA (PEM); `Some` means self-managed X.509 mode.
    pub customer_ca_pem: Option<String>,
    /// The key type of the project's CA: settable until the CA exists, fixed after.
    pub ca_key_type: KeyType,
}

/// A certificate issued by a project's CA, as recorded (never with its private key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateRecord {
    /// The certificate's serial number.
    pub serial: i64,
    /// The project whose CA signed it.
    pub project_id: ProjectId,
    /// The user it was issued to (it outlives the user).
    pub username: String,
    /// The subject, `CN=<username>`.
    pub subject: String,
    /// notBefore.
    pub not_before: OffsetDateTime,
    /// notAfter.
    pub not_after: OffsetDateTime,
    /// The SHA-256 fingerprint of the DER certificate, lowercase hex.
    pub sha256_fingerprint: String,
    /// The generation of the project CA that signed it ([`super::store::StoredCa::generation`]).
    pub ca_generation: u32,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn usernames_refuse_control_format_and_blank() {
        assert_eq!(Username::parse("alice").unwrap().as_str(), "alice");
        assert_eq!(Username::parse("Zoë 李").unwrap().as_str(), "Zoë 李");
        assert_eq!(
            Username::parse("").unwrap_err().code(),
            ErrorCode::MissingAttribute
        );
        for bad in [
            " ",
            "\t \u{3000}",
            "ad\u{202E}nimda",
            "a\u{202A}b",
            "a\u{2066}b",
            "a\u{2069}b",
            "a\u{200B}b",
            "a\u{200D}b",
            "a\u{200F}b",
            "\u{FEFF}alice",
            "a\u{00AD}b",
            "a\u{E0041}b",
            "a\nb",
            "a\u{0}b",
            "a\u{7F}b",
            "a\u{85}b",
        ] {
            let error = Username::parse(bad).unwrap_err();
            assert_eq!(error.code(), ErrorCode::InvalidAttribute, "{bad:?}");
            assert_eq!(error.parameters(), ["username"], "{bad:?}");
        }
        assert!(Username::parse(&"a".repeat(MAX_USERNAME_LEN)).is_ok());
        assert!(Username::parse(&"a".repeat(MAX_USERNAME_LEN + 1)).is_err());
    }

    #[test]
    fn pages_of_a_list_at_hand() {
        let page = |num, per, count| Page::parse(num, per, Some(count)).unwrap();
        let items: Vec<u32> = (1..=5).collect();
        let first = Paged::of_all(items.clone(), page(1, 2, true));
        assert_eq!(
            (first.results, first.total_count, first.has_next_page),
            (vec![1, 2], Some(5), true)
        );
        let last = Paged::of_all(items.clone(), page(3, 2, false));
        assert_eq!(
            (last.results, last.total_count, last.has_next_page),
            (vec![5], None, false)
        );
        let exact = Paged::of_all(items.clone(), page(1, 5, true));
        assert_eq!((exact.results.len(), exact.has_next_page), (5, false));
        let beyond = Paged::of_all(items, page(i32::MAX, 500, true));
        assert_eq!(
            (beyond.results, beyond.total_count, beyond.has_next_page),
            (vec![], Some(5), false)
        );
    }
}
