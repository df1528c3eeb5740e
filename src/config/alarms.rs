//! The alarm half of the configuration: contacts, notifiers, rules,
//! maintenance windows and time windows, decoded from the top-level keys
//! `alarms`, `windows`, `contacts`, `notifiers`, `rules` and `maintenance`.
//!
//! Decoding reports every problem with `FILE:LINE:COL`, naming the key and
//! the value, through the helpers of `decode.rs`; references between
//! entries (a rule naming a contact, a contact naming a notifier or a
//! window) are resolved here, references to checks and hosts in
//! `finish`. Plain data: nothing here sends, runs or reads a clock (the
//! only file access is checking that a named alarm script exists).

use super::read::{duration_in, integer, name, seq, string, string_list, Errors, MapView};
use super::yaml::{Node, Pos, Value};
use crate::alarm::facts::FACT_NAMES;
use crate::alarm::template::Template;
use crate::alarm::window::{parse_timezone, Window};
use crate::config::InitTarget;
use crate::plugin_output::State;
use crate::suggest::did_you_mean;
use chrono_tz::Tz;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Everything about alarms: who is told what, how, and which repairs run.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmConfig {
    /// Where `script:` actions named without a `/` are looked up.
    pub scripts_dir: PathBuf,
    /// Alert-storm grouping: notifications for one contact and channel that
    /// fall within this window go out as one message (0 = no grouping).
    pub group_window: Duration,
    /// Delivery retries of the outbox.
    pub delivery: DeliveryPolicy,
    /// Contacts, in file order.
    pub contacts: Vec<Contact>,
    /// Notification channels, in file order.
    pub notifiers: Vec<Notifier>,
    /// Rules, in file order; every matching rule applies.
    pub rules: Vec<Rule>,
    /// Maintenance windows: no actions, no notifications.
    pub maintenance: Vec<Maintenance>,
}

impl Default for AlarmConfig {
    fn default() -> Self {
        AlarmConfig {
            scripts_dir: PathBuf::from("alarm-scripts"),
            group_window: Duration::from_secs(30),
            delivery: DeliveryPolicy::default(),
            contacts: Vec::new(),
            notifiers: Vec::new(),
            rules: Vec::new(),
            maintenance: Vec::new(),
        }
    }
}

impl AlarmConfig {
    /// The contact of this name.
    pub fn contact(&self, name: &str) -> Option<&Contact> {
        self.contacts.iter().find(|c| c.name == name)
    }

    /// The notifier of this name.
    pub fn notifier(&self, name: &str) -> Option<&Notifier> {
        self.notifiers.iter().find(|n| n.name == name)
    }
}

/// How the outbox retries a failed delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryPolicy {
    /// Wait before the first retry; doubles with every further failure.
    pub first_retry: Duration,
    /// Longest wait between two attempts.
    pub max_retry: Duration,
    /// A message still undelivered this long after it was queued is given up (and logged).
    pub give_up_after: Duration,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        DeliveryPolicy {
            first_retry: Duration::from_secs(30),
            max_retry: Duration::from_secs(30 * 60),
            give_up_after: Duration::from_secs(24 * 3600),
        }
    }
}

/// A person or team that receives notifications.
#[derive(Debug, Clone, PartialEq)]
pub struct Contact {
    /// Unique name.
    pub name: String,
    /// Mail address for `smtp` notifiers.
    pub email: Option<String>,
    /// Phone number for `sms` notifiers (international format, `+49...`).
    pub phone: Option<String>,
    /// ntfy topic for `ntfy` notifiers (else the notifier's own topic).
    pub ntfy_topic: Option<String>,
    /// The notifiers that reach this contact, by name.
    pub via: Vec<String>,
    /// Per notifier name: the windows in which that channel reaches the
    /// contact. A notifier not listed reaches the contact at any time.
    pub on_call: BTreeMap<String, Vec<Window>>,
}

/// A notification channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Notifier {
    /// Unique name, used in `via:` and `on_call:`.
    pub name: String,
    /// What it is and how it is reached.
    pub kind: NotifierKind,
}

/// The kinds of notifiers.
#[derive(Debug, Clone, PartialEq)]
pub enum NotifierKind {
    /// Mail through an SMTP server.
    Smtp(SmtpNotifier),
    /// SMS through an HTTP gateway.
    Sms(SmsNotifier),
    /// Desktop and phone popups through an ntfy server.
    Ntfy(NtfyNotifier),
    /// A JSON POST of the alarm's facts.
    Webhook(WebhookNotifier),
}

impl NotifierKind {
    /// The kind's name as written in the config.
    pub fn name(&self) -> &'static str {
        match self {
            NotifierKind::Smtp(_) => "smtp",
            NotifierKind::Sms(_) => "sms",
            NotifierKind::Ntfy(_) => "ntfy",
            NotifierKind::Webhook(_) => "webhook",
        }
    }
}

/// How mail talks TLS to the SMTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain SMTP (a local relay on port 25).
    None,
    /// Plain connect, then STARTTLS (required), usually port 587.
    Starttls,
    /// TLS from the first byte (SMTPS), usually port 465.
    Tls,
}

/// Settings of an `smtp` notifier.
#[derive(Debug, Clone, PartialEq)]
pub struct SmtpNotifier {
    /// Server name or address.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// TLS mode.
    pub tls: SmtpTls,
    /// Login name; no authentication when unset.
    pub user: Option<String>,
    /// File whose first line is the password.
    pub password_file: Option<PathBuf>,
    /// Sender address (`laxmon <laxmon@example.org>`).
    pub from: String,
    /// Subject template; `None`: laxmon's text for each kind of notification.
    pub subject: Option<Template>,
    /// Body template; `None`: laxmon's text for each kind of notification.
    pub body: Option<Template>,
    /// Limit on one delivery.
    pub timeout: Duration,
}

/// Settings of an `sms` notifier: any HTTP gateway.
#[derive(Debug, Clone, PartialEq)]
pub struct SmsNotifier {
    /// HTTP method (`POST`, `GET`, `PUT`).
    pub method: String,
    /// URL template (may use `{{to|url}}` and `{{message|url}}`).
    pub url: Template,
    /// Header templates.
    pub headers: Vec<(String, Template)>,
    /// Request body template; no body when unset.
    pub body: Option<Template>,
    /// The text of the SMS (becomes `{{message}}`), cut to `max_length`
    /// characters; `None`: laxmon's text for each kind of notification.
    pub text: Option<Template>,
    /// Longest text in characters.
    pub max_length: usize,
    /// HTTP statuses that mean the gateway accepted the message.
    pub success_status: Vec<u16>,
    /// Text the response body must contain to count as success.
    pub body_must_contain: Option<String>,
    /// Limit on one request.
    pub timeout: Duration,
}

