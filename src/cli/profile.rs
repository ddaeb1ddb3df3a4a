//! Where the client's settings come from, highest first: flags, environment variables
//! (`DBCERT_PUBLIC_API_KEY`, `DBCERT_PRIVATE_API_KEY`, `DBCERT_SERVER`, …), then a profile of the
//! configuration file, as the Atlas CLI's profiles:
//!
//! ```toml
//! [default]
//! server = "https://dbcert.example.com:50051"
//! public_api_key = "abcdefgh"
//! private_api_key = "…"
//! project_id = "5e2211c17a3e5a48f5497de3"
//! ```
//!
//! The file holds a private API key, so it must be private to its owner: a file open to group
//! or others is refused, naming the `chmod 600` that fixes it.

use std::collections::BTreeMap;
use std::fmt;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::{CliError, ClientArgs, OutputFormat};

/// The environment variable holding the public API key.
pub const PUBLIC_KEY_VAR: &str = "DBCERT_PUBLIC_API_KEY";
/// The environment variable holding the private API key.
pub const PRIVATE_KEY_VAR: &str = "DBCERT_PRIVATE_API_KEY";
/// The profile used when none is named.
pub const DEFAULT_PROFILE: &str = "default";
/// The server used when none is given.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:50051";
/// The largest configuration file read (it holds a few short settings).
const MAX_CONFIG_BYTES: u64 = 64 * 1024;

/// One profile of the configuration file. Every setting is optional.
#[derive(Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The server's gRPC URL.
    pub server: Option<String>,
    /// The public part of the API key.
    pub public_api_key: Option<String>,
    /// The private part of the API key.
    #[serde(default, deserialize_with = "secret")]
    pub private_api_key: Option<Zeroizing<String>>,
    /// The project commands act on when --projectId is not given.
    pub project_id: Option<String>,
    /// The output format.
    pub output: Option<OutputFormat>,
    /// PEM CA certificates to verify the server against.
    pub ca_file: Option<PathBuf>,
    /// The name the server's certificate must hold.
    pub server_name: Option<String>,
    /// PEM client certificate for mutual TLS.
    pub client_cert_file: Option<PathBuf>,
    /// Its private key.
    pub client_key_file: Option<PathBuf>,
}

impl fmt::Debug for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            server,
            public_api_key,
            private_api_key,
            project_id,
            output,
            ca_file,
            server_name,
            client_cert_file,
            client_key_file,
        } = self;
        f.debug_struct("Profile")
            .field("server", server)
            .field("public_api_key", public_api_key)
            .field("private_api_key", &private_api_key.as_ref().map(|_| "***"))
            .field("project_id", project_id)
            .field("output", output)
            .field("ca_file", ca_file)
            .field("server_name", server_name)
            .field("client_cert_file", client_cert_file)
            .field("client_key_file", client_key_file)
            .finish()
    }
}

/// An API key pair.
pub struct ApiKey {
    /// The public part (the key's name).
    pub public: String,
    /// The private part.
    pub private: Zeroizing<String>,
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { public, private: _ } = self;
        f.debug_struct("ApiKey")
            .field("public", public)
            .finish_non_exhaustive()
    }
}

/// The settings of one invocation: flags and environment over the profile.
#[derive(Debug)]
pub struct Settings {
    /// The server's URL.
    pub server: String,
    /// The API key, if any (mutual TLS may stand for it).
    pub api_key: Option<ApiKey>,
    /// The default project.
    pub project_id: Option<String>,
    /// The output format.
    pub output: OutputFormat,
    /// PEM CA certificates to verify the server against.
    pub ca_file: Option<PathBuf>,
    /// The name the server's certificate must hold.
    pub server_name: Option<String>,
    /// PEM client certificate and key for mutual TLS.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

impl Settings {
    /// Resolves the settings from the flags (clap has read their environment variables), the
    /// API key variables, and the profile.
    pub fn resolve(args: &ClientArgs) -> Result<Self, CliError> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let profile = load_profile(args)?;
        let server = args
            .server
            .clone()
            .or_else(|| profile.server.clone())
            .unwrap_or_else(|| DEFAULT_SERVER.to_owned());
        let api_key = match (
            env(PUBLIC_KEY_VAR),
            env(PRIVATE_KEY_VAR).map(Zeroizing::new),
        ) {
            // The environment's pair, whole: never completed from the profile.
            (Some(public), Some(private)) => Some(ApiKey { public, private }),
            (Some(_), None) => {
                return Err(CliError::usage(format!(
                    "{PUBLIC_KEY_VAR} is set but {PRIVATE_KEY_VAR} is not: set both (a key \
                     pair is never half from the environment, half from the profile)"
                )));
            }
            (None, Some(_)) => {
                return Err(CliError::usage(format!(
                    "{PRIVATE_KEY_VAR} is set but {PUBLIC_KEY_VAR} is not: set both (a key \
                     pair is never half from the environment, half from the profile)"
                )));
            }
            (None, None) => profile_key(&profile, &server)?,
        };
        let client_cert = match (
            args.client_cert_file.clone().or(profile.client_cert_file),
            args.client_key_file.clone().or(profile.client_key_file),
        ) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => {
                return Err(CliError::usage(
                    "--client-cert-file and --client-key-file go together",
                ));
            }
        };
        Ok(Self {
            server,
            api_key,
            project_id: profile.project_id,
            output: args.output.or(profile.output).unwrap_or_default(),
            ca_file: args.ca_file.clone().or(profile.ca_file),
            server_name: args.server_name.clone().or(profile.server_name),
            client_cert,
        })
    }

    /// The project id: the flag's (or `DBCERT_PROJECT_ID`), else the profile's.
    pub fn project_id(&self, flag: &Option<String>) -> Result<String, CliError> {
        flag.clone()
            .or_else(|| self.project_id.clone())
            .ok_or_else(|| {
                CliError::usage(
                    "no project: give --projectId (or DBCERT_PROJECT_ID, or project_id in the \
                     profile)",
                )
            })
    }
}

