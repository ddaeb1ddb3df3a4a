//! The generated protobuf types and gRPC stubs of `dbcert.v1`, the descriptor set for server
//! reflection, and redacting `Debug` impls for the messages that carry private keys.

#![allow(missing_docs, clippy::all)]

/// The `dbcert.v1` package.
pub mod v1 {
    tonic::include_proto!("dbcert.v1");
}

/// The encoded `FileDescriptorSet` of `proto/`, for tonic-reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/dbcert_descriptor.bin"));

impl std::fmt::Debug for v1::CreateUserCertificateResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            certificate_pem: _,
            private_key_pem: _,
            serial_number,
            subject,
            not_before,
            not_after,
        } = self;
        f.debug_struct("CreateUserCertificateResponse")
            .field("serial_number", serial_number)
            .field("subject", subject)
            .field("not_before", not_before)
            .field("not_after", not_after)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for v1::ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            id,
            desc,
            public_key,
            private_key: _,
            roles,
        } = self;
        f.debug_struct("ApiKey")
            .field("id", id)
            .field("desc", desc)
            .field("public_key", public_key)
            .field("roles", roles)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::v1::*;

    #[test]
    fn debug_of_key_carrying_messages_hides_the_keys() {
        let response = CreateUserCertificateResponse {
            certificate_pem: "-----BEGIN CERTIFICATE-----".into(),
            private_key_pem: concat!("-----BEGIN ", "PRIVATE KEY-----\nMIIJQg").into(),
            serial_number: 7,
            ..Default::default()
        };
        let text = format!("{response:?}");
        assert!(!text.contains("PRIVATE KEY"), "{text}");
        assert!(!text.contains("MIIJQg"), "{text}");
        assert!(text.contains("serial_number: 7"));

        let key = ApiKey {
            private_key: "0a1b2c3d-0000-4000-8000-000000000000".into(),
            public_key: "abcdefgh".into(),
            ..Default::default()
        };
        let created = CreateApiKeyResponse { api_key: Some(key) };
        let text = format!("{created:?}");
        assert!(!text.contains("0a1b2c3d"), "{text}");
        assert!(text.contains("abcdefgh"));
    }
}
