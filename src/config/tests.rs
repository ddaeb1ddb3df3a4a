//! Unit tests of the settings: parsing, defaults, refusals and redaction.

use super::*;
use crate::domain::RevocationPointerSettings;

/// The settings of `dbcert serve ARGS`, or the error (of the command line or of the settings)
/// as text.
fn serve_config(args: &[&str]) -> Result<Config, String> {
    let cli =
        Cli::try_parse_from([&["dbcert", "serve"], args].concat()).map_err(|e| e.to_string())?;
    let Command::Serve(args) = cli.command else {
        panic!("serve")
    };
    args.into_config().map_err(|e| e.to_string())
}

#[test]
fn parses_durations() {
    assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
    assert!(parse_duration("5h").is_err());
    assert_eq!(parse_positive_duration("2m"), Ok(Duration::from_secs(120)));
    assert!(parse_positive_duration("0s").is_err());
}

#[test]
fn default_durations_parse() {
    for default in [
        DEFAULT_SHUTDOWN_GRACE,
        DEFAULT_REQUEST_TIMEOUT,
        DEFAULT_HEADER_READ_TIMEOUT,
        DEFAULT_HTTP_IDLE_TIMEOUT,
        DEFAULT_AUTH_FAILURE_REFILL,
        DEFAULT_CACHE_TTL,
    ] {
        assert!(parse_duration(default).is_ok(), "{default}");
    }
}

#[test]
fn the_command_line_defaults_are_the_types_defaults() {
    let cli = Cli::try_parse_from(["dbcert", "serve"]).unwrap();
    let Command::Serve(args) = cli.command else {
        panic!("serve")
    };
    let config = args.into_config().unwrap();
    assert_eq!(config.limits, Limits::default());
    let core = CoreSettings::default();
    assert_eq!(config.core.ca_subject, core.ca_subject);
    assert_eq!(
        config.core.max_certificates_per_user,
        core.max_certificates_per_user
    );
    // Leaves are exactly Atlas's profile unless the operator opts in.
    assert_eq!(config.core.leaf_revocation_pointers, None);
    assert_eq!(core.leaf_revocation_pointers, None);
    // The test configuration throttles as the command line does by default.
    assert_eq!(config.throttle, Config::for_test(PathBuf::new()).throttle);
}

#[test]
fn parses_key_pool_flags() {
    let cli = Cli::try_parse_from([
        "dbcert",
        "serve",
        "--key-pool-types",
        "RSA_4096, ecdsa_p256",
        "--key-pool-size",
        "0",
    ])
    .unwrap();
    let Command::Serve(args) = cli.command else {
        panic!("serve")
    };
    let config = args.into_config().unwrap();
    assert_eq!(
        config.key_pool.types,
        vec![KeyType::Rsa4096, KeyType::EcdsaP256]
    );
    assert!(!config.key_pool.is_enabled());
    assert!(parse_key_types("ED25519").is_err());
    assert_eq!(parse_key_types(""), Ok(KeyTypes(Vec::new())));
}

#[test]
fn parses_audit_retention() {
    let config = |args: &[&str]| serve_config(args).map(|config| config.audit_retention);
    assert_eq!(
        config(&[]).unwrap(),
        Some(Duration::from_secs(365 * 86_400))
    );
    assert_eq!(
        config(&["--audit-retention-days", "30"]).unwrap(),
        Some(Duration::from_secs(30 * 86_400))
    );
    assert_eq!(config(&["--audit-retention-days", "0"]).unwrap(), None);
    assert!(config(&["--audit-retention-days", "-1"]).is_err());
    assert!(config(&["--audit-retention-days", "36501"]).is_err());
    assert!(config(&["--audit-retention-days", "x"]).is_err());
}

#[test]
fn parses_public_url() {
    let config = |args: &[&str]| serve_config(args).map(|config| config.public_url);
    assert_eq!(config(&[]).unwrap(), None);
    assert_eq!(
        config(&["--public-url", "https://dbcert.example.com/"])
            .unwrap()
            .unwrap()
            .as_str(),
        "https://dbcert.example.com"
    );
    for bad in [
        "dbcert.example.com",
        "ftp://x",
        "https://x/api",
        "https://x?a=1",
    ] {
        let error = config(&["--public-url", bad]).unwrap_err();
        assert!(error.contains("--public-url"), "{error}");
    }
}

#[test]
fn parses_leaf_revocation_pointers() {
    let config =
        |args: &[&str]| serve_config(args).map(|config| config.core.leaf_revocation_pointers);
    let url = ["--public-url", "https://dbcert.example.com/"];
    assert_eq!(config(&url), Ok(None));
    let both = |crl, ocsp| {
        Ok(Some(RevocationPointerSettings {
            base_url: "https://dbcert.example.com".to_owned(),
            crl,
            ocsp,
        }))
    };
    for (value, expected) in [
        ("crl,ocsp", both(true, true)),
        ("ocsp, crl", both(true, true)),
        ("crl", both(true, false)),
        ("ocsp", both(false, true)),
    ] {
        let args = [&url[..], &["--leaf-revocation-pointers", value]].concat();
        assert_eq!(config(&args), expected, "{value}");
    }
    let unknown = config(&[&url[..], &["--leaf-revocation-pointers", "cdp"]].concat());
    assert!(unknown.unwrap_err().contains("cdp"));
    // Without the public URL the URLs would have no host: refused, naming both settings.
    let error = config(&["--leaf-revocation-pointers", "crl"]).unwrap_err();
    assert!(
        error.contains("--leaf-revocation-pointers")
            && error.contains("--leaf-revocation-pointer-url")
            && error.contains("--public-url"),
        "{error}"
    );
}