/// The profile's API key, whole, for `server`: a profile that names a server binds its key to
/// it, so a server from --server or `DBCERT_SERVER` never receives the profile's key.
fn profile_key(profile: &Profile, server: &str) -> Result<Option<ApiKey>, CliError> {
    let key = match (&profile.public_api_key, &profile.private_api_key) {
        (Some(public), Some(private)) => ApiKey {
            public: public.clone(),
            private: private.clone(),
        },
        (None, None) => return Ok(None),
        (Some(_), None) => {
            return Err(CliError::usage(
                "the profile has public_api_key but no private_api_key: set both",
            ));
        }
        (None, Some(_)) => {
            return Err(CliError::usage(
                "the profile has private_api_key but no public_api_key: set both",
            ));
        }
    };
    let same = |a: &str, b: &str| a.trim_end_matches('/') == b.trim_end_matches('/');
    match &profile.server {
        Some(own) if !same(own, server) => Err(CliError::usage(format!(
            "the profile's API key is for its server {own}, not {server} (from --server or \
             DBCERT_SERVER): for {server}, set {PUBLIC_KEY_VAR} and {PRIVATE_KEY_VAR}, or use \
             a profile naming it (-P)"
        ))),
        _ => Ok(Some(key)),
    }
}

/// The configuration file's path: the flag, else `$XDG_CONFIG_HOME/dbcert/config.toml`, else
/// `$HOME/.config/dbcert/config.toml`.
fn config_path(args: &ClientArgs) -> Option<PathBuf> {
    if let Some(path) = &args.config_file {
        return Some(path.clone());
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".config")))?;
    Some(base.join("dbcert").join("config.toml"))
}

/// The profile named by --profile (which must exist), or the `default` one if the file has
/// it, or an empty one.
fn load_profile(args: &ClientArgs) -> Result<Profile, CliError> {
    let named = args.profile.as_deref();
    let Some(path) = config_path(args) else {
        return match named {
            Some(name) => Err(CliError::usage(format!(
                "profile {name:?} asked for, but no configuration file (set HOME or \
                 --config-file)"
            ))),
            None => Ok(Profile::default()),
        };
    };
    let file = match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return match (named, &args.config_file) {
                (None, None) => Ok(Profile::default()),
                _ => Err(CliError::usage(format!(
                    "no configuration file {}",
                    path.display()
                ))),
            };
        }
        Err(error) => {
            return Err(CliError::usage(format!(
                "cannot read {}: {error}",
                path.display()
            )));
        }
    };
    let metadata = file
        .metadata()
        .map_err(|e| CliError::usage(format!("cannot read {}: {e}", path.display())))?;
    check_private(&path, &metadata)?;
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut std::io::Read::take(file, MAX_CONFIG_BYTES + 1),
        &mut text,
    )
    .map_err(|e| CliError::usage(format!("cannot read {}: {e}", path.display())))?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(CliError::usage(format!(
            "{} is larger than {MAX_CONFIG_BYTES} bytes",
            path.display()
        )));
    }
    let mut profiles =
        parse_profiles(&text).map_err(|e| CliError::usage(format!("{}: {e}", path.display())))?;
    let name = named.unwrap_or(DEFAULT_PROFILE);
    match profiles.remove(name) {
        Some(profile) => Ok(profile),
        None if named.is_none() => Ok(Profile::default()),
        None => Err(CliError::usage(format!(
            "no profile [{name}] in {}",
            path.display()
        ))),
    }
}

/// Reads a secret setting straight into zeroizing memory.
fn secret<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Zeroizing<String>>, D::Error> {
    <Option<String> as serde::Deserialize>::deserialize(deserializer).map(|v| v.map(Zeroizing::new))
}

