//! The `pulse.toml` configuration of `pulse run` and `pulse check`: typed,
//! every field defaulted and documented, validated before anything starts
//! with every problem reported at once. Broker addresses and credentials may
//! come from the environment.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::event::time::parse_duration_ms;
use crate::window::WindowConfig;

/// Environment variable overriding `kafka.brokers`.
pub const ENV_BROKERS: &str = "PULSE_KAFKA_BROKERS";
/// Environment variables filling `sasl.username` / `sasl.password`.
pub const ENV_USERNAME: &str = "PULSE_KAFKA_USERNAME";
pub const ENV_PASSWORD: &str = "PULSE_KAFKA_PASSWORD";

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Kafka source and sinks.
    pub kafka: KafkaConfig,
    /// Event-time windows.
    pub windows: WindowsSection,
    /// HTTP endpoints.
    pub http: HttpSection,
    /// SQL pipelines.
    pub pipelines: PipelinesSection,
    /// File outputs.
    pub outputs: OutputsSection,
    /// The churn model.
    pub model: ModelSection,
    /// Alert rules.
    pub alerts: crate::alert::AlertsSection,
}

/// Churn model settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSection {
    /// Model artifact (relative to this file); no churn scoring when absent.
    pub path: Option<PathBuf>,
    /// How often the file is checked for a new version (wall clock).
    pub reload_every: String,
}

impl Default for ModelSection {
    fn default() -> Self {
        Self {
            path: None,
            reload_every: "5s".into(),
        }
    }
}

/// Kafka settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap servers, `host:port[,host:port]` (env PULSE_KAFKA_BROKERS wins).
    pub brokers: String,
    /// Topics to consume: one combined topic, or one per event type.
    pub topics: Vec<String>,
    /// Consumer group; instances of one group split the partitions.
    pub group: String,
    /// A message without `type` takes the type its topic is named after
    /// (a topic ending in `signups`, `logins`, `deposits`, `withdrawals`,
    /// `trades` or `campaigns`).
    pub type_from_topic: bool,
    /// Dead-letter topic: invalid messages with their original bytes.
    pub dead_letter_topic: String,
    /// Topic for late events (behind the window frontier).
    pub late_topic: String,
    /// Optional topic for KPI rows (key = pipeline).
    pub kpi_topic: Option<String>,
    /// Topic for risk alerts (key = trader_id).
    pub alert_topic: String,
    /// Extra librdkafka settings for every client (security.protocol,
    /// sasl.mechanism, ...). PULSE_KAFKA_USERNAME / PULSE_KAFKA_PASSWORD fill
    /// sasl.username / sasl.password.
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".into(),
            topics: vec!["pulse.events".into()],
            group: "veloc-pulse".into(),
            type_from_topic: true,
            dead_letter_topic: "pulse.dead-letters".into(),
            late_topic: "pulse.late".into(),
            kpi_topic: None,
            alert_topic: "pulse.alerts".into(),
            properties: BTreeMap::new(),
        }
    }
}

/// Event-time window settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowsSection {
    /// Allowed disorder (watermark = latest event time − disorder).
    pub disorder: String,
    /// Grace after the watermark before windows close.
    pub grace: String,
    /// A partition silent this long stops holding the watermark back.
    pub idle_timeout: String,
}

impl Default for WindowsSection {
    fn default() -> Self {
        Self {
            disorder: "10s".into(),
            grace: "50s".into(),
            idle_timeout: "30s".into(),
        }
    }
}

/// HTTP settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    /// Address of /metrics, /api/*, the live page.
    pub listen: String,
}

impl Default for HttpSection {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9464".into(),
        }
    }
}

/// Pipeline settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelinesSection {
    /// Folder of `*.sql` pipelines (relative to the config file); the
    /// built-in catalogue when absent.
    pub dir: Option<PathBuf>,
}

/// File outputs.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputsSection {
    /// KPI rows as NDJSON.
    pub kpi_out: Option<PathBuf>,
    /// Alerts as JSONL.
    pub alerts_out: Option<PathBuf>,
}

/// A configuration that cannot be used, with every problem.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {} problem(s):\n{}", .problems.len(), .problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        path: PathBuf,
        problems: Vec<String>,
    },
}

