//! How a setting's raw value becomes a checked one, or the one line that says why not:
//! decoded as UTF-8, checked by its rule, named the way the user gave it (`--interval` or
//! `INTERVAL`), and shown through a mask where it may hold a password.

use std::ffi::{OsStr, OsString};
use std::fmt;

use clap::builder::TypedValueParser;
use clap::parser::ValueSource;
use clap::{Arg, Command, Error};

use super::value::ValueError;

/// Why the configuration was refused; its `Display` is the single line the user sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The command line is malformed (unknown flag, missing value); clap's own words.
    #[error("{0}")]
    Usage(String),
    /// A setting holds a value the worker cannot use.
    #[error("invalid {setting} {value:?}: {reason}")]
    Invalid {
        /// The flag or environment variable, as the user gave it.
        setting: String,
        /// The value, with credentials masked.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl ConfigError {
    /// The first line of clap's message ("unexpected argument '--x' found"), without its
    /// "error: " prefix and usage block, so every configuration error is one line. `--help`
    /// and `--version` are no errors: they print and exit here, as every CLI does.
    pub(super) fn usage(err: Error) -> Self {
        if !err.use_stderr() {
            err.exit();
        }
        let rendered = err.render().to_string();
        let line = rendered.lines().next().unwrap_or_default();
        Self::Usage(line.strip_prefix("error: ").unwrap_or(line).to_owned())
    }
}

/// A flag's value as its rule left it, with the setting's name as the user gave it.
#[derive(Debug, Clone)]
pub struct Checked<T> {
    /// The flag if the value came from the command line, else its environment variable.
    pub setting: String,
    /// The value, or why it is refused; kept rather than handed to clap, so that the
    /// settings are reported in one order once clap is done, never echoing a password.
    pub value: Result<T, ConfigError>,
}

/// A flag's rule, as the `value_parser` clap runs on its raw value: the check, and how a
/// refused value is shown (`str::to_owned`: as given; or a password mask).
#[derive(Clone, Copy)]
pub struct Rule<T>(
    pub fn(&str) -> Result<T, ValueError>,
    pub fn(&str) -> String,
);

impl<T: Clone + Send + Sync + 'static> TypedValueParser for Rule<T> {
    type Value = Checked<T>;

    fn parse_ref(
        &self,
        cmd: &Command,
        arg: Option<&Arg>,
        raw: &OsStr,
    ) -> Result<Checked<T>, Error> {
        self.parse_ref_(cmd, arg, raw, ValueSource::CommandLine)
    }

    // The entry that knows where the value came from, and so the setting's name.
    fn parse_ref_(
        &self,
        _: &Command,
        arg: Option<&Arg>,
        raw: &OsStr,
        source: ValueSource,
    ) -> Result<Checked<T>, Error> {
        let setting = arg.and_then(|arg| match source {
            ValueSource::CommandLine => arg.get_long().map(|long| format!("--{long}")),
            _ => arg.get_env().map(|env| env.to_string_lossy().into_owned()),
        });
        let setting = setting.unwrap_or_default();
        let value = parse(setting.clone(), raw, self.1, self.0);
        Ok(Checked { setting, value })
    }
}

/// The setting `name` that only the environment holds, parsed; unset is empty.
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
fn parse<T, E: fmt::Display>(
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
