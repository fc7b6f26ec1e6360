//! The two text formats `GET /metrics` speaks, chosen by the scraper's `Accept` header as the
//! official client libraries choose: OpenMetrics 1.0.0 when the header asks for
//! `application/openmetrics-text` (Prometheus does, and so does the OpenMetrics reference
//! parser), otherwise the Prometheus text format 0.0.4 (curl, `promtool check metrics`, older
//! scrapers). client_golang `expfmt.Negotiate` (`prometheus/common/expfmt/encode.go`) and
//! client_python `choose_encoder` (`prometheus_client/exposition.py`) do the same; neither
//! serves OpenMetrics unless asked.
//!
//! [`crate::report::metrics`] renders OpenMetrics (with `prometheus-client`, which has no
//! 0.0.4 encoder); [`to_prometheus_text`] rewrites that output, whose shapes regprobe controls
//! (gauges and counters, no units, exemplars or `_created`), into 0.0.4.

/// `Content-Type` of the Prometheus text format 0.0.4.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A `/metrics` response format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0.0 text (`# EOF`-terminated).
    OpenMetrics,
    /// Prometheus text exposition format 0.0.4.
    PrometheusText,
}

impl Format {
    /// The format for an `Accept` header value (`None`: header absent): OpenMetrics when a
    /// media range `application/openmetrics-text` with a non-zero `q` is listed, else the
    /// Prometheus text format. Ranges that do not parse are ignored.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let wants_openmetrics = accept.unwrap_or("").split(',').any(|range| {
            let Ok(m) = range.trim().parse::<mime::Mime>() else {
                return false;
            };
            let q_zero = m
                .get_param("q")
                .and_then(|q| q.as_str().parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0);
            m.type_() == mime::APPLICATION && m.subtype() == "openmetrics-text" && !q_zero
        });
        if wants_openmetrics {
            Format::OpenMetrics
        } else {
            Format::PrometheusText
        }
    }

    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => super::metrics::CONTENT_TYPE,
            Format::PrometheusText => PROMETHEUS_TEXT,
        }
    }
}

/// Rewrites an OpenMetrics exposition of gauges and counters into the Prometheus text format
/// 0.0.4: a counter family `x` (samples `x_total`) is named `x_total` in its `# HELP` and
/// `# TYPE` lines, and `# EOF` is dropped. Label escaping (`\\`, `\"`, `\n`) is the same in
/// both formats; sample lines are kept as they are.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    // Families whose TYPE is counter: their HELP line comes first, so collect them up front.
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 16 * counters.len());
    for line in openmetrics.lines() {
        if line == "# EOF" {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find(|p| line.starts_with(p));
        match meta {
            Some(prefix) => {
                let rest = &line[prefix.len()..];
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                out.push_str(prefix);
                out.push_str(name);
                if counters.contains(name) {
                    out.push_str("_total");
                }
                out.push(' ');
                out.push_str(tail);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_as_the_client_libraries_do() {
        // What Prometheus 2.x sends by default.
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(None), Format::PrometheusText);
        assert_eq!(Format::negotiate(Some("*/*")), Format::PrometheusText);
        assert_eq!(
            Format::negotiate(Some("text/plain;version=0.0.4")),
            Format::PrometheusText
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;q=0")),
            Format::PrometheusText
        );
        assert_eq!(
            Format::negotiate(Some("garbage;;,")),
            Format::PrometheusText
        );
    }

    #[test]
    fn counters_are_named_with_total_and_eof_dropped() {
        let om = "# HELP regprobe_probes Probes run.\n# TYPE regprobe_probes counter\nregprobe_probes_total{secret=\"a\"} 3\n# HELP regprobe_success Whether.\n# TYPE regprobe_success gauge\nregprobe_success{secret=\"a\\\"b\"} 1\n# EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP regprobe_probes_total Probes run.\n# TYPE regprobe_probes_total counter\nregprobe_probes_total{secret=\"a\"} 3\n# HELP regprobe_success Whether.\n# TYPE regprobe_success gauge\nregprobe_success{secret=\"a\\\"b\"} 1\n"
        );
    }
}