impl Config {
    /// Reads, parses and validates a file; relative paths in it are made
    /// relative to the file's folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut c: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        if let Some(dir) = &c.pipelines.dir
            && dir.is_relative()
        {
            c.pipelines.dir = Some(base.join(dir));
        }
        if let Some(model) = &c.model.path
            && model.is_relative()
        {
            c.model.path = Some(base.join(model));
        }
        c.validate().map_err(|problems| ConfigError::Invalid {
            path: path.to_owned(),
            problems,
        })?;
        Ok(c)
    }

    /// Applies environment overrides (brokers, credentials).
    pub fn apply_env(&mut self) {
        if let Ok(b) = std::env::var(ENV_BROKERS)
            && !b.is_empty()
        {
            self.kafka.brokers = b;
        }
        if let Ok(u) = std::env::var(ENV_USERNAME) {
            self.kafka.properties.insert("sasl.username".into(), u);
        }
        if let Ok(p) = std::env::var(ENV_PASSWORD) {
            self.kafka.properties.insert("sasl.password".into(), p);
        }
    }

    /// Every problem, each naming its setting and what would be accepted.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        for (name, value) in [
            ("windows.disorder", &self.windows.disorder),
            ("windows.grace", &self.windows.grace),
            ("windows.idle_timeout", &self.windows.idle_timeout),
            ("model.reload_every", &self.model.reload_every),
        ] {
            if let Err(e) = parse_duration_ms(value) {
                problems.push(format!("{name}: {e}"));
            }
        }
        if self.http.listen.parse::<SocketAddr>().is_err() {
            problems.push(format!(
                "http.listen: {:?} is not an address like 127.0.0.1:9464",
                self.http.listen
            ));
        }
        if self.kafka.brokers.trim().is_empty() {
            problems.push("kafka.brokers: empty; expected host:port[,host:port]".into());
        }
        if self.kafka.topics.is_empty() || self.kafka.topics.iter().any(|t| t.trim().is_empty()) {
            problems.push("kafka.topics: expected at least one non-empty topic name".into());
        }
        if self.kafka.group.trim().is_empty() {
            problems.push("kafka.group: empty; expected a consumer group name".into());
        }
        for (name, t) in [
            ("kafka.dead_letter_topic", &self.kafka.dead_letter_topic),
            ("kafka.late_topic", &self.kafka.late_topic),
            ("kafka.alert_topic", &self.kafka.alert_topic),
        ] {
            if t.trim().is_empty() {
                problems.push(format!("{name}: empty; expected a topic name"));
            } else if self.kafka.topics.contains(t) {
                problems.push(format!(
                    "{name}: {t:?} is also a source topic; pulse would read its own output"
                ));
            }
        }
        if let Some(dir) = &self.pipelines.dir
            && !dir.is_dir()
        {
            problems.push(format!("pipelines.dir: {} is not a folder", dir.display()));
        }
        if let Err(p) = self.alerts.resolve() {
            problems.extend(p);
        }
        if let Some(path) = &self.model.path
            && let Err(e) = crate::model::Model::load(path)
        {
            problems.push(format!("model.path: {e}"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// The window settings (validated).
    pub fn window_config(&self) -> WindowConfig {
        let d = |s: &str, fallback: i64| parse_duration_ms(s).unwrap_or(fallback);
        let defaults = WindowConfig::default();
        WindowConfig {
            disorder_ms: d(&self.windows.disorder, defaults.disorder_ms),
            grace_ms: d(&self.windows.grace, defaults.grace_ms),
            idle_timeout_ms: d(&self.windows.idle_timeout, defaults.idle_timeout_ms),
            ..defaults
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_every_problem_at_once() {
        let c: Config = toml::from_str(
            "[windows]\ndisorder = \"10x\"\ngrace = \"soon\"\n[http]\nlisten = \"nowhere\"\n[kafka]\ntopics = []\ngroup = \"\"\n",
        )
        .unwrap();
        let problems = c.validate().unwrap_err();
        assert_eq!(problems.len(), 5, "{problems:#?}");
    }

    #[test]
    fn unknown_settings_are_refused_by_name() {
        let e = toml::from_str::<Config>("[kafka]\nbrokerz = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("brokerz"), "{e}");
    }
}
