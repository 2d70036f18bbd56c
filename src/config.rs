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
    /// Durable state: the changelog topic and commits.
    pub state: StateSection,
}

/// Durable state settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateSection {
    /// Compacted changelog topic holding each partition's state; default
    /// `<group>.state`. Created by `pulse run` when missing, with as many
    /// partitions as the input topic.
    pub topic: Option<String>,
    /// Replication factor of the changelog topic when pulse creates it.
    pub replication: i32,
    /// How often (wall clock) a checkpoint is committed with the outputs
    /// and offsets. Shorter: less to redo after a crash and fresher output
    /// for read_committed readers; longer: fewer transactions.
    pub commit_every: String,
    /// How long a Kafka transaction may stay open; the broker aborts one
    /// left open by a crashed instance after this long.
    pub transaction_timeout: String,
    /// Traders tracked per input partition (memory bound): an event of a
    /// new trader beyond it is dead-lettered with reason `state_full`.
    /// Unset: the id space, 16,777,216 per partition.
    pub max_traders_per_partition: Option<u32>,
    /// Local cache of the changelog: a restart on the same machine reads
    /// it, then the changelog only after it. Unset: no cache.
    pub dir: Option<PathBuf>,
}

impl Default for StateSection {
    fn default() -> Self {
        Self {
            topic: None,
            replication: 1,
            commit_every: "1s".into(),
            transaction_timeout: "30s".into(),
            max_traders_per_partition: None,
            dir: None,
        }
    }
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
#[derive(Clone, Deserialize)]
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
    /// Topic of LGPD erasure requests (`pulse forget` writes them; key =
    /// trader_id, one copy per partition). Created with the inputs'
    /// partition count when missing; empty: no erasures.
    pub erasure_topic: String,
    /// Topic of the audit records of applied erasures (key = request id).
    pub audit_topic: String,
    /// Scale-out: the group-internal topic through which every instance
    /// hands its partitions' closed rows to the instance exporting each
    /// pipeline (co-partitioned with the inputs). Default
    /// `<group>.partials`; "" turns the merge off: each instance then
    /// exports its own partitions' share (one instance only).
    pub partials_topic: Option<String>,
    /// Extra librdkafka settings for every client (security.protocol,
    /// sasl.mechanism, ...). PULSE_KAFKA_USERNAME / PULSE_KAFKA_PASSWORD fill
    /// sasl.username / sasl.password.
    pub properties: BTreeMap<String, String>,
    /// `exactly_once` (one transaction per commit holds outputs, changelog
    /// and offsets; readers use read_committed) or `at_least_once`.
    pub guarantee: String,
    /// This instance's name within the group: its transactional id is
    /// `pulse.<group>.<instance_id>`. A restarted instance with the same
    /// name fences its crashed predecessor at once; two instances running
    /// at the same time need different names. Default: the host name.
    pub instance_id: Option<String>,
}

/// Shown with the values of secret properties (passwords, keys) masked.
impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let properties: BTreeMap<&str, &str> = self
            .properties
            .iter()
            .map(|(k, v)| {
                let shown = if crate::sink::is_secret_setting(k) {
                    "***"
                } else {
                    v.as_str()
                };
                (k.as_str(), shown)
            })
            .collect();
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("topics", &self.topics)
            .field("group", &self.group)
            .field("type_from_topic", &self.type_from_topic)
            .field("dead_letter_topic", &self.dead_letter_topic)
            .field("late_topic", &self.late_topic)
            .field("kpi_topic", &self.kpi_topic)
            .field("alert_topic", &self.alert_topic)
            .field("erasure_topic", &self.erasure_topic)
            .field("audit_topic", &self.audit_topic)
            .field("partials_topic", &self.partials_topic)
            .field("properties", &properties)
            .field("guarantee", &self.guarantee)
            .field("instance_id", &self.instance_id)
            .finish()
    }
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
            erasure_topic: "pulse.erasure".into(),
            audit_topic: "pulse.audit".into(),
            partials_topic: None,
            properties: BTreeMap::new(),
            guarantee: "exactly_once".into(),
            instance_id: None,
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
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    /// Address of /metrics, /api/*, the live page.
    pub listen: String,
    /// Bearer token for `/api/*` (else `PULSE_HTTP_TOKEN`; neither: open).
    pub token: Option<String>,
    /// `/metrics` needs the token too.
    pub protect_metrics: bool,
}

impl std::fmt::Debug for HttpSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token itself.
        f.debug_struct("HttpSection")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("protect_metrics", &self.protect_metrics)
            .finish()
    }
}

impl HttpSection {
    /// The access rules these settings (and the environment) give.
    pub fn access(&self) -> Result<crate::http::Access, String> {
        crate::http::Access::resolve(self.token.as_deref(), self.protect_metrics)
    }
}

