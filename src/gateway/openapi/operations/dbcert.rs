//! The rows of dbcert's own routes, under `/api/dbcert/v1` (what Atlas lacks, with the same
//! authentication, roles, error body, `pretty` and `envelope`).

use super::{Operation, Query, Status, Success, schema};
use crate::gateway::ca::{CaRotation, ProjectCa};
use crate::gateway::csr::CsrCertificateRequest;
use crate::gateway::resource::ListPage;
use crate::gateway::revocation::{CertificateStatus, Revoke, RevokedCertificates};

/// dbcert's own routes' operations.
pub const DBCERT: &[Operation] = &[
    Operation {
        method: "post",
        path: "/groups/{groupId}/databaseUsers/{username}/certs",
        id: "createDatabaseUserCertificateFromCsr",
        tag: "X.509 Authentication",
        summary: "Issue an X.509 client certificate for the key of a certificate signing request",
        description: "Needs GROUP_OWNER. The Atlas route's rules (a MANAGED user, the per-user \
                      limit, `monthsUntilExpiration` 1 to 24, default 3, not in self-managed \
                      X.509 mode) and profile, for the public key of `csr`, a PEM PKCS#10 \
                      request (at most 16 KiB) whose signature must verify: RSA 2048/3072/4096 \
                      or ECDSA P-256/P-384, subject empty or exactly `CN=<username>`; its \
                      requested extensions are ignored. Refusals: `INVALID_CSR`, \
                      `CSR_SIGNATURE_INVALID`, `CSR_KEY_TYPE_NOT_SUPPORTED`, \
                      `CSR_SUBJECT_MISMATCH` (400); nothing is recorded.",
        body: Some(schema::<CsrCertificateRequest>),
        success: Success::CertificatePem,
        query: Query::Flags,
        errors: &[404],
    },
    Operation {
        method: "get",
        path: "/groups/{groupId}/databaseUsers/{username}/certs",
        id: "listDatabaseUserCertificateStatuses",
        tag: "Certificate Revocation",
        summary: "Return every certificate of a database user with its status, oldest first",
        description: "Needs GROUP_READ_ONLY on the project (GROUP_OWNER, ORG_OWNER and \
                      ORG_READ_ONLY have it). Expired and revoked certificates too: `status` is \
                      `VALID`, `REVOKED` (with `revokedAt` and `revocationReason`) or `EXPIRED`.",
        body: None,
        success: Success::List(schema::<ListPage<CertificateStatus>>),
        query: Query::Paging,
        errors: &[404],
    },
    Operation {
        method: "post",
        path: "/groups/{groupId}/databaseUsers/{username}/certs/revoke",
        id: "revokeDatabaseUserCertificates",
        tag: "Certificate Revocation",
        summary: "Revoke every unexpired certificate of a database user",
        description: "Needs GROUP_OWNER. `reason` is an RFC 5280 reason name (default \
                      `unspecified`). Answers the certificates it revoked (none is not an \
                      error); they leave the Atlas list and the per-user limit.",
        body: Some(schema::<Revoke>),
        success: Success::Entity(Status::Always(200), schema::<RevokedCertificates>),
        query: Query::Flags,
        errors: &[404],
    },
    Operation {
        method: "post",
        path: "/groups/{groupId}/databaseUsers/{username}/certs/{serialNumber}/revoke",
        id: "revokeDatabaseUserCertificate",
        tag: "Certificate Revocation",
        summary: "Revoke one certificate of a database user",
        description: "Needs GROUP_OWNER. `reason` is an RFC 5280 reason name (default \
                      `unspecified`). 409 `CERTIFICATE_ALREADY_REVOKED`; 404 \
                      `CERTIFICATE_NOT_FOUND` (no such serial in the project) or \
                      `CERTIFICATE_NOT_ISSUED_TO_USER`; 400 `INVALID_SERIAL_NUMBER`. A refusal \
                      changes nothing.",
        body: Some(schema::<Revoke>),
        success: Success::Entity(Status::Always(200), schema::<CertificateStatus>),
        query: Query::Flags,
        errors: &[404, 409],
    },
    Operation {
        method: "get",
        path: "/groups/{groupId}/ca",
        id: "getProjectCaTrustBundle",
        tag: "dbcert",
        summary: "Return a project's CA trust bundle (PEM), mongod's net.tls.CAFile",
        description: "Needs GROUP_READ_ONLY on the project (GROUP_OWNER, ORG_OWNER and \
                      ORG_READ_ONLY have it). The issuing CA first, then each older CA (from \
                      earlier rotations) while a certificate it signed is unexpired and not \
                      revoked. 404 `PROJECT_CA_NOT_FOUND` before the project's first \
                      certificate (a read never creates the CA).",
        body: None,
        success: Success::TrustBundle,
        query: Query::Flags,
        errors: &[404],
    },
    Operation {
        method: "post",
        path: "/groups/{groupId}/ca/rotate",
        id: "rotateProjectCa",
        tag: "dbcert",
        summary: "Rotate a project's CA: a new CA issues from now on",
        description: "Needs GROUP_OWNER. `caKeyType` (optional) is the new CA's key type; \
                      absent, the project's current one. Older CAs stay in the trust bundle \
                      until the last certificate each signed has expired or been revoked. 404 \
                      `PROJECT_CA_NOT_FOUND` before the project's first certificate; 409 \
                      `PROJECT_CA_ROTATION_CONFLICT` when another rotation came first (nothing \
                      changed).",
        body: Some(schema::<CaRotation>),
        success: Success::Entity(Status::Always(200), schema::<ProjectCa>),
        query: Query::Flags,
        errors: &[404, 409],
    },
    Operation {
        method: "get",
        path: "/groups/{groupId}/crl",
        id: "getProjectCrl",
        tag: "Certificate Revocation",
        summary: "Return the issuing CA's certificate revocation list (DER)",
        description: "No key needed: a CRL is public. The CRL of the project's issuing CA \
                      (RFC 5280 v2: authority key identifier, CRL number, a reason code per \
                      entry), listing each revoked certificate until it expires; re-signed on \
                      every revocation and half-way through its validity (`--crl-validity`). \
                      `ETag` (304 on `If-None-Match`) and `Cache-Control: public, max-age=60`. \
                      404 `GROUP_NOT_FOUND`, or `PROJECT_CA_NOT_FOUND` before the project's \
                      first certificate.",
        body: None,
        success: Success::Public {
            content_type: "application/pkix-crl",
            description: "The CRL, DER.",
            request: None,
        },
        query: Query::Flags,
        errors: &[404],
    },
    Operation {
        method: "get",
        path: "/groups/{groupId}/crl/{generation}",
        id: "getProjectCrlOfGeneration",
        tag: "Certificate Revocation",
        summary: "Return the certificate revocation list of one CA generation (DER)",
        description: "No key needed: a CRL is public. The CRL signed by the project's CA of \
                      `{generation}` while that CA is in the project's trust bundle: the URL a \
                      leaf's CRL Distribution Point names under `--leaf-revocation-pointers \
                      crl` (after a rotation an older CA's leaves keep pointing at their own \
                      CA's CRL). Caching as `GET …/crl`. 404 `GROUP_NOT_FOUND`, \
                      `PROJECT_CA_NOT_FOUND` before the project's first certificate, or \
                      `RESOURCE_NOT_FOUND` for a generation not in the trust bundle (or not a \
                      positive decimal without leading zeros).",
        body: None,
        success: Success::Public {
            content_type: "application/pkix-crl",
            description: "The CRL, DER.",
            request: None,
        },
        query: Query::Flags,
        errors: &[404],
    },
    Operation {
        method: "get",
        path: "/groups/{groupId}/crl.pem",
        id: "getProjectCrlPem",
        tag: "Certificate Revocation",
        summary: "Return every current CA's certificate revocation list (PEM)",
        description: "No key needed: a CRL is public. One `X509 CRL` PEM block per current \
                      project CA, the issuing CA's first: the file for mongod's \
                      `net.tls.CRLFile`. Caching and errors as `GET …/crl`.",
        body: None,
        success: Success::Public {
            content_type: "application/x-pem-file",
            description: "The CRLs, PEM.",
            request: None,
        },
        query: Query::Flags,
        errors: &[404],
    },
    Operation {
        method: "post",
        path: "/groups/{groupId}/ocsp",
        id: "getOcspResponse",
        tag: "Certificate Revocation",
        summary: "Answer an OCSP request (RFC 6960)",
        description: "No key needed: the project's OCSP responder. The body is a DER \
                      OCSPRequest (at most 64 KiB, 16 certificates); the answer, signed by \
                      the project CA that issued the certificate, says `good`, `revoked` (time \
                      and reason) or `unknown`, and echoes the request's nonce. What does not \
                      parse is answered with the OCSP `malformedRequest` status (200); when \
                      too many answers are being signed, `tryLater`. 404 `GROUP_NOT_FOUND`, or \
                      `PROJECT_CA_NOT_FOUND` before the project's first certificate.",
        body: None,
        success: Success::Public {
            content_type: "application/ocsp-response",
            description: "The DER OCSPResponse.",
            request: Some("application/ocsp-request"),
        },
        query: Query::Flags,
        errors: &[404],
    },
    Operation {
        method: "get",
        path: "/groups/{groupId}/ocsp/{request}",
        id: "getOcspResponseByGet",
        tag: "Certificate Revocation",
        summary: "Answer an OCSP request sent in the path (RFC 6960 appendix A.1)",
        description: "No key needed. `{request}` is the DER OCSPRequest in base64 (standard, \
                      percent-encoded, or URL-safe); the answer as `POST …/ocsp`.",
        body: None,
        success: Success::Public {
            content_type: "application/ocsp-response",
            description: "The DER OCSPResponse.",
            request: None,
        },
        query: Query::Flags,
        errors: &[404],
    },
];