/// Settings of an `ntfy` notifier (popups).
#[derive(Debug, Clone, PartialEq)]
pub struct NtfyNotifier {
    /// The ntfy server, e.g. `https://ntfy.example.org`.
    pub server: String,
    /// Topic used for contacts without their own `ntfy_topic`.
    pub topic: Option<String>,
    /// Priority 1 (min) to 5 (max/urgent).
    pub priority: u8,
    /// Tags (ntfy shows known ones as emoji).
    pub tags: Vec<String>,
    /// Title template; `None`: laxmon's text for each kind of notification.
    pub title: Option<Template>,
    /// Message template; `None`: laxmon's text for each kind of notification.
    pub message: Option<Template>,
    /// File whose first line is an access token.
    pub token_file: Option<PathBuf>,
    /// Limit on one request.
    pub timeout: Duration,
}

/// Settings of a `webhook` notifier.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookNotifier {
    /// Where the JSON goes.
    pub url: String,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Limit on one request.
    pub timeout: Duration,
}

/// Which check results a rule or maintenance window applies to; every given
/// criterion must match, any entry of a list may.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Matcher {
    /// Check names or globs.
    pub checks: Vec<glob::Pattern>,
    /// Host names or globs.
    pub hosts: Vec<glob::Pattern>,
    /// Tags of the check or its host.
    pub tags: Vec<String>,
    /// States that count (default: every non-OK state).
    pub states: Vec<State>,
}

/// One escalation level: if still unacknowledged this long after opening, notify these too.
#[derive(Debug, Clone, PartialEq)]
pub struct Escalation {
    /// Time since the alarm opened.
    pub after: Duration,
    /// Contacts to add.
    pub notify: Vec<String>,
}

/// Restart-loop protection, as Monit's `if N restarts within M cycles`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartLimit {
    /// At most this many action runs ...
    pub restarts: u32,
    /// ... within this many results of the check.
    pub cycles: u32,
}

impl Default for RestartLimit {
    fn default() -> Self {
        RestartLimit {
            restarts: 3,
            cycles: 5,
        }
    }
}

/// A rule: which results it covers and what happens to them.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Unique name.
    pub name: String,
    /// What it covers.
    pub matcher: Matcher,
    /// Act and notify only if the alarm is still open this long after the
    /// rule started to apply (the alarm opened or entered the rule's states).
    pub after: Duration,
    /// Repeat the notification this often while unacknowledged (`None`: once).
    pub repeat: Option<Duration>,
    /// Contacts notified first.
    pub notify: Vec<String>,
    /// Further levels, in order of `after`.
    pub escalate: Vec<Escalation>,
    /// Repairs run once `after` has passed.
    pub actions: Vec<Action>,
    /// Restart-loop protection for the actions.
    pub restart_limit: RestartLimit,
    /// Tell those notified when the alarm resolves.
    pub recovery: bool,
}

/// A repair a rule runs for an alarm.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// A program with arguments, without a shell; the alarm's facts in its environment.
    Script {
        /// The program (resolved against `scripts_dir` when written without a `/`).
        program: PathBuf,
        /// Arguments; `{{key}}` and Nagios `$MACRO$`s are expanded.
        args: Vec<String>,
        /// Limit on the run; the process group is killed after it.
        timeout: Duration,
    },
    /// Restart an init script or systemd unit, locally or over SSH.
    RestartService {
        /// The service.
        target: InitTarget,
        /// Host entry to run on; default the check's host.
        host: Option<String>,
        /// Limit on the run.
        timeout: Duration,
    },
    /// Restart a virtual machine (carried out by the cluster module).
    RestartVm {
        /// The VM's name.
        vm: String,
        /// The cluster it belongs to.
        cluster: Option<String>,
    },
    /// Replan and reorganise a cluster (carried out by the cluster module).
    ClusterReorg {
        /// The cluster.
        cluster: String,
    },
}

impl Action {
    /// The action's kind as written in the config.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Script { .. } => "script",
            Action::RestartService { .. } => "restart-service",
            Action::RestartVm { .. } => "restart-vm",
            Action::ClusterReorg { .. } => "clusterreorg",
        }
    }
}

/// A maintenance window: matching alarms get no actions and no notifications.
#[derive(Debug, Clone, PartialEq)]
pub struct Maintenance {
    /// Unique name, recorded with each suppression.
    pub name: String,
    /// What it covers.
    pub matcher: Matcher,
    /// When it applies.
    pub windows: Vec<Window>,
}

// ---- decoding ----

/// Extra template keys per channel.
const SMS_KEYS: &[&str] = &["to", "message"];

/// Decoded alarm config plus what [`finish`] must still check against checks and hosts.
#[derive(Default)]
pub(super) struct RawAlarms {
    config: AlarmConfig,
    check_refs: Vec<(String, PathBuf, Pos)>,
    /// Clusters named by `clusterreorg`/`restart-vm` actions, checked once all clusters are known.
    cluster_refs: Vec<(String, PathBuf, Pos)>,
    host_refs: Vec<(String, PathBuf, Pos)>,
}

struct Ctx<'a> {
    file: &'a Path,
    timezone: Tz,
    windows: BTreeMap<String, Window>,
}

/// Takes this module's keys from the main file's top-level mapping.
pub(super) fn decode_top(file: &Path, map: &mut MapView, raw: &mut RawAlarms, errors: &mut Errors) {
    let cfg = &mut raw.config;
    let base = file.parent().unwrap_or(Path::new("."));
    let mut ctx = Ctx {
        file,
        timezone: Tz::UTC,
        windows: BTreeMap::new(),
    };
    if let Some(node) = map.take("alarms") {
        decode_settings(&mut ctx, base, node, cfg, errors);
    } else {
        cfg.scripts_dir = base.join(&cfg.scripts_dir);
    }
    if let Some(node) = map.take("windows") {
        for n in seq(file, "windows", node, errors) {
            decode_named_window(&mut ctx, n, errors);
        }
    }
    if let Some(node) = map.take("notifiers") {
        for n in seq(file, "notifiers", node, errors) {
            if let Some(notifier) = decode_notifier(&ctx, n, errors) {
                if cfg.notifier(&notifier.name).is_some() {
                    errors.at(
                        file,
                        n.pos,
                        format!("duplicate notifier name {:?}", notifier.name),
                    );
                } else {
                    cfg.notifiers.push(notifier);
                }
            }
        }
    }
    if let Some(node) = map.take("contacts") {
        for n in seq(file, "contacts", node, errors) {
            if let Some(contact) = decode_contact(&ctx, n, &cfg.notifiers, errors) {
                if cfg.contact(&contact.name).is_some() {
                    errors.at(
                        file,
                        n.pos,
                        format!("duplicate contact name {:?}", contact.name),
                    );
                } else {
                    cfg.contacts.push(contact);
                }
            }
        }
    }
    if let Some(node) = map.take("rules") {
        for n in seq(file, "rules", node, errors) {
            if let Some(rule) = decode_rule(&ctx, n, raw, errors) {
                let cfg = &mut raw.config;
                if cfg.rules.iter().any(|r| r.name == rule.name) {
                    errors.at(file, n.pos, format!("duplicate rule name {:?}", rule.name));
                } else {
                    cfg.rules.push(rule);
                }
            }
        }
    }
    if let Some(node) = map.take("maintenance") {
        for n in seq(file, "maintenance", node, errors) {
            if let Some(m) = decode_maintenance(&ctx, n, raw, errors) {
                raw.config.maintenance.push(m);
            }
        }
    }
}

