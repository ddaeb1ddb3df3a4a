-- Audit events under Atlas's event type names (sqlite dialect; keep in step with the other
-- dialect's 0012). dbcert's own names become the names Atlas gives the same events (its
-- EventTypeForNdsGroup / EventTypeForOrg enums); AUTHENTICATION_FAILED and ORG_CREATED stay.
-- API_KEY_ASSIGNED covered adding a key to a project, changing its roles there and removing it;
-- which one an old event was is not recorded, so they all become API_KEY_ADDED_TO_GROUP. Setting
-- and removing a customer CA are both USER_SECURITY_SETTINGS_UPDATED in Atlas.
UPDATE audit_events SET action = CASE action
    WHEN 'CERTIFICATE_ISSUED' THEN 'MONGODB_USER_X509_CERT_CREATED'
    WHEN 'DATABASE_USER_CREATED' THEN 'MONGODB_USER_ADDED'
    WHEN 'DATABASE_USER_UPDATED' THEN 'MONGODB_USER_UPDATED'
    WHEN 'DATABASE_USER_DELETED' THEN 'MONGODB_USER_DELETED'
    WHEN 'PROJECT_CREATED' THEN 'GROUP_CREATED'
    WHEN 'PROJECT_DELETED' THEN 'GROUP_DELETED'
    WHEN 'API_KEY_ASSIGNED' THEN 'API_KEY_ADDED_TO_GROUP'
    WHEN 'USER_SECURITY_UPDATED' THEN 'USER_SECURITY_SETTINGS_UPDATED'
    WHEN 'CUSTOMER_X509_DELETED' THEN 'USER_SECURITY_SETTINGS_UPDATED'
    ELSE action
END
WHERE action IN ('CERTIFICATE_ISSUED', 'DATABASE_USER_CREATED', 'DATABASE_USER_UPDATED',
    'DATABASE_USER_DELETED', 'PROJECT_CREATED', 'PROJECT_DELETED', 'API_KEY_ASSIGNED',
    'USER_SECURITY_UPDATED', 'CUSTOMER_X509_DELETED');
