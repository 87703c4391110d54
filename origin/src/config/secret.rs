//! Credentials as configuration values: they can be read from the file, a
//! separate file or an environment variable, and no `Debug` or `Display`
//! of any configuration type ever prints them.

use std::fmt;

use serde::Deserialize;

/// A password or token. Its `Debug` prints `<redacted>`, so configuration
/// structs can derive `Debug` and be logged safely; only [`Secret::expose`]
/// gives the text, at the one place that sends it upstream.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret read from somewhere other than the TOML file.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret's text, for the upstream client only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "<redacted>");
        assert_eq!(format!("{:?}", Some(&secret)), "Some(<redacted>)");
        assert_eq!(secret.expose(), "hunter2");
    }
}