/// Checks the names rules and maintenance windows use against the defined
/// checks and hosts, and returns the alarm configuration.
pub(super) fn finish(
    raw: RawAlarms,
    checks: &[super::Check],
    hosts: &[super::Host],
    clusters: &[String],
    errors: &mut Errors,
) -> AlarmConfig {
    for (name, file, pos) in &raw.cluster_refs {
        if !clusters.contains(name) {
            errors.at(
                file,
                *pos,
                format!(
                    "action names cluster {name:?}, which is not defined under clusters: (defined: {})",
                    if clusters.is_empty() { "none".to_string() } else { clusters.join(", ") }
                ),
            );
        }
    }
    for (name, file, pos) in &raw.check_refs {
        if !checks.iter().any(|c| &c.name == name) {
            errors.at(
                file,
                *pos,
                format!("match.checks names check {name:?}, which is not defined (use a glob such as \"{name}*\" to match names that may not exist)"),
            );
        }
    }
    for (name, file, pos) in &raw.host_refs {
        if name != super::LOCAL_HOST && !hosts.iter().any(|h| &h.name == name) {
            errors.at(
                file,
                *pos,
                format!("match.hosts names host {name:?}, which is not defined"),
            );
        }
    }
    raw.config
}

const SETTINGS_KEYS: &[&str] = &["scripts_dir", "group_window", "timezone", "delivery"];
const DELIVERY_KEYS: &[&str] = &["first_retry", "max_retry", "give_up_after"];

fn decode_settings(
    ctx: &mut Ctx,
    base: &Path,
    node: &Node,
    cfg: &mut AlarmConfig,
    errors: &mut Errors,
) {
    let file = ctx.file;
    let Some(mut map) = MapView::new(file, node, "alarms", errors) else {
        return;
    };
    let dir = map
        .take("scripts_dir")
        .and_then(|n| string(file, "alarms.scripts_dir", n, errors))
        .unwrap_or_else(|| "alarm-scripts".to_string());
    cfg.scripts_dir = base.join(dir);
    map.duration_into(
        "group_window",
        "alarms.group_window",
        (Duration::ZERO, Duration::from_secs(3600)),
        &mut cfg.group_window,
        errors,
    );
    if let Some(n) = map.take("timezone") {
        if let Some(tz) = timezone(file, "alarms.timezone", n, errors) {
            ctx.timezone = tz;
        }
    }
    if let Some(n) = map.take("delivery") {
        if let Some(mut d) = MapView::new(file, n, "alarms.delivery", errors) {
            let day = Duration::from_secs(86400);
            d.duration_into(
                "first_retry",
                "alarms.delivery.first_retry",
                (Duration::from_millis(10), day),
                &mut cfg.delivery.first_retry,
                errors,
            );
            d.duration_into(
                "max_retry",
                "alarms.delivery.max_retry",
                (Duration::from_millis(10), day),
                &mut cfg.delivery.max_retry,
                errors,
            );
            d.duration_into(
                "give_up_after",
                "alarms.delivery.give_up_after",
                (Duration::from_secs(1), 30 * day),
                &mut cfg.delivery.give_up_after,
                errors,
            );
            if cfg.delivery.first_retry > cfg.delivery.max_retry {
                errors.at(
                    file,
                    n.pos,
                    "alarms.delivery.first_retry is longer than max_retry",
                );
            }
            d.finish("alarms.delivery", DELIVERY_KEYS, errors);
        }
    }
    map.finish("alarms", SETTINGS_KEYS, errors);
}

fn timezone(file: &Path, key: &str, node: &Node, errors: &mut Errors) -> Option<Tz> {
    let s = string(file, key, node, errors)?;
    match parse_timezone(&s) {
        Ok(tz) => Some(tz),
        Err(e) => {
            let names: Vec<&str> = chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()).collect();
            let hint = did_you_mean(&s, &names);
            errors.at(file, node.pos, format!("{key}: {e}{hint}"));
            None
        }
    }
}

const WINDOW_KEYS: &[&str] = &["cron", "duration", "timezone"];

/// A window as a mapping `{cron, duration, timezone}`; `name` is taken by the caller.
fn window_map(
    ctx: &Ctx,
    what: &str,
    node: &Node,
    map: &mut MapView,
    errors: &mut Errors,
) -> Option<Window> {
    let file = ctx.file;
    let cron_node = map.take("cron");
    let cron = cron_node.and_then(|n| string(file, &format!("{what}.cron"), n, errors));
    let dur = map.take("duration").and_then(|n| {
        duration_in(
            file,
            &format!("{what}.duration"),
            n,
            Duration::from_secs(60),
            Duration::from_secs(366 * 86400),
            errors,
        )
    });
    let tz = match map.take("timezone") {
        Some(n) => timezone(file, &format!("{what}.timezone"), n, errors)?,
        None => ctx.timezone,
    };
    if cron_node.is_none() {
        errors.at(
            file,
            node.pos,
            format!("{what} needs `cron:` (a crontab expression such as \"0 8 * * 1-5\")"),
        );
    }
    let cron = cron?;
    let checked = Window::new(&cron, dur.unwrap_or(Duration::from_secs(3600)), tz);
    let cron_pos = cron_node.map(|n| n.pos).unwrap_or(node.pos);
    if let Err(e) = &checked {
        errors.at(file, cron_pos, format!("{what}.cron: {e}"));
        return None;
    }
    let Some(dur) = dur else {
        if map.take("duration").is_none() {
            errors.at(
                file,
                node.pos,
                format!("{what} needs `duration:` (how long it stays open, e.g. 10h)"),
            );
        }
        return None;
    };
    match Window::new(&cron, dur, tz) {
        Ok(w) => Some(w),
        Err(e) => {
            errors.at(
                file,
                cron_node.map(|n| n.pos).unwrap_or(node.pos),
                format!("{what}.cron: {e}"),
            );
            None
        }
    }
}