#[test]
fn parses_the_leaf_revocation_pointer_url() {
    let config = |args: &[&str]| {
        serve_config(args).map(|config| config.core.leaf_revocation_pointers.map(|s| s.base_url))
    };
    let pointers = ["--leaf-revocation-pointers", "crl,ocsp"];
    let pointer_url = [
        "--leaf-revocation-pointer-url",
        "http://crl.example.com:8080/",
    ];
    let public_url = ["--public-url", "https://dbcert.example.com"];
    // Alone, and over the public URL (which still names links): the pointer URL wins.
    let expected = Ok(Some("http://crl.example.com:8080".to_owned()));
    assert_eq!(config(&[&pointers[..], &pointer_url].concat()), expected);
    assert_eq!(
        config(&[&pointers[..], &public_url, &pointer_url].concat()),
        expected
    );
    assert_eq!(
        config(&[&pointers[..], &public_url].concat()),
        Ok(Some("https://dbcert.example.com".to_owned()))
    );
    // Checked as the public URL is: scheme and host only.
    for bad in ["crl.example.com", "ftp://x", "http://x/crl", "http://u@x"] {
        let error =
            config(&[&pointers[..], &["--leaf-revocation-pointer-url", bad]].concat()).unwrap_err();
        assert!(error.contains("--leaf-revocation-pointer-url"), "{error}");
    }
    // Without pointers it would do nothing: refused, with or without the public URL.
    for args in [&pointer_url[..], &[&public_url[..], &pointer_url].concat()] {
        let error = config(args).unwrap_err();
        assert!(
            error.contains("--leaf-revocation-pointer-url")
                && error.contains("--leaf-revocation-pointers")
                && error.contains("not set"),
            "{error}"
        );
    }
}

#[test]
fn parses_trusted_proxies() {
    let cli = Cli::try_parse_from([
        "dbcert",
        "serve",
        "--trusted-proxies",
        "10.0.0.0/8, 192.0.2.7,::1",
    ])
    .unwrap();
    let Command::Serve(args) = cli.command else {
        panic!("serve")
    };
    let config = args.into_config().unwrap();
    assert_eq!(config.trusted_proxies.networks().len(), 3);
    assert!(config.trusted_proxies.trusts("192.0.2.7".parse().unwrap()));
    assert!(Cli::try_parse_from(["dbcert", "serve", "--trusted-proxies", "10.0.0.0/40"]).is_err());
    let Command::Serve(args) = Cli::try_parse_from(["dbcert", "serve"]).unwrap().command else {
        panic!("serve")
    };
    assert_eq!(
        args.into_config().unwrap().trusted_proxies,
        TrustedProxies::default()
    );
}

#[test]
fn debug_redacts_secrets() {
    let cli = Cli::try_parse_from(["dbcert", "serve", "--database", "postgres://u:hunter2@h/db"])
        .unwrap();
    let Command::Serve(mut args) = cli.command else {
        panic!("serve")
    };
    // From the environment only (DBCERT_BOOTSTRAP_API_KEY).
    args.secrets.bootstrap_api_key =
        Some("abcdefgh:11111111-2222-4333-8444-555555555555".to_owned());
    let text = format!("{args:?}");
    assert!(
        !text.contains("hunter2") && !text.contains("11111111"),
        "{text}"
    );
    let config = args.into_config().unwrap();
    let text = format!("{config:?}");
    assert!(
        !text.contains("hunter2") && !text.contains("11111111"),
        "{text}"
    );
    assert!(text.contains("abcdefgh"));
}

#[test]
fn secrets_on_the_command_line_are_refused_naming_the_variable() {
    for (flag, variable) in [
        ("--master-key", "DBCERT_MASTER_KEY"),
        ("--bootstrap-api-key", "DBCERT_BOOTSTRAP_API_KEY"),
    ] {
        let error = Cli::try_parse_from(["dbcert", "serve", flag, "secret:value"])
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains(flag) && error.contains(variable), "{error}");
        assert!(!error.contains("secret:value"), "{error}");
    }
    let Command::Serve(args) = Cli::try_parse_from(["dbcert", "serve"]).unwrap().command else {
        panic!("not serve");
    };
    assert!(!args.allow_insecure_permissions);
    let config = args.into_config().unwrap();
    assert!(!config.allow_insecure_permissions);
}

#[test]
fn max_connections_is_bounded() {
    let parse = |value: &str| {
        serve_config(&["--max-connections", value]).map(|config| config.limits.max_connections)
    };
    assert_eq!(parse("2").unwrap(), 2);
    assert_eq!(parse("1000000").unwrap(), 1_000_000);
    assert!(
        serve_config(&["--max-connections-per-address", "0"]).is_err(),
        "0 per address"
    );
    // 0 would refuse every connection; a huge value would panic the accept loop's semaphore.
    for bad in ["0", "1000001", "18446744073709551615", "-1"] {
        assert!(parse(bad).is_err(), "{bad}");
    }
}
