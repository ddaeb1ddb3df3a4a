//! The secrets `dbcert serve` takes from the environment only, and the refusal of their flags.

use clap::Args;

/// The secrets `dbcert serve` reads from the environment only: a value on the command line is
/// visible to every local user in `ps` and `/proc/PID/cmdline`, so the flags are refused with
/// an error naming the variable.
#[derive(Clone, Default)]
pub struct EnvSecrets {
    /// `DBCERT_MASTER_KEY`: the master key itself (base64 of 32 bytes); prefer the file.
    pub master_key: Option<String>,
    /// `DBCERT_BOOTSTRAP_API_KEY`: `publicKey:privateKey` of an ORG_OWNER key to ensure in the
    /// default organization.
    pub bootstrap_api_key: Option<String>,
}

/// The environment-only secrets: (argument id, refused flag, variable, help).
const ENV_SECRETS: [(&str, &str, &str, &str); 2] = [
    (
        "master_key",
        "master-key",
        "DBCERT_MASTER_KEY",
        "The master key itself (base64 of 32 bytes); prefer --master-key-file. Environment only",
    ),
    (
        "bootstrap_api_key",
        "bootstrap-api-key",
        "DBCERT_BOOTSTRAP_API_KEY",
        "`publicKey:privateKey` of an ORG_OWNER key to ensure in the default organization. \
         Environment only",
    ),
];

impl clap::FromArgMatches for EnvSecrets {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut secrets = Self::default();
        secrets.update_from_arg_matches(matches)?;
        Ok(secrets)
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        for (id, flag, variable, _) in ENV_SECRETS {
            if matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine) {
                return Err(clap::Error::raw(
                    clap::error::ErrorKind::ArgumentConflict,
                    format!(
                        "--{flag} is not accepted on the command line, where `ps` shows it to \
                         every local user: set the environment variable {variable} instead"
                    ),
                ));
            }
        }
        self.master_key = matches.get_one::<String>("master_key").cloned();
        self.bootstrap_api_key = matches.get_one::<String>("bootstrap_api_key").cloned();
        Ok(())
    }
}

impl Args for EnvSecrets {
    fn augment_args(command: clap::Command) -> clap::Command {
        ENV_SECRETS
            .into_iter()
            .fold(command, |command, (id, flag, variable, help)| {
                command.arg(
                    // The flag exists only to be refused with a clear error; it is hidden, and
                    // the variable is documented in the help of `serve` (`after_help`).
                    clap::Arg::new(id)
                        .long(flag)
                        .env(variable)
                        .hide(true)
                        .hide_env_values(true)
                        .help(help),
                )
            })
    }

    fn augment_args_for_update(command: clap::Command) -> clap::Command {
        Self::augment_args(command)
    }
}