fn decode_named_window(ctx: &mut Ctx, node: &Node, errors: &mut Errors) {
    let file = ctx.file;
    let Some(mut map) = MapView::new(file, node, "a window entry", errors) else {
        return;
    };
    let n = map.take("name");
    let wname = n.and_then(|n| name(file, "window name", n, errors));
    if n.is_none() {
        errors.at(file, node.pos, "window entry has no name: add `name: ...`");
    }
    let what = format!("window {:?}", wname.as_deref().unwrap_or("?"));
    let w = window_map(ctx, &what, node, &mut map, errors);
    let mut keys = vec!["name"];
    keys.extend_from_slice(WINDOW_KEYS);
    map.finish(&what, &keys, errors);
    if let (Some(wname), Some(w)) = (wname, w) {
        match ctx.windows.entry(wname) {
            std::collections::btree_map::Entry::Occupied(e) => errors.at(
                file,
                node.pos,
                format!("duplicate window name {:?}", e.key()),
            ),
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(w);
            }
        }
    }
}

/// One window reference: the name of a `windows:` entry or an inline mapping.
fn window_ref(ctx: &Ctx, what: &str, node: &Node, errors: &mut Errors) -> Option<Window> {
    let file = ctx.file;
    match &node.value {
        Value::Str(s) => match ctx.windows.get(s) {
            Some(w) => Some(w.clone()),
            None => {
                let known: Vec<&str> = ctx.windows.keys().map(String::as_str).collect();
                errors.at(file, node.pos, format!("{what} names window {s:?}, which is not defined under windows: (defined: {})", if known.is_empty() { "none".to_string() } else { known.join(", ") }));
                None
            }
        },
        Value::Map(_) => {
            let mut map = MapView::new(file, node, what, errors)?;
            let w = window_map(ctx, what, node, &mut map, errors);
            map.finish(what, WINDOW_KEYS, errors);
            w
        }
        other => {
            errors.at(
                file,
                node.pos,
                format!(
                    "{what} must be a window name or {{cron: ..., duration: ...}}, found {}",
                    other.describe()
                ),
            );
            None
        }
    }
}

/// A list of window references (a single one is accepted too).
fn window_list(ctx: &Ctx, what: &str, node: &Node, errors: &mut Errors) -> Vec<Window> {
    match &node.value {
        Value::Seq(items) => items
            .iter()
            .filter_map(|n| window_ref(ctx, what, n, errors))
            .collect(),
        _ => window_ref(ctx, what, node, errors).into_iter().collect(),
    }
}

const NOTIFIER_COMMON: &[&str] = &["name", "kind", "timeout"];
const NOTIFIER_KINDS: &[&str] = &["smtp", "sms", "ntfy", "webhook"];

fn notifier_keys(kind: &str) -> &'static [&'static str] {
    match kind {
        "smtp" => &[
            "host",
            "port",
            "tls",
            "user",
            "password_file",
            "from",
            "subject",
            "body",
        ],
        "sms" => &[
            "method",
            "url",
            "headers",
            "body",
            "text",
            "max_length",
            "success_status",
            "body_must_contain",
        ],
        "ntfy" => &[
            "server",
            "topic",
            "priority",
            "tags",
            "title",
            "message",
            "token_file",
        ],
        "webhook" => &["url", "headers"],
        _ => &[],
    }
}

/// A template the user may give; `Ok(None)` when not given (laxmon's own
/// text for each kind of notification, see `alarm::text`), `Err(())` when
/// invalid (the error is reported).
fn custom_template(
    file: &Path,
    key: &str,
    node: Option<&Node>,
    errors: &mut Errors,
) -> Result<Option<Template>, ()> {
    match node {
        None => Ok(None),
        Some(n) => template(file, key, Some(n), "", &[], errors)
            .map(Some)
            .ok_or(()),
    }
}

fn template(
    file: &Path,
    key: &str,
    node: Option<&Node>,
    default: &str,
    extra: &[&str],
    errors: &mut Errors,
) -> Option<Template> {
    let mut known: Vec<&str> = FACT_NAMES.to_vec();
    known.extend_from_slice(extra);
    let (text, pos) = match node {
        Some(n) => (string(file, key, n, errors)?, n.pos),
        None => (default.to_string(), Pos::default()),
    };
    match Template::parse(&text, &known) {
        Ok(t) => Some(t),
        Err(e) => {
            errors.at(file, pos, format!("{key}: {e}"));
            None
        }
    }
}

