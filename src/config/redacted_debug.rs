//! `Debug` for the settings, written out field by field so that a new field must be listed (or
//! skipped on purpose): the master key and the secrets from the environment never appear, the
//! database URL shows no password, and the bootstrap key shows only its public half.

use std::fmt;

use super::{Config, ServeArgs};
use crate::storage::redact_url;

impl fmt::Debug for ServeArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            grpc_listen,
            http_listen,
            metrics_listen,
            data_dir,
            database,
            master_key_file,
            additional_master_key_file,
            secrets: _,
            allow_insecure_permissions,
            ca_organization,
            ca_organizational_unit,
            max_certificates_per_user,
            crl_validity,
            log_format,
            shutdown_grace,
            request_timeout,
            header_read_timeout,
            http_idle_timeout,
            max_concurrent_requests,
            max_connections,
            max_connections_per_address,
            max_header_bytes,
            http2_max_concurrent_streams,
            auth_failure_burst,
            auth_failure_key_burst,
            auth_failure_key_alert,
            auth_failure_refill,
            trusted_proxies,
            public_url,
            leaf_revocation_pointers,
            leaf_revocation_pointer_url,
            tls_cert_file,
            tls_key_file,
            grpc_client_ca_file,
            grpc_client_cert,
            mtls_principal_rule,
            key_pool_size,
            key_pool_workers,
            key_pool_types,
            cache_ttl,
            audit_retention_days,
        } = self;
        f.debug_struct("ServeArgs")
            .field("grpc_listen", grpc_listen)
            .field("http_listen", http_listen)
            .field("metrics_listen", metrics_listen)
            .field("data_dir", data_dir)
            .field("database", &database.as_deref().map(redact_url))
            .field("master_key_file", master_key_file)
            .field("additional_master_key_file", additional_master_key_file)
            .field("allow_insecure_permissions", allow_insecure_permissions)
            .field("ca_organization", ca_organization)
            .field("ca_organizational_unit", ca_organizational_unit)
            .field("max_certificates_per_user", max_certificates_per_user)
            .field("crl_validity", crl_validity)
            .field("log_format", log_format)
            .field("shutdown_grace", shutdown_grace)
            .field("request_timeout", request_timeout)
            .field("header_read_timeout", header_read_timeout)
            .field("http_idle_timeout", http_idle_timeout)
            .field("max_concurrent_requests", max_concurrent_requests)
            .field("max_connections", max_connections)
            .field("max_connections_per_address", max_connections_per_address)
            .field("max_header_bytes", max_header_bytes)
            .field("http2_max_concurrent_streams", http2_max_concurrent_streams)
            .field("auth_failure_burst", auth_failure_burst)
            .field("auth_failure_key_burst", auth_failure_key_burst)
            .field("auth_failure_key_alert", auth_failure_key_alert)
            .field("auth_failure_refill", auth_failure_refill)
            .field("trusted_proxies", trusted_proxies)
            .field("public_url", public_url)
            .field("leaf_revocation_pointers", leaf_revocation_pointers)
            .field("leaf_revocation_pointer_url", leaf_revocation_pointer_url)
            .field("tls_cert_file", tls_cert_file)
            .field("tls_key_file", tls_key_file)
            .field("grpc_client_ca_file", grpc_client_ca_file)
            .field("grpc_client_cert", grpc_client_cert)
            .field("mtls_principal_rule", mtls_principal_rule)
            .field("key_pool_size", key_pool_size)
            .field("key_pool_workers", key_pool_workers)
            .field("key_pool_types", key_pool_types)
            .field("cache_ttl", cache_ttl)
            .field("audit_retention_days", audit_retention_days)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            data_dir,
            database_url,
            master_key: _,
            additional_master_keys,
            bootstrap_api_key,
            allow_insecure_permissions,
            core,
            shutdown_grace,
            limits,
            throttle,
            trusted_proxies,
            public_url,
            tls,
            key_pool,
            cache_ttl,
            audit_retention,
        } = self;
        f.debug_struct("Config")
            .field("data_dir", data_dir)
            .field("database_url", &redact_url(database_url))
            .field("additional_master_keys", additional_master_keys)
            .field(
                "bootstrap_api_key",
                &bootstrap_api_key.as_ref().map(|(public, _)| public),
            )
            .field("allow_insecure_permissions", allow_insecure_permissions)
            .field("core", core)
            .field("shutdown_grace", shutdown_grace)
            .field("limits", limits)
            .field("throttle", throttle)
            .field("trusted_proxies", trusted_proxies)
            .field("public_url", public_url)
            .field("tls", tls)
            .field("key_pool", key_pool)
            .field("cache_ttl", cache_ttl)
            .field("audit_retention", audit_retention)
            .finish_non_exhaustive()
    }
}
