//! Conversions between the core's records and the protobuf messages.

use time::OffsetDateTime;

use crate::domain::{self, ApiKeyRecord, DatabaseUserRole, Page, Paged};
use crate::proto::v1;

/// A protobuf timestamp of a time.
pub fn timestamp(t: OffsetDateTime) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.unix_timestamp(),
        nanos: i32::try_from(t.nanosecond()).unwrap_or(0),
    }
}

/// Splits a page of results into (results, total_count, has_next_page).
pub fn page_parts<T, U>(paged: Paged<T>, f: impl FnMut(T) -> U) -> (Vec<U>, Option<i64>, bool) {
    let paged = paged.map(f);
    (
        paged.results,
        paged
            .total_count
            .map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
        paged.has_next_page,
    )
}

/// Parses paging fields.
pub fn page(
    page_num: i32,
    items_per_page: i32,
    include_count: Option<bool>,
) -> domain::AtlasResult<Page> {
    Page::parse(page_num, items_per_page, include_count)
}

pub fn organization(org: domain::Organization) -> v1::Organization {
    v1::Organization {
        id: org.id.to_string(),
        name: org.name,
        is_deleted: false,
    }
}

pub fn project(project: domain::Project) -> v1::Project {
    v1::Project {
        id: project.id.to_string(),
        name: project.name,
        org_id: project.org_id.to_string(),
        created: Some(timestamp(project.created)),
        cluster_count: 0,
    }
}

pub fn x509_type_to_proto(t: domain::X509Type) -> v1::X509Type {
    match t {
        domain::X509Type::None => v1::X509Type::None,
        domain::X509Type::Managed => v1::X509Type::Managed,
        domain::X509Type::Customer => v1::X509Type::Customer,
    }
}

pub fn x509_type_from_proto(value: i32) -> domain::AtlasResult<domain::X509Type> {
    match v1::X509Type::try_from(value) {
        Ok(v1::X509Type::Unspecified | v1::X509Type::None) => Ok(domain::X509Type::None),
        Ok(v1::X509Type::Managed) => Ok(domain::X509Type::Managed),
        Ok(v1::X509Type::Customer) => Ok(domain::X509Type::Customer),
        Err(_) => Err(domain::AtlasError::invalid_enum_value(
            "x509_type",
            &value.to_string(),
        )),
    }
}

pub fn roles_from_proto(
    roles: Vec<v1::DatabaseUserRole>,
) -> domain::AtlasResult<Vec<DatabaseUserRole>> {
    if roles.len() > domain::MAX_ROLES {
        return Err(domain::AtlasError::invalid_attribute("roles", "roles"));
    }
    roles
        .iter()
        .map(|r| DatabaseUserRole::parse(&r.database_name, &r.role_name, &r.collection_name))
        .collect()
}

pub fn database_user(user: domain::DatabaseUser) -> v1::DatabaseUser {
    v1::DatabaseUser {
        group_id: user.project_id.to_string(),
        username: user.username.to_string(),
        database_name: user.database_name.as_str().to_owned(),
        x509_type: x509_type_to_proto(user.x509_type) as i32,
        roles: user
            .roles
            .into_iter()
            .map(|r| v1::DatabaseUserRole {
                database_name: r.database_name,
                role_name: r.role_name,
                collection_name: r.collection_name,
            })
            .collect(),
        description: user.attributes.description,
        labels: user
            .attributes
            .labels
            .into_iter()
            .map(|l| v1::DatabaseUserLabel {
                key: l.key,
                value: l.value,
            })
            .collect(),
        scopes: user
            .attributes
            .scopes
            .into_iter()
            .map(|s| v1::DatabaseUserScope {
                name: s.name,
                r#type: s.scope_type,
            })
            .collect(),
        delete_after_date: user.attributes.delete_after.map(timestamp),
    }
}

