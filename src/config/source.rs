//! How a setting's raw value becomes a checked one, or the one line that says why not:
//! decoded as UTF-8, parsed, and named the way the user gave it (`--interval` or
//! `INTERVAL`), with the value shown through a mask where it may hold a password.

use std::ffi::{OsStr, OsString};
use std::fmt;

use clap::ArgMatches;
use clap::parser::ValueSource;

/// Why the configuration was refused; its `Display` is the single line the user sees.
#[derive(Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// The command line is malformed (unknown flag, missing value); clap's own words.
    Usage(String),
    /// A setting holds a value the worker cannot use.
    Invalid {
        /// The flag or environment variable, as the user gave it.
        setting: String,
        /// The value, with credentials masked.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage(message) => f.write_str(message),
            Self::Invalid {
                setting,
                value,
                reason,
            } => write!(f, "invalid {setting} {value:?}: {reason}"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// The settings clap read, to name each one the way the user gave it.
pub struct Flags<'a> {
    /// The command line's definition, with each argument's flag and variable.
    pub command: &'a clap::Command,
    /// What clap parsed from the command line and the environment.
    pub matches: &'a ArgMatches,
}

impl Flags<'_> {
    /// The flag if the value of the argument `id` came from the command line, else its
    /// environment variable.
    pub fn name(&self, id: &str) -> String {
        let arg = self.command.get_arguments().find(|arg| arg.get_id() == id);
        let on_command_line = self.matches.value_source(id) == Some(ValueSource::CommandLine);
        let name = match arg {
            Some(arg) if on_command_line => arg.get_long().map(|long| format!("--{long}")),
            Some(arg) => arg.get_env().map(|env| env.to_string_lossy().into_owned()),
            None => None,
        };
        name.unwrap_or_else(|| id.to_owned())
    }

    /// `raw`, the value of the argument `id`, parsed as [`parse`] does.
    pub fn parse<T, E: fmt::Display>(
        &self,
        id: &str,
        raw: &OsStr,
        parse_text: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<T, ConfigError> {
        parse(self.name(id), raw, str::to_owned, parse_text)
    }
}

/// The setting `name` that only the environment holds, parsed; unset is the same as
/// empty.
pub fn from_env<T, E: fmt::Display>(
    env: &impl Fn(&str) -> Option<OsString>,
    name: &str,
    parse_text: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, ConfigError> {
    let raw = env(name).unwrap_or_default();
    parse(name.to_owned(), &raw, str::to_owned, parse_text)
}

/// `raw`, the value of `setting`, decoded as UTF-8 and parsed; a failure names the setting
/// and shows the value through `shown`, which masks any password.
pub fn parse<T, E: fmt::Display>(
    setting: String,
    raw: &OsStr,
    shown: fn(&str) -> String,
    parse_text: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, ConfigError> {
    let parsed = match raw.to_str() {
        Some(text) => parse_text(text).map_err(|err| err.to_string()),
        None => Err("not valid UTF-8".to_owned()),
    };
    // Shown only when refused: a value that passes is shown by what it became.
    parsed.map_err(|reason| ConfigError::Invalid {
        setting,
        value: shown(&raw.to_string_lossy()),
        reason,
    })
}

/// Keeps the first line of clap's message ("unexpected argument '--x' found"), without
/// its "error: " prefix and usage block, so every configuration error is one line.
pub fn usage_error(err: &clap::Error) -> ConfigError {
    let rendered = err.render().to_string();
    let first_line = rendered.lines().next().unwrap_or_default();
    ConfigError::Usage(
        first_line
            .strip_prefix("error: ")
            .unwrap_or(first_line)
            .to_owned(),
    )
}