impl Default for HttpSection {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9464".into(),
            token: None,
            protect_metrics: false,
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
        if let Some(dir) = &c.state.dir
            && dir.is_relative()
        {
            c.state.dir = Some(base.join(dir));
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
            ("state.commit_every", &self.state.commit_every),
            ("state.transaction_timeout", &self.state.transaction_timeout),
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
        if let Some(cap) = self.state.max_traders_per_partition
            && !(1..=crate::event::MAX_TRADERS_PER_SHARD).contains(&cap)
        {
            problems.push(format!(
                "state.max_traders_per_partition: {cap}; expected 1 to {}",
                crate::event::MAX_TRADERS_PER_SHARD
            ));
        }
        if let Err(e) = self.http.access() {
            problems.push(e);
        }
        if self.kafka.brokers.trim().is_empty() {
            problems.push("kafka.brokers: empty; expected host:port[,host:port]".into());
        }
        if self.kafka.topics.is_empty() || self.kafka.topics.iter().any(|t| t.trim().is_empty()) {
            problems.push("kafka.topics: expected at least one non-empty topic name".into());
        }
        if self.kafka.topics.contains(&self.kafka.erasure_topic) {
            problems.push(format!(
                "kafka.erasure_topic: {:?} is also an input topic; erasure requests need a topic of their own (or \"\" for none)",
                self.kafka.erasure_topic
            ));
        }
        if let Some(p) = self.partials_topic()
            && (self.kafka.topics.contains(&p) || p == self.kafka.erasure_topic)
        {
            problems.push(format!(
                "kafka.partials_topic: {p:?} is also an input or erasure topic; the partials need a topic of their own (or \"\" for none)"
            ));
        }
        if self.kafka.group.trim().is_empty() {
            problems.push("kafka.group: empty; expected a consumer group name".into());
        }
        if !["exactly_once", "at_least_once"].contains(&self.kafka.guarantee.as_str()) {
            problems.push(format!(
                "kafka.guarantee: {:?}; expected \"exactly_once\" or \"at_least_once\"",
                self.kafka.guarantee
            ));
        }
        if self
            .kafka
            .instance_id
            .as_ref()
            .is_some_and(|i| i.trim().is_empty() || i.contains(char::is_whitespace))
        {
            problems.push("kafka.instance_id: expected a name without spaces".into());
        }
        if self.state.replication < 1 {
            problems.push(format!(
                "state.replication: {}; expected 1 or more",
                self.state.replication
            ));
        }
        if let Some(t) = &self.state.topic
            && (t.trim().is_empty() || self.kafka.topics.contains(t))
        {
            problems.push(format!(
                "state.topic: {t:?}; expected a topic name that is not a source topic"
            ));
        }
        if let (Ok(every), Ok(timeout)) = (
            parse_duration_ms(&self.state.commit_every),
            parse_duration_ms(&self.state.transaction_timeout),
        ) && (every <= 0 || timeout <= every)
        {
            problems.push(format!(
                "state.commit_every ({}) must be positive and shorter than state.transaction_timeout ({})",
                self.state.commit_every, self.state.transaction_timeout
            ));
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

    /// The partials topic of scale-out; `None` when turned off.
    pub fn partials_topic(&self) -> Option<String> {
        match &self.kafka.partials_topic {
            Some(t) if t.trim().is_empty() => None,
            Some(t) => Some(t.clone()),
            None => Some(format!("{}.partials", self.kafka.group)),
        }
    }

    /// The changelog topic.
    pub fn state_topic(&self) -> String {
        self.state
            .topic
            .clone()
            .unwrap_or_else(|| format!("{}.state", self.kafka.group))
    }

    /// The transactional id of this instance.
    pub fn transactional_id(&self) -> String {
        format!("pulse.{}.{}", self.kafka.group, self.instance_name())
    }

    /// This instance's name in the group (`kafka.instance_id`, else the
    /// host name).
    pub fn instance_name(&self) -> String {
        self.kafka.instance_id.clone().unwrap_or_else(host_name)
    }

    /// The window settings (validated).
    /// Decoding and de-duplication settings (the trader cap).
    pub fn ingest_config(&self) -> crate::pipeline::IngestConfig {
        let mut c = crate::pipeline::IngestConfig::default();
        if let Some(cap) = self.state.max_traders_per_partition {
            c.decode.max_traders_per_partition = cap;
        }
        c
    }

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

/// This machine's name (for the default instance id).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "pulse".into())
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
        let c: Config = toml::from_str(
            "[kafka]\nguarantee = \"maybe\"\n[state]\ncommit_every = \"1m\"\ntransaction_timeout = \"30s\"\nreplication = 0\n",
        )
        .unwrap();
        let problems = c.validate().unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert!(problems.iter().any(|p| p.starts_with("kafka.guarantee")));
        assert!(problems.iter().any(|p| p.starts_with("state.replication")));
        assert!(problems.iter().any(|p| p.starts_with("state.commit_every")));
    }

    #[test]
    fn unknown_settings_are_refused_by_name() {
        let e = toml::from_str::<Config>("[kafka]\nbrokerz = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("brokerz"), "{e}");
    }

    #[test]
    fn debug_output_masks_secret_properties() {
        let c: Config = toml::from_str(
            "[kafka.properties]\n\"sasl.username\" = \"pulse\"\n\"sasl.password\" = \"s3cr3t-pw\"\n",
        )
        .unwrap();
        let shown = format!("{c:?}");
        assert!(shown.contains("pulse"), "{shown}");
        assert!(!shown.contains("s3cr3t-pw"), "{shown}");
    }
}