fn headers(file: &Path, key: &str, node: &Node, errors: &mut Errors) -> Vec<(String, String)> {
    let Value::Map(entries) = &node.value else {
        errors.at(
            file,
            node.pos,
            format!(
                "{key} must be a mapping of header names to values, found {}",
                node.value.describe()
            ),
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for (k, v) in entries {
        let Some(hname) = string(file, key, k, errors) else {
            continue;
        };
        if hname.is_empty()
            || !hname
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            errors.at(
                file,
                k.pos,
                format!("{key}: {hname:?} is not an HTTP header name"),
            );
            continue;
        }
        if let Some(value) = string(file, &format!("{key}.{hname}"), v, errors) {
            out.push((hname, value));
        }
    }
    out
}

fn http_url(file: &Path, key: &str, node: &Node, errors: &mut Errors) -> Option<String> {
    let s = string(file, key, node, errors)?;
    if !(s.starts_with("http://") || s.starts_with("https://")) || s.len() < 10 {
        errors.at(
            file,
            node.pos,
            format!("{key} {s:?} is not an http:// or https:// URL"),
        );
        return None;
    }
    Some(s)
}

fn decode_notifier(ctx: &Ctx, node: &Node, errors: &mut Errors) -> Option<Notifier> {
    let file = ctx.file;
    let mut map = MapView::new(file, node, "a notifier entry", errors)?;
    let name_node = map.take("name");
    let nname = name_node.and_then(|n| name(file, "notifier name", n, errors));
    if name_node.is_none() {
        errors.at(
            file,
            node.pos,
            "notifier entry has no name: add `name: ...`",
        );
    }
    let what = format!("notifier {:?}", nname.as_deref().unwrap_or("?"));
    let kind_node = map.take("kind");
    let kind = match kind_node {
        None => {
            errors.at(
                file,
                node.pos,
                format!(
                    "{what} has no kind: add `kind:` with one of {}",
                    NOTIFIER_KINDS.join(", ")
                ),
            );
            None
        }
        Some(n) => match string(file, "kind", n, errors) {
            Some(k) if NOTIFIER_KINDS.contains(&k.as_str()) => Some(k),
            Some(k) => {
                errors.at(
                    file,
                    n.pos,
                    format!(
                        "unknown kind {k:?} in {what}{}: use one of {}",
                        did_you_mean(&k, NOTIFIER_KINDS),
                        NOTIFIER_KINDS.join(", ")
                    ),
                );
                None
            }
            None => None,
        },
    };
    let timeout = map
        .take("timeout")
        .and_then(|n| {
            duration_in(
                file,
                "timeout",
                n,
                Duration::from_millis(100),
                Duration::from_secs(600),
                errors,
            )
        })
        .unwrap_or(Duration::from_secs(30));
    let decoded = match kind.as_deref() {
        Some("smtp") => {
            decode_smtp(file, node, &what, &mut map, timeout, errors).map(NotifierKind::Smtp)
        }
        Some("sms") => {
            decode_sms(file, node, &what, &mut map, timeout, errors).map(NotifierKind::Sms)
        }
        Some("ntfy") => {
            decode_ntfy(file, node, &what, &mut map, timeout, errors).map(NotifierKind::Ntfy)
        }
        Some("webhook") => {
            let url = match map.take("url") {
                Some(n) => http_url(file, "url", n, errors),
                None => {
                    errors.at(
                        file,
                        node.pos,
                        format!("{what} (kind webhook) needs `url:`"),
                    );
                    None
                }
            };
            let headers = map
                .take("headers")
                .map(|n| headers(file, "headers", n, errors))
                .unwrap_or_default();
            url.map(|url| {
                NotifierKind::Webhook(WebhookNotifier {
                    url,
                    headers,
                    timeout,
                })
            })
        }
        _ => {
            for k in NOTIFIER_KINDS.iter().flat_map(|k| notifier_keys(k)) {
                map.take(k);
            }
            None
        }
    };
    let allowed: Vec<&str> = NOTIFIER_COMMON
        .iter()
        .chain(kind.as_deref().map(notifier_keys).unwrap_or(&[]))
        .copied()
        .collect();
    let what_kind = match kind.as_deref() {
        Some(k) => format!("{what} (kind {k})"),
        None => what.clone(),
    };
    map.finish(&what_kind, &allowed, errors);
    Some(Notifier {
        name: nname?,
        kind: decoded?,
    })
}

fn decode_smtp(
    file: &Path,
    node: &Node,
    what: &str,
    map: &mut MapView,
    timeout: Duration,
    errors: &mut Errors,
) -> Option<SmtpNotifier> {
    let host = match map.take("host") {
        Some(n) => string(file, "host", n, errors),
        None => {
            errors.at(
                file,
                node.pos,
                format!("{what} (kind smtp) needs `host:` (the SMTP server)"),
            );
            None
        }
    };
    let tls = match map.take("tls") {
        None => Some(SmtpTls::Starttls),
        Some(n) => match string(file, "tls", n, errors).as_deref() {
            Some("none") => Some(SmtpTls::None),
            Some("starttls") => Some(SmtpTls::Starttls),
            Some("tls") => Some(SmtpTls::Tls),
            Some(other) => {
                errors.at(
                    file,
                    n.pos,
                    format!(
                        "tls {other:?} is not one of none, starttls, tls{}",
                        did_you_mean(other, &["none", "starttls", "tls"])
                    ),
                );
                None
            }
            None => None,
        },
    };
    let port = match map.take("port") {
        Some(n) => integer(file, "port", n, 1, 65535, errors).map(|p| p as u16),
        None => Some(match tls {
            Some(SmtpTls::Tls) => 465,
            Some(SmtpTls::Starttls) => 587,
            _ => 25,
        }),
    };
    let user = map
        .take("user")
        .and_then(|n| string(file, "user", n, errors));
    let password_file = map
        .take("password_file")
        .and_then(|n| string(file, "password_file", n, errors))
        .map(PathBuf::from);
    if user.is_some() != password_file.is_some() {
        errors.at(
            file,
            node.pos,
            format!(
                "{what}: set both `user:` and `password_file:` for SMTP authentication, or neither"
            ),
        );
    }
    let from = match map.take("from") {
        Some(n) => {
            let f = string(file, "from", n, errors)?;
            if f.parse::<lettre::message::Mailbox>().is_err() {
                errors.at(
                    file,
                    n.pos,
                    format!(
                        "from {f:?} is not a mail address such as \"laxmon <laxmon@example.org>\""
                    ),
                );
                None
            } else {
                Some(f)
            }
        }
        None => {
            errors.at(
                file,
                node.pos,
                format!("{what} (kind smtp) needs `from:` (the sender address)"),
            );
            None
        }
    };
    let subject = custom_template(file, "subject", map.take("subject"), errors);
    let body = custom_template(file, "body", map.take("body"), errors);
    Some(SmtpNotifier {
        host: host?,
        port: port?,
        tls: tls?,
        user,
        password_file,
        from: from?,
        subject: subject.ok()?,
        body: body.ok()?,
        timeout,
    })
}

fn decode_sms(
    file: &Path,
    node: &Node,
    what: &str,
    map: &mut MapView,
    timeout: Duration,
    errors: &mut Errors,
) -> Option<SmsNotifier> {
    let method = match map.take("method") {
        None => Some("POST".to_string()),
        Some(n) => match string(file, "method", n, errors) {
            Some(m) if ["GET", "POST", "PUT"].contains(&m.to_ascii_uppercase().as_str()) => {
                Some(m.to_ascii_uppercase())
            }
            Some(m) => {
                errors.at(
                    file,
                    n.pos,
                    format!(
                        "method {m:?} is not one of GET, POST, PUT{}",
                        did_you_mean(&m, &["GET", "POST", "PUT"])
                    ),
                );
                None
            }
            None => None,
        },
    };
    let url = match map.take("url") {
        Some(n) => {
            let u = http_url(file, "url", n, errors);
            u.and_then(|u| template(file, "url", Some(n), &u, SMS_KEYS, errors))
        }
        None => {
            errors.at(
                file,
                node.pos,
                format!("{what} (kind sms) needs `url:` (the gateway's URL)"),
            );
            None
        }
    };
    let mut hdrs = Vec::new();
    if let Some(n) = map.take("headers") {
        let mut known: Vec<&str> = FACT_NAMES.to_vec();
        known.extend_from_slice(SMS_KEYS);
        for (k, v) in headers(file, "headers", n, errors) {
            match Template::parse(&v, &known) {
                Ok(t) => hdrs.push((k, t)),
                Err(e) => errors.at(file, n.pos, format!("headers.{k}: {e}")),
            }
        }
    }
    let body = match map.take("body") {
        Some(n) => Some(template(file, "body", Some(n), "", SMS_KEYS, errors)?),
        None => None,
    };
    let text = custom_template(file, "text", map.take("text"), errors);
    let max_length = map
        .take("max_length")
        .and_then(|n| integer(file, "max_length", n, 10, 1600, errors))
        .unwrap_or(160) as usize;
    let success_status = match map.take("success_status") {
        None => vec![200, 201, 202, 204],
        Some(n) => {
            let items: Vec<&Node> = match &n.value {
                Value::Seq(items) => items.iter().collect(),
                _ => vec![n],
            };
            items
                .into_iter()
                .filter_map(|i| {
                    integer(file, "success_status", i, 100, 599, errors).map(|s| s as u16)
                })
                .collect()
        }
    };
    let body_must_contain = map
        .take("body_must_contain")
        .and_then(|n| string(file, "body_must_contain", n, errors));
    Some(SmsNotifier {
        method: method?,
        url: url?,
        headers: hdrs,
        body,
        text: text.ok()?,
        max_length,
        success_status,
        body_must_contain,
        timeout,
    })
}

fn decode_ntfy(
    file: &Path,
    node: &Node,
    what: &str,
    map: &mut MapView,
    timeout: Duration,
    errors: &mut Errors,
) -> Option<NtfyNotifier> {
    let server = match map.take("server") {
        Some(n) => http_url(file, "server", n, errors).map(|s| s.trim_end_matches('/').to_string()),
        None => {
            errors.at(
                file,
                node.pos,
                format!("{what} (kind ntfy) needs `server:` (e.g. https://ntfy.example.org)"),
            );
            None
        }
    };
    let topic = map
        .take("topic")
        .and_then(|n| name(file, "topic", n, errors));
    let priority = match map.take("priority") {
        None => Some(4),
        Some(n) => match &n.value {
            Value::Int(_) => integer(file, "priority", n, 1, 5, errors).map(|p| p as u8),
            _ => match string(file, "priority", n, errors).as_deref() {
                Some("min") => Some(1),
                Some("low") => Some(2),
                Some("default") => Some(3),
                Some("high") => Some(4),
                Some("max" | "urgent") => Some(5),
                Some(other) => {
                    let hint =
                        did_you_mean(other, &["min", "low", "default", "high", "max", "urgent"]);
                    errors.at(file, n.pos, format!("priority {other:?} is not 1-5 or one of min, low, default, high, urgent{hint}"));
                    None
                }
                None => None,
            },
        },
    };
    let tags = map
        .take("tags")
        .map(|n| string_list(file, "tags", n, errors))
        .unwrap_or_else(|| vec!["rotating_light".to_string()]);
    let title = custom_template(file, "title", map.take("title"), errors);
    let message = custom_template(file, "message", map.take("message"), errors);
    let token_file = map
        .take("token_file")
        .and_then(|n| string(file, "token_file", n, errors))
        .map(PathBuf::from);
    Some(NtfyNotifier {
        server: server?,
        topic,
        priority: priority?,
        tags,
        title: title.ok()?,
        message: message.ok()?,
        token_file,
        timeout,
    })
}

const CONTACT_KEYS: &[&str] = &["name", "email", "phone", "ntfy_topic", "via", "on_call"];

fn decode_contact(
    ctx: &Ctx,
    node: &Node,
    notifiers: &[Notifier],
    errors: &mut Errors,
) -> Option<Contact> {
    let file = ctx.file;
    let mut map = MapView::new(file, node, "a contact entry", errors)?;
    let name_node = map.take("name");
    let cname = name_node.and_then(|n| name(file, "contact name", n, errors));
    if name_node.is_none() {
        errors.at(file, node.pos, "contact entry has no name: add `name: ...`");
    }
    let what = format!("contact {:?}", cname.as_deref().unwrap_or("?"));
    let email = map.take("email").and_then(|n| {
        let e = string(file, "email", n, errors)?;
        if e.parse::<lettre::Address>().is_err() {
            errors.at(file, n.pos, format!("email {e:?} is not a mail address"));
            return None;
        }
        Some(e)
    });
    let phone = map.take("phone").and_then(|n| {
        let p = string(file, "phone", n, errors)?;
        let digits = p.strip_prefix('+').unwrap_or(&p);
        if digits.len() < 3 || !digits.chars().all(|c| c.is_ascii_digit()) {
            errors.at(file, n.pos, format!("phone {p:?} is not a phone number: write digits, international as +4917012345678"));
            return None;
        }
        Some(p)
    });
    let ntfy_topic = map
        .take("ntfy_topic")
        .and_then(|n| name(file, "ntfy_topic", n, errors));
    let reaches = |n: &Notifier| match &n.kind {
        NotifierKind::Smtp(_) => email.is_some(),
        NotifierKind::Sms(_) => phone.is_some(),
        NotifierKind::Ntfy(x) => ntfy_topic.is_some() || x.topic.is_some(),
        NotifierKind::Webhook(_) => false,
    };
    let via = match map.take("via") {
        None => notifiers
            .iter()
            .filter(|n| reaches(n))
            .map(|n| n.name.clone())
            .collect(),
        Some(list) => {
            let items: Vec<&Node> = match &list.value {
                Value::Seq(items) => items.iter().collect(),
                _ => vec![list],
            };
            let mut via = Vec::new();
            for item in items {
                let Some(v) = string(file, "via", item, errors) else {
                    continue;
                };
                match notifiers.iter().find(|n| n.name == v) {
                    None => errors.at(file, item.pos, format!("{what}: via names notifier {v:?}, which is not defined under notifiers:")),
                    Some(n) if !reaches(n) && !matches!(n.kind, NotifierKind::Webhook(_)) => {
                        let need = match n.kind {
                            NotifierKind::Smtp(_) => "email",
                            NotifierKind::Sms(_) => "phone",
                            _ => "ntfy_topic",
                        };
                        errors.at(file, item.pos, format!("{what}: via {v:?} (kind {}) needs the contact's `{need}:`", n.kind.name()));
                    }
                    Some(_) => via.push(v),
                }
            }
            via
        }
    };
    let mut on_call = BTreeMap::new();
    if let Some(n) = map.take("on_call") {
        if let Value::Map(entries) = &n.value {
            for (k, v) in entries {
                let Some(channel) = string(file, "on_call", k, errors) else {
                    continue;
                };
                if !via.contains(&channel) {
                    errors.at(file, k.pos, format!("{what}: on_call names {channel:?}, which is not one of the contact's notifiers ({})", via.join(", ")));
                    continue;
                }
                let windows = window_list(ctx, &format!("on_call.{channel}"), v, errors);
                on_call.insert(channel, windows);
            }
        } else {
            errors.at(
                file,
                n.pos,
                format!(
                    "on_call must map notifier names to windows, e.g. {{sms: [nights]}}, found {}",
                    n.value.describe()
                ),
            );
        }
    }
    map.finish(&what, CONTACT_KEYS, errors);
    let cname = cname?;
    if via.is_empty() {
        errors.at(file, node.pos, format!("{what} cannot be reached: give it an email, phone or ntfy_topic matching a notifier, or list notifiers in via:"));
    }
    Some(Contact {
        name: cname,
        email,
        phone,
        ntfy_topic,
        via,
        on_call,
    })
}

const MATCH_KEYS: &[&str] = &["checks", "hosts", "tags", "states"];

fn decode_match(
    file: &Path,
    node: &Node,
    raw: &mut RawAlarms,
    errors: &mut Errors,
) -> Option<Matcher> {
    let mut map = MapView::new(file, node, "match", errors)?;
    let mut m = Matcher::default();
    let patterns = |key: &str,
                    n: &Node,
                    refs: &mut Vec<(String, PathBuf, Pos)>,
                    errors: &mut Errors|
     -> Vec<glob::Pattern> {
        let items: Vec<&Node> = match &n.value {
            Value::Seq(items) => items.iter().collect(),
            _ => vec![n],
        };
        let mut out = Vec::new();
        for item in items {
            let Some(s) = string(file, &format!("match.{key}"), item, errors) else {
                continue;
            };
            match glob::Pattern::new(&s) {
                Ok(p) => {
                    if !s.contains(['*', '?', '[']) {
                        refs.push((s, file.to_path_buf(), item.pos));
                    }
                    out.push(p)
                }
                Err(e) => errors.at(
                    file,
                    item.pos,
                    format!("match.{key} {s:?} is not a valid glob: {e}"),
                ),
            }
        }
        out
    };
    if let Some(n) = map.take("checks") {
        m.checks = patterns("checks", n, &mut raw.check_refs, errors);
    }
    if let Some(n) = map.take("hosts") {
        m.hosts = patterns("hosts", n, &mut raw.host_refs, errors);
    }
    if let Some(n) = map.take("tags") {
        m.tags = string_list(file, "match.tags", n, errors);
    }
    if let Some(n) = map.take("states") {
        let items: Vec<&Node> = match &n.value {
            Value::Seq(items) => items.iter().collect(),
            _ => vec![n],
        };
        for item in items {
            let Some(s) = string(file, "match.states", item, errors) else {
                continue;
            };
            match State::parse(&s.to_ascii_uppercase()) {
                Some(State::Ok) | None => errors.at(
                    file,
                    item.pos,
                    format!(
                        "match.states {s:?} is not one of WARNING, CRITICAL, UNKNOWN{}",
                        did_you_mean(&s, &["WARNING", "CRITICAL", "UNKNOWN"])
                    ),
                ),
                Some(st) => m.states.push(st),
            }
        }
    }
    map.finish("match", MATCH_KEYS, errors);
    Some(m)
}

fn contact_list(
    ctx: &Ctx,
    key: &str,
    node: &Node,
    raw: &RawAlarms,
    errors: &mut Errors,
) -> Vec<String> {
    let items: Vec<&Node> = match &node.value {
        Value::Seq(items) => items.iter().collect(),
        _ => vec![node],
    };
    let mut out = Vec::new();
    for item in items {
        let Some(c) = string(ctx.file, key, item, errors) else {
            continue;
        };
        if raw.config.contact(&c).is_none() {
            errors.at(
                ctx.file,
                item.pos,
                format!("{key} names contact {c:?}, which is not defined under contacts:"),
            );
        } else {
            out.push(c);
        }
    }
    out
}

const RULE_KEYS: &[&str] = &[
    "name", "match", "after", "repeat", "notify", "escalate", "actions", "restarts", "within",
    "recovery",
];

fn decode_rule(ctx: &Ctx, node: &Node, raw: &mut RawAlarms, errors: &mut Errors) -> Option<Rule> {
    let file = ctx.file;
    let mut map = MapView::new(file, node, "a rule entry", errors)?;
    let name_node = map.take("name");
    let rname = name_node.and_then(|n| name(file, "rule name", n, errors));
    if name_node.is_none() {
        errors.at(file, node.pos, "rule entry has no name: add `name: ...`");
    }
    let what = format!("rule {:?}", rname.as_deref().unwrap_or("?"));
    let matcher = match map.take("match") {
        Some(n) => decode_match(file, n, raw, errors),
        None => {
            errors.at(file, node.pos, format!("{what} has no match: add e.g. `match: {{checks: [\"web-*\"]}}` (`checks: [\"*\"]` matches every check)"));
            None
        }
    };
    let day = Duration::from_secs(86400);
    let after = map
        .take("after")
        .and_then(|n| duration_in(file, "after", n, Duration::ZERO, 7 * day, errors))
        .unwrap_or(Duration::ZERO);
    let repeat = map
        .take("repeat")
        .and_then(|n| duration_in(file, "repeat", n, Duration::ZERO, 7 * day, errors))
        .filter(|d| !d.is_zero());
    if let Some(r) = repeat {
        if r < Duration::from_secs(60) {
            errors.at(
                file,
                node.pos,
                format!(
                    "{what}: repeat {} is shorter than 1m",
                    super::duration::format(r)
                ),
            );
        }
    }
    let notify = map
        .take("notify")
        .map(|n| contact_list(ctx, "notify", n, raw, errors))
        .unwrap_or_default();
    let mut escalate = Vec::new();
    if let Some(n) = map.take("escalate") {
        for level in seq(file, "escalate", n, errors) {
            let Some(mut lm) = MapView::new(file, level, "an escalate level", errors) else {
                continue;
            };
            let lafter = match lm.take("after") {
                Some(a) => duration_in(
                    file,
                    "escalate.after",
                    a,
                    Duration::from_secs(60),
                    30 * day,
                    errors,
                ),
                None => {
                    errors.at(file, level.pos, "escalate level needs `after:` (time unacknowledged since opening, e.g. 15m)");
                    None
                }
            };
            let lnotify = match lm.take("notify") {
                Some(c) => contact_list(ctx, "escalate.notify", c, raw, errors),
                None => {
                    errors.at(
                        file,
                        level.pos,
                        "escalate level needs `notify:` (contacts to add)",
                    );
                    Vec::new()
                }
            };
            lm.finish("an escalate level", &["after", "notify"], errors);
            if let Some(a) = lafter {
                if let Some(prev) = escalate.last().map(|e: &Escalation| e.after) {
                    if a <= prev {
                        errors.at(file, level.pos, format!("escalate levels must come in order: after {} is not later than the level before ({})", super::duration::format(a), super::duration::format(prev)));
                    }
                }
                escalate.push(Escalation {
                    after: a,
                    notify: lnotify,
                });
            }
        }
    }
    let mut actions = Vec::new();
    if let Some(n) = map.take("actions") {
        for a in seq(file, "actions", n, errors) {
            if let Some(action) = decode_action(ctx, &raw.config.scripts_dir, a, errors) {
                if let Action::ClusterReorg { cluster }
                | Action::RestartVm {
                    cluster: Some(cluster),
                    ..
                } = &action
                {
                    raw.cluster_refs
                        .push((cluster.clone(), file.to_path_buf(), a.pos));
                }
                let only_critical = matcher
                    .as_ref()
                    .is_some_and(|m| m.states == [State::Critical]);
                if matches!(action, Action::ClusterReorg { .. }) && !only_critical {
                    errors.at(
                        file,
                        a.pos,
                        "a clusterreorg action fences and replaces a server, so it acts only on a confirmed dead one: add `states: [CRITICAL]` to this rule's match (UNKNOWN means the liveness check could not decide)",
                    );
                }
                actions.push(action);
            }
        }
    }
    let mut limit = RestartLimit::default();
    if let Some(n) = map.take("restarts") {
        if let Some(r) = integer(file, "restarts", n, 1, 1000, errors) {
            limit.restarts = r as u32;
        }
    }
    if let Some(n) = map.take("within") {
        if let Some(c) = integer(file, "within", n, 1, 10000, errors) {
            limit.cycles = c as u32;
        }
    }
    if limit.restarts > limit.cycles {
        errors.at(file, node.pos, format!("{what}: restarts {} within {} cycles can never trigger: restarts must not exceed within", limit.restarts, limit.cycles));
    }
    let recovery = match map.take("recovery") {
        None => true,
        Some(n) => match n.value {
            Value::Bool(b) => b,
            _ => {
                errors.at(
                    file,
                    n.pos,
                    format!(
                        "recovery must be true or false, found {}",
                        n.value.describe()
                    ),
                );
                true
            }
        },
    };
    map.finish(&what, RULE_KEYS, errors);
    if notify.is_empty()
        && escalate.is_empty()
        && actions.is_empty()
        && rname.is_some()
        && matcher.is_some()
    {
        errors.at(
            file,
            node.pos,
            format!("{what} does nothing: give it notify:, escalate: or actions:"),
        );
    }
    Some(Rule {
        name: rname?,
        matcher: matcher?,
        after,
        repeat,
        notify,
        escalate,
        actions,
        restart_limit: limit,
        recovery,
    })
}

const ACTION_KINDS: &[&str] = &["script", "restart-service", "restart-vm", "clusterreorg"];

fn decode_action(
    ctx: &Ctx,
    scripts_dir: &Path,
    node: &Node,
    errors: &mut Errors,
) -> Option<Action> {
    let file = ctx.file;
    let mut map = MapView::new(file, node, "an action", errors)?;
    let present: Vec<(&str, &Node)> = ACTION_KINDS
        .iter()
        .filter_map(|k| map.take(k).map(|n| (*k, n)))
        .collect();
    let (kind, value) = match present.as_slice() {
        [one] => *one,
        [] => {
            errors.at(
                file,
                node.pos,
                format!("an action needs one of {}", ACTION_KINDS.join(", ")),
            );
            let mut allowed = ACTION_KINDS.to_vec();
            allowed.extend(["args", "timeout", "host", "cluster"]);
            map.finish("an action", &allowed, errors);
            return None;
        }
        [_, (k, n), ..] => {
            errors.at(
                file,
                n.pos,
                format!(
                    "an action has one kind, but {k:?} is set as well as {:?}: write two actions",
                    present[0].0
                ),
            );
            return None;
        }
    };
    let timeout = map
        .take("timeout")
        .and_then(|n| {
            duration_in(
                file,
                "timeout",
                n,
                Duration::from_millis(100),
                Duration::from_secs(3600),
                errors,
            )
        })
        .unwrap_or(Duration::from_secs(60));
    let action = match kind {
        "script" => {
            let args = map
                .take("args")
                .map(|n| string_list(file, "args", n, errors))
                .unwrap_or_default();
            map.finish("a script action", &["script", "args", "timeout"], errors);
            let program = string(file, "script", value, errors)?;
            let path = if program.contains('/') {
                PathBuf::from(&program)
            } else {
                scripts_dir.join(&program)
            };
            if program.trim().is_empty() {
                errors.at(
                    file,
                    value.pos,
                    "script is empty: name a program in alarm-scripts/ or give a path",
                );
                return None;
            }
            if !path.is_file() {
                errors.at(file, value.pos, format!("script {program:?}: {} does not exist (names without / are looked up in {})", path.display(), scripts_dir.display()));
                return None;
            }
            Action::Script {
                program: path,
                args,
                timeout,
            }
        }
        "restart-service" => {
            let host = map.take("host").and_then(|n| name(file, "host", n, errors));
            map.finish(
                "a restart-service action",
                &["restart-service", "host", "timeout"],
                errors,
            );
            let target = string(file, "restart-service", value, errors)?;
            if target.trim().is_empty() || target.contains(char::is_whitespace) {
                errors.at(file, value.pos, format!("restart-service {target:?} must name a systemd unit (apache2.service) or an init script (/etc/init.d/apache2)"));
                return None;
            }
            let target = if target.starts_with('/') {
                InitTarget::Script(target)
            } else {
                InitTarget::Unit(target)
            };
            Action::RestartService {
                target,
                host,
                timeout,
            }
        }
        "restart-vm" => {
            let cluster = map
                .take("cluster")
                .and_then(|n| name(file, "cluster", n, errors));
            map.finish(
                "a restart-vm action",
                &["restart-vm", "cluster", "timeout"],
                errors,
            );
            let vm = name(file, "restart-vm", value, errors)?;
            Action::RestartVm { vm, cluster }
        }
        _ => {
            map.finish(
                "a clusterreorg action",
                &["clusterreorg", "timeout"],
                errors,
            );
            let cluster = name(file, "clusterreorg", value, errors)?;
            Action::ClusterReorg { cluster }
        }
    };
    Some(action)
}

const MAINTENANCE_KEYS: &[&str] = &["name", "match", "windows"];

fn decode_maintenance(
    ctx: &Ctx,
    node: &Node,
    raw: &mut RawAlarms,
    errors: &mut Errors,
) -> Option<Maintenance> {
    let file = ctx.file;
    let mut map = MapView::new(file, node, "a maintenance entry", errors)?;
    let name_node = map.take("name");
    let mname = name_node.and_then(|n| name(file, "maintenance name", n, errors));
    if name_node.is_none() {
        errors.at(
            file,
            node.pos,
            "maintenance entry has no name: add `name: ...`",
        );
    }
    let what = format!("maintenance {:?}", mname.as_deref().unwrap_or("?"));
    let matcher = match map.take("match") {
        Some(n) => decode_match(file, n, raw, errors),
        None => {
            errors.at(
                file,
                node.pos,
                format!("{what} has no match: add e.g. `match: {{hosts: [cs2]}}`"),
            );
            None
        }
    };
    let windows = match map.take("windows") {
        Some(n) => window_list(ctx, "windows", n, errors),
        None => {
            errors.at(
                file,
                node.pos,
                format!(
                    "{what} needs `windows:` (names of windows or {{cron, duration, timezone}})"
                ),
            );
            Vec::new()
        }
    };
    map.finish(&what, MAINTENANCE_KEYS, errors);
    if windows.is_empty() {
        return None;
    }
    Some(Maintenance {
        name: mname?,
        matcher: matcher?,
        windows,
    })
}