/// Refuses a configuration file that group or others may read or write.
fn check_private(path: &Path, metadata: &std::fs::Metadata) -> Result<(), CliError> {
    let mode = metadata.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(CliError::usage(format!(
            "{} is open to group or others (mode {mode:o}) and may hold a private API key: \
             chmod 600 {}",
            path.display(),
            path.display()
        )));
    }
    Ok(())
}

/// The settings a profile may hold, as the file spells them.
const SETTINGS: [&str; 9] = [
    "server",
    "public_api_key",
    "private_api_key",
    "project_id",
    "output",
    "ca_file",
    "server_name",
    "client_cert_file",
    "client_key_file",
];

/// Parses the file's profiles. The error names the line and, when it is one of [`SETTINGS`],
/// the setting, with a fixed reason: never toml's or serde's message, which quote values
/// (`invalid type: integer `…``, `unknown variant `…``) and unknown keys (which may be a key
/// pasted on the wrong side of `=`).
fn parse_profiles(text: &str) -> Result<BTreeMap<String, Profile>, String> {
    toml::from_str(text).map_err(|error| {
        let line = error.span().map(|span| {
            let start = span.start.min(text.len());
            let number = text[..start].matches('\n').count() + 1;
            let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
            let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
            (number, &text[line_start..line_end])
        });
        let setting = line.and_then(|(_, line)| {
            let (key, _) = line.split_once('=')?;
            SETTINGS.iter().copied().find(|name| *name == key.trim())
        });
        let message = error.message();
        let reason = if message.starts_with("unknown field") {
            format!("unknown setting (a profile holds {})", SETTINGS.join(", "))
        } else if [
            "invalid type",
            "invalid value",
            "invalid length",
            "unknown variant",
        ]
        .iter()
        .any(|prefix| message.starts_with(prefix))
        {
            match setting {
                Some("output") => "invalid value for output: expected \"human\" or \"json\"".into(),
                Some(setting) => format!("invalid value for {setting}: expected a quoted string"),
                None => "invalid value: each profile is a [table] of settings".into(),
            }
        } else if message.starts_with("duplicate") {
            match setting {
                Some(setting) => format!("{setting} is set twice"),
                None => "a key or table is defined twice".into(),
            }
        } else {
            "not valid TOML (see https://toml.io)".into()
        };
        match line {
            Some((number, _)) => format!("line {number}: {reason}"),
            None => reason,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_parse_and_unknown_settings_are_refused() {
        let profiles = parse_profiles(
            "[default]\nserver = \"http://a:1\"\n[prod]\npublic_api_key = \"p\"\n\
             private_api_key = \"s\"\noutput = \"json\"\n",
        )
        .unwrap();
        assert_eq!(profiles["default"].server.as_deref(), Some("http://a:1"));
        assert_eq!(profiles["prod"].output, Some(OutputFormat::Json));
        let error = parse_profiles("[default]\nprivate_key = \"hunter2\"\n").unwrap_err();
        assert!(error.starts_with("line 2: "), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[test]
    fn parse_errors_name_the_setting_and_line_but_never_a_value() {
        // Serde's messages quote the value (`invalid type: integer `…``, `unknown variant
        // `…``), and an unknown key may be a key pasted on the wrong side of `=`.
        let cases = [
            (
                "[default]\nserver = \"http://a:1\"\nprivate_api_key = 73196284\n",
                "73196284",
                "line 3: invalid value for private_api_key",
            ),
            (
                "[default]\noutput = \"s3cr3t-pasted\"\n",
                "s3cr3t-pasted",
                "line 2: invalid value for output",
            ),
            (
                "[default]\ns3cr3t-as-a-key = \"x\"\n",
                "s3cr3t",
                "line 2: unknown setting",
            ),
            (
                "[default]\npublic_api_key = [\"s3cr3t\"]\n",
                "s3cr3t",
                "line 2: invalid value for public_api_key",
            ),
            ("[default]\nserver = \"s3cr3t\n", "s3cr3t", "line 2: "),
        ];
        for (text, secret, expected) in cases {
            let error = parse_profiles(text).unwrap_err();
            assert!(!error.contains(secret), "{error}");
            assert!(
                error.starts_with(expected),
                "{error:?} should start with {expected:?}"
            );
        }
    }

    #[test]
    fn debug_hides_the_private_key() {
        let profile = Profile {
            private_api_key: Some(Zeroizing::new("hunter2".to_owned())),
            ..Profile::default()
        };
        assert!(!format!("{profile:?}").contains("hunter2"));
        let key = ApiKey {
            public: "p".into(),
            private: Zeroizing::new("hunter2".to_owned()),
        };
        assert!(!format!("{key:?}").contains("hunter2"));
    }
}