/// The attributes of a create or an update, their counts bounded before they are copied.
pub fn attribute_changes(
    description: Option<String>,
    labels: Option<Vec<v1::DatabaseUserLabel>>,
    scopes: Option<Vec<v1::DatabaseUserScope>>,
    delete_after_date: Option<prost_types::Timestamp>,
) -> domain::AtlasResult<domain::AttributeChanges> {
    if labels
        .as_ref()
        .is_some_and(|l| l.len() > domain::MAX_LABELS)
    {
        return Err(domain::AtlasError::invalid_attribute("labels", "labels"));
    }
    if scopes
        .as_ref()
        .is_some_and(|s| s.len() > domain::MAX_SCOPES)
    {
        return Err(domain::AtlasError::invalid_attribute("scopes", "scopes"));
    }
    let delete_after = delete_after_date
        .map(|t| {
            OffsetDateTime::from_unix_timestamp(t.seconds).map_err(|_| {
                domain::AtlasError::invalid_attribute("delete_after_date", "deleteAfterDate")
            })
        })
        .transpose()?;
    Ok(domain::AttributeChanges {
        description,
        labels: labels.map(|labels| {
            labels
                .into_iter()
                .map(|l| domain::UserLabel {
                    key: l.key,
                    value: l.value,
                })
                .collect()
        }),
        scopes: scopes.map(|scopes| {
            scopes
                .into_iter()
                .map(|s| domain::UserScope {
                    name: s.name,
                    scope_type: s.r#type,
                })
                .collect()
        }),
        delete_after,
    })
}

pub fn user_security(security: domain::UserSecurity) -> v1::UserSecurity {
    v1::UserSecurity {
        customer_x509: Some(v1::CustomerX509 {
            cas: security.customer_ca_pem.unwrap_or_default(),
        }),
        ca_key_type: key_type_to_proto(security.ca_key_type) as i32,
    }
}

/// The key type of a request field; `None` when unspecified.
pub fn key_type_from_proto(
    field: &'static str,
    value: i32,
) -> domain::AtlasResult<Option<domain::KeyType>> {
    match v1::KeyType::try_from(value) {
        Ok(v1::KeyType::Unspecified) => Ok(None),
        Ok(v1::KeyType::Rsa2048) => Ok(Some(domain::KeyType::Rsa2048)),
        Ok(v1::KeyType::Rsa3072) => Ok(Some(domain::KeyType::Rsa3072)),
        Ok(v1::KeyType::Rsa4096) => Ok(Some(domain::KeyType::Rsa4096)),
        Ok(v1::KeyType::EcdsaP256) => Ok(Some(domain::KeyType::EcdsaP256)),
        Ok(v1::KeyType::EcdsaP384) => Ok(Some(domain::KeyType::EcdsaP384)),
        Err(_) => Err(domain::AtlasError::invalid_enum_value(
            field,
            &value.to_string(),
        )),
    }
}

pub fn key_type_to_proto(key_type: domain::KeyType) -> v1::KeyType {
    match key_type {
        domain::KeyType::Rsa2048 => v1::KeyType::Rsa2048,
        domain::KeyType::Rsa3072 => v1::KeyType::Rsa3072,
        domain::KeyType::Rsa4096 => v1::KeyType::Rsa4096,
        domain::KeyType::EcdsaP256 => v1::KeyType::EcdsaP256,
        domain::KeyType::EcdsaP384 => v1::KeyType::EcdsaP384,
    }
}

/// An API key for a listing: the private key masked.
pub fn api_key(key: ApiKeyRecord, private_key: Option<&str>) -> v1::ApiKey {
    let mut roles: Vec<v1::ApiKeyRole> = key
        .org_roles
        .iter()
        .map(|r| v1::ApiKeyRole {
            role_name: r.as_str().to_owned(),
            org_id: key.org_id.to_string(),
            group_id: String::new(),
        })
        .collect();
    roles.extend(
        key.project_roles
            .iter()
            .map(|(project, role)| v1::ApiKeyRole {
                role_name: role.as_str().to_owned(),
                org_id: String::new(),
                group_id: project.to_string(),
            }),
    );
    v1::ApiKey {
        id: key.id.to_string(),
        desc: key.desc,
        public_key: key.public_key,
        private_key: private_key
            .unwrap_or(domain::masked_private_key())
            .to_owned(),
        roles,
    }
}
