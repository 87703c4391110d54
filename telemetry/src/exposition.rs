//! Rendering a registry for a scrape.
//!
//! prometheus-client writes OpenMetrics text, where a counter's family is
//! named without `_total`, units get a `# UNIT` line and the body ends
//! with `# EOF`. Prometheus asks for that format and gets it as is. Other
//! clients (curl, `promtool check metrics`, older scrapers) read the
//! classic text format 0.0.4, where the family name must be the sample
//! name: for them counter families are renamed to their `_total` samples
//! and the OpenMetrics-only lines dropped.

use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;

/// Content type of OpenMetrics text.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of the classic Prometheus text format.
pub const CLASSIC: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Which text format a scrape gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text.
    OpenMetrics,
    /// Prometheus text format 0.0.4.
    Classic,
}

impl Format {
    /// The format an `Accept` header asks for: OpenMetrics only when named.
    pub fn negotiate(accept: Option<&str>) -> Format {
        match accept {
            Some(accept) if accept.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Classic,
        }
    }

    /// The response's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS,
            Format::Classic => CLASSIC,
        }
    }
}

/// The registry's metrics in `format`.
pub fn render(registry: &Registry, format: Format) -> Result<String, std::fmt::Error> {
    let mut text = String::new();
    encode(&mut text, registry)?;
    Ok(match format {
        Format::OpenMetrics => text,
        Format::Classic => classic(&text),
    })
}

/// OpenMetrics text as the classic format (see the module doc).
fn classic(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut help: Option<&str> = None;
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = Some(rest);
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (name, kind) = match kind {
                "counter" if !name.ends_with("_total") => (format!("{name}_total"), kind),
                "unknown" => (name.to_string(), "untyped"),
                _ => (name.to_string(), kind),
            };
            if let Some(help) = help.take() {
                let text = help.split_once(' ').map_or("", |(_, text)| text);
                out.push_str(&format!("# HELP {name} {text}\n"));
            }
            out.push_str(&format!("# TYPE {name} {kind}\n"));
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::metrics::histogram::Histogram;
    use prometheus_client::registry::Unit;

    use super::*;

    fn registry() -> Registry {
        let mut registry = Registry::default();
        let bytes: Counter = Counter::default();
        bytes.inc_by(7);
        registry.register_with_unit("x_moved", "Bytes moved", Unit::Bytes, bytes);
        let gauge: Gauge = Gauge::default();
        gauge.set(3);
        registry.register("x_open", "Open things", gauge);
        let histogram = Histogram::new([0.5, 1.0]);
        histogram.observe(0.7);
        registry.register_with_unit("x_wait", "Waits", Unit::Seconds, histogram);
        registry
    }

    #[test]
    fn classic_names_counter_families_by_their_samples() {
        let text = render(&registry(), Format::Classic).unwrap_or_default();
        assert!(
            text.contains("# HELP x_moved_bytes_total Bytes moved.\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE x_moved_bytes_total counter\n"),
            "{text}"
        );
        assert!(text.contains("x_moved_bytes_total 7\n"), "{text}");
        assert!(text.contains("# TYPE x_open gauge\nx_open 3\n"), "{text}");
        assert!(text.contains("# TYPE x_wait_seconds histogram\n"), "{text}");
        assert!(
            !text.contains("# UNIT") && !text.contains("# EOF"),
            "{text}"
        );
    }

    #[test]
    fn openmetrics_is_left_as_encoded() {
        let text = render(&registry(), Format::OpenMetrics).unwrap_or_default();
        assert!(text.contains("# TYPE x_moved_bytes counter\n"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn only_an_explicit_accept_gets_openmetrics() {
        assert_eq!(Format::negotiate(None), Format::Classic);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Classic);
        assert_eq!(
            Format::negotiate(Some(
                "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
            )),
            Format::OpenMetrics
        );
    }
}
