//! The delivery outbox: every notification is queued under its
//! idempotency key, grouped per recipient (alert storms), handed out when
//! due, and retried with deterministic exponential backoff while the mail
//! server or gateway is down, until it is delivered or given up.
//!
//! Pure scheduling: the caller sends and reports back; persistence goes
//! through [`super::store::NotificationStore`] (write-through, so a
//! restarted daemon resumes with [`Outbox::restore`]). A key once queued is
//! never queued again, and a delivered item is never handed out again.
//! (A crash between a send and its `mark_sent` can repeat that one
//! delivery: mail carries the message's [`global_id`] as Message-ID, HTTP
//! as `Idempotency-Key`, so receivers can drop the copy.)
//!
//! A key is unique within one database only; what leaves laxmon is the
//! [`global_id`], the key under the database's installation id, so that a
//! fresh database or a second installation never repeats an id that a mail
//! system or gateway may have seen.

use super::facts::Facts;
use super::group::{compose, cut, hold_until};
use super::lifecycle::{AlarmId, Notification};
use super::template::Template;
use super::text::{default_text, Channel};
use crate::config::alarms::{AlarmConfig, DeliveryPolicy, NotifierKind};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Where an item stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    /// Delivered.
    Sent {
        /// When.
        at: DateTime<Utc>,
    },
    /// Given up after `give_up_after`.
    GaveUp,
}

/// One rendered notification for one recipient through one notifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxItem {
    /// Idempotency key (from the lifecycle).
    pub key: String,
    /// The alarm.
    pub alarm_id: AlarmId,
    /// The contact.
    pub contact: String,
    /// The notifier's name.
    pub notifier: String,
    /// The address: mail address, phone number, ntfy topic; empty for webhooks.
    pub to: String,
    /// Rendered subject (mail subject, popup title).
    pub subject: String,
    /// Rendered body (mail body, SMS text, popup message).
    pub body: String,
    /// The facts, for webhooks and gateway templates.
    pub facts: Facts,
    /// When it was queued.
    pub created: DateTime<Utc>,
    /// When it is handed out next.
    pub next_attempt: DateTime<Utc>,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Where it stands.
    #[serde(flatten)]
    pub status: DeliveryStatus,
    /// The last failure.
    pub last_error: Option<String>,
}

impl OutboxItem {
    /// Still to be delivered.
    pub fn is_pending(&self) -> bool {
        self.status == DeliveryStatus::Pending
    }

    /// Renders a lifecycle notification for its notifier; `None` when the
    /// contact or notifier no longer exists or the contact has no address for it.
    pub fn render(n: &Notification, cfg: &AlarmConfig, now: DateTime<Utc>) -> Option<OutboxItem> {
        let contact = cfg.contact(&n.contact)?;
        let notifier = cfg.notifier(&n.notifier)?;
        // A configured template, else laxmon's text for this kind of notification.
        let text = |channel: Channel, subject: Option<&Template>, body: Option<&Template>| {
            let default = default_text(channel, &n.facts);
            (
                subject.map_or(default.subject, |t| t.render(&n.facts)),
                body.map_or(default.body, |t| t.render(&n.facts)),
            )
        };
        let (to, (subject, body)) = match &notifier.kind {
            NotifierKind::Smtp(s) => (
                contact.email.clone()?,
                text(Channel::Mail, s.subject.as_ref(), s.body.as_ref()),
            ),
            NotifierKind::Sms(s) => {
                let (_, body) = text(Channel::Sms, None, s.text.as_ref());
                (
                    contact.phone.clone()?,
                    (String::new(), cut(&body, Some(s.max_length))),
                )
            }
            NotifierKind::Ntfy(s) => (
                contact.ntfy_topic.clone().or_else(|| s.topic.clone())?,
                text(Channel::Popup, s.title.as_ref(), s.message.as_ref()),
            ),
            NotifierKind::Webhook(_) => (String::new(), text(Channel::Webhook, None, None)),
        };
        Some(OutboxItem {
            key: n.key.clone(),
            alarm_id: n.alarm_id,
            contact: n.contact.clone(),
            notifier: n.notifier.clone(),
            to,
            subject,
            body,
            facts: n.facts.clone(),
            created: now,
            next_attempt: now,
            attempts: 0,
            status: DeliveryStatus::Pending,
            last_error: None,
        })
    }
}

/// One message to send now: one or more items for the same recipient.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The keys of the items it carries (report them back all together).
    pub keys: Vec<String>,
    /// The notifier's name.
    pub notifier: String,
    /// The contact.
    pub contact: String,
    /// The address.
    pub to: String,
    /// Subject (combined for a group).
    pub subject: String,
    /// Body (combined for a group).
    pub body: String,
    /// Facts of the first item, with `count` set to the number of items.
    pub facts: Facts,
    /// The message's id, sent as `Idempotency-Key` and in the Message-ID:
    /// the [`global_id`] of the item's key (or of one derived from all keys).
    pub message_key: String,
}

/// The queue of notifications to deliver.
#[derive(Debug, Clone)]
pub struct Outbox {
    /// The database's installation id, the first part of every message id.
    installation: String,
    policy: DeliveryPolicy,
    group_window: Duration,
    /// Characters an SMS may have, per notifier name.
    sms_limits: BTreeMap<String, usize>,
    items: BTreeMap<String, OutboxItem>,
    in_flight: BTreeMap<String, ()>,
}

impl Outbox {
    /// An empty outbox with the configured retry policy and group window,
    /// sending for the installation of this id (the store's [`installation_id`]).
    ///
    /// [`installation_id`]: crate::store::Store::installation_id
    pub fn new(cfg: &AlarmConfig, installation: &str) -> Outbox {
        let sms_limits = cfg
            .notifiers
            .iter()
            .filter_map(|n| match &n.kind {
                NotifierKind::Sms(s) => Some((n.name.clone(), s.max_length)),
                _ => None,
            })
            .collect();
        Outbox {
            installation: installation.to_string(),
            policy: cfg.delivery,
            group_window: cfg.group_window,
            sms_limits,
            items: BTreeMap::new(),
            in_flight: BTreeMap::new(),
        }
    }

    /// Resumes with the pending items a store kept.
    pub fn restore(&mut self, items: Vec<OutboxItem>) {
        for i in items {
            self.items.insert(i.key.clone(), i);
        }
    }

    /// Queues an item and returns it as queued; `None` (and nothing changes)
    /// when its key is known.
    /// Its first attempt joins a group waiting for the same recipient.
    pub fn enqueue(&mut self, mut item: OutboxItem, now: DateTime<Utc>) -> Option<OutboxItem> {
        if self.items.contains_key(&item.key) {
            return None;
        }
        let waiting = self
            .items
            .values()
            .filter(|i| {
                i.is_pending()
                    && i.attempts == 0
                    && i.notifier == item.notifier
                    && i.to == item.to
                    && !self.in_flight.contains_key(&i.key)
            })
            .map(|i| i.next_attempt)
            .max();
        item.created = now;
        item.next_attempt = hold_until(waiting, now, self.group_window);
        item.status = DeliveryStatus::Pending;
        self.items.insert(item.key.clone(), item.clone());
        Some(item)
    }

    /// The item of this key.
    pub fn item(&self, key: &str) -> Option<&OutboxItem> {
        self.items.get(key)
    }

    /// Items still pending.
    pub fn pending(&self) -> impl Iterator<Item = &OutboxItem> {
        self.items.values().filter(|i| i.is_pending())
    }

    /// Hands out every due item, one [`Delivery`] per recipient and
    /// notifier; they stay in flight until reported back.
    pub fn due(&mut self, now: DateTime<Utc>) -> Vec<Delivery> {
        let mut groups: BTreeMap<(String, String, String, String), Vec<String>> = BTreeMap::new();
        for i in self.items.values() {
            if i.is_pending() && i.next_attempt <= now && !self.in_flight.contains_key(&i.key) {
                // Without a group window every item is its own message.
                let alone = if self.group_window.is_zero() {
                    i.key.clone()
                } else {
                    String::new()
                };
                groups
                    .entry((i.notifier.clone(), i.to.clone(), i.contact.clone(), alone))
                    .or_default()
                    .push(i.key.clone());
            }
        }
        let mut out = Vec::new();
        for ((notifier, to, contact, _), mut keys) in groups {
            keys.sort_by_key(|k| self.items.get(k).map(|i| (i.created, i.key.clone())));
            let items: Vec<&OutboxItem> = keys.iter().filter_map(|k| self.items.get(k)).collect();
            let parts: Vec<(&str, &str)> = items
                .iter()
                .map(|i| (i.subject.as_str(), i.body.as_str()))
                .collect();
            let (subject, body) = compose(&parts, self.sms_limits.get(&notifier).copied());
            let mut facts = items.first().map(|i| i.facts.clone()).unwrap_or_default();
            facts.set("count", items.len().to_string());
            let key = if keys.len() == 1 {
                keys[0].clone()
            } else {
                format!("group-{:016x}", fnv1a(&keys.join("\n")))
            };
            let message_key = global_id(&self.installation, &key);
            for k in &keys {
                self.in_flight.insert(k.clone(), ());
            }
            out.push(Delivery {
                keys,
                notifier,
                contact,
                to,
                subject,
                body,
                facts,
                message_key,
            });
        }
        out
    }

    /// The delivery went out: its items are done for good.
    pub fn delivered(&mut self, keys: &[String], now: DateTime<Utc>) -> Vec<OutboxItem> {
        keys.iter()
            .filter_map(|k| {
                self.in_flight.remove(k);
                let i = self.items.get_mut(k)?;
                i.status = DeliveryStatus::Sent { at: now };
                Some(i.clone())
            })
            .collect()
    }

    /// The delivery failed: schedules the next attempt with backoff, or gives up.
    pub fn failed(&mut self, keys: &[String], error: &str, now: DateTime<Utc>) -> Vec<OutboxItem> {
        let policy = self.policy;
        keys.iter()
            .filter_map(|k| {
                self.in_flight.remove(k);
                let i = self.items.get_mut(k)?;
                i.attempts += 1;
                i.last_error = Some(error.to_string());
                let age = (now - i.created).to_std().unwrap_or_default();
                if age >= policy.give_up_after {
                    i.status = DeliveryStatus::GaveUp;
                } else {
                    let wait = backoff(&policy, i.attempts);
                    i.next_attempt = now + chrono::Duration::from_std(wait).unwrap_or_default();
                }
                Some(i.clone())
            })
            .collect()
    }

    /// Drops an item that must not be sent (e.g. the store already knew its key).
    pub fn forget(&mut self, key: &str) {
        self.items.remove(key);
        self.in_flight.remove(key);
    }

    /// When the next pending item comes due.
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        self.pending()
            .filter(|i| !self.in_flight.contains_key(&i.key))
            .map(|i| i.next_attempt)
            .min()
    }

    /// Forgets delivered and given-up items older than `keep` (the store keeps the history).
    pub fn prune(&mut self, now: DateTime<Utc>, keep: Duration) {
        let keep = chrono::Duration::from_std(keep).unwrap_or_default();
        self.items
            .retain(|_, i| i.is_pending() || now - i.created < keep);
    }
}

/// Wait after the `attempts`-th failure: `first_retry * 2^(attempts-1)`, at most `max_retry`.
pub fn backoff(policy: &DeliveryPolicy, attempts: u32) -> Duration {
    let exp = attempts.saturating_sub(1).min(30);
    policy
        .first_retry
        .checked_mul(1u32 << exp)
        .unwrap_or(policy.max_retry)
        .min(policy.max_retry)
}

/// A message's id in every database and installation: the installation id
/// and the notification's key (`ALARM:RULE:ROUND:CONTACT:NOTIFIER`,
/// `ALARM:recovery:CONTACT:NOTIFIER`, `ALARM:ack:CONTACT:NOTIFIER`,
/// `group-HASH`), its `:`-separated parts joined with dots. A valid
/// RFC 5322 dot-atom and HTTP header value: letters, digits, `-` and `_`
/// stay, any other byte becomes `=XX`, an empty part `=`; so two keys never
/// share an id. The same key always gives the same id (retries, restarts).
pub fn global_id(installation: &str, key: &str) -> String {
    let mut parts = vec![atom(installation)];
    parts.extend(key.split(':').map(atom));
    parts.join(".")
}

/// One part of a [`global_id`], escaped as described there.
fn atom(part: &str) -> String {
    if part.is_empty() {
        return "=".into();
    }
    let mut out = String::with_capacity(part.len());
    for b in part.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("={b:02X}"));
        }
    }
    out
}

fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().expect("time")
    }

    fn item(key: &str, to: &str) -> OutboxItem {
        OutboxItem {
            key: key.into(),
            alarm_id: 1,
            contact: "alice".into(),
            notifier: "mail".into(),
            to: to.into(),
            subject: format!("subject {key}"),
            body: format!("body {key}"),
            facts: Facts::default(),
            created: t("2026-12-01T10:00:00Z"),
            next_attempt: t("2026-12-01T10:00:00Z"),
            attempts: 0,
            status: DeliveryStatus::Pending,
            last_error: None,
        }
    }

    fn outbox(window_s: u64) -> Outbox {
        let cfg = AlarmConfig {
            group_window: Duration::from_secs(window_s),
            delivery: DeliveryPolicy {
                first_retry: Duration::from_secs(10),
                max_retry: Duration::from_secs(300),
                give_up_after: Duration::from_secs(3600),
            },
            ..AlarmConfig::default()
        };
        Outbox::new(&cfg, INSTALLATION)
    }

    const INSTALLATION: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn global_ids_are_dot_atoms_and_never_shared() {
        let cases = [
            (
                "1:svc:1:admin:sms",
                "0123456789abcdef0123456789abcdef.1.svc.1.admin.sms",
            ),
            (
                "12:recovery:admin:mail",
                "0123456789abcdef0123456789abcdef.12.recovery.admin.mail",
            ),
            (
                "3:db.main:2:on_call:sms-gw",
                "0123456789abcdef0123456789abcdef.3.db=2Emain.2.on_call.sms-gw",
            ),
            (
                "4:ack::Jörg",
                "0123456789abcdef0123456789abcdef.4.ack.=.J=C3=B6rg",
            ),
            (
                "group-00ff00ff00ff00ff",
                "0123456789abcdef0123456789abcdef.group-00ff00ff00ff00ff",
            ),
        ];
        for (key, want) in cases {
            let id = global_id(INSTALLATION, key);
            assert_eq!(id, want, "{key}");
            // RFC 5322 dot-atom-text: atext runs separated by single dots.
            assert!(
                id.split('.').all(|a| !a.is_empty()
                    && a.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "=-_".contains(c))),
                "{id}"
            );
        }
        // Keys that a plain character swap would merge stay apart.
        let a = global_id(INSTALLATION, "1:recovery:a-b:mail");
        let b = global_id(INSTALLATION, "1:recovery:a:b-mail");
        assert_ne!(a, b);
        // The same key of another installation is another id.
        assert_ne!(
            global_id(INSTALLATION, "1:svc:1:admin:sms"),
            global_id("fedcba9876543210fedcba9876543210", "1:svc:1:admin:sms")
        );
    }

    #[test]
    fn a_message_keeps_its_id_across_retries_and_a_restart() {
        let mut o = outbox(0);
        let now = t("2026-12-01T10:00:00Z");
        o.enqueue(item("1:svc:1:admin:sms", "a@x"), now);
        let first = o.due(now).remove(0);
        assert_eq!(
            first.message_key,
            global_id(INSTALLATION, "1:svc:1:admin:sms")
        );
        let pending = o.failed(&first.keys, "refused", now);
        let mut restarted = outbox(0);
        restarted.restore(pending);
        let later = now + chrono::Duration::hours(1);
        let again = restarted.due(later).remove(0);
        assert_eq!(again.message_key, first.message_key);
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let p = DeliveryPolicy {
            first_retry: Duration::from_secs(10),
            max_retry: Duration::from_secs(300),
            give_up_after: Duration::from_secs(3600),
        };
        let want = [10, 20, 40, 80, 160, 300, 300];
        for (i, w) in want.iter().enumerate() {
            assert_eq!(
                backoff(&p, i as u32 + 1),
                Duration::from_secs(*w),
                "attempt {}",
                i + 1
            );
        }
        assert_eq!(backoff(&p, 1000), Duration::from_secs(300));
    }

    #[test]
    fn a_key_is_queued_once() {
        let mut o = outbox(0);
        let now = t("2026-12-01T10:00:00Z");
        assert!(o.enqueue(item("k1", "a@x"), now).is_some());
        assert!(o.enqueue(item("k1", "a@x"), now).is_none());
        let d = o.due(now);
        assert_eq!(d.len(), 1);
        o.delivered(&d[0].keys, now);
        assert!(o.enqueue(item("k1", "a@x"), now).is_none());
        assert!(o.due(now + chrono::Duration::hours(1)).is_empty());
    }

    #[test]
    fn storm_goes_out_as_one_message_per_recipient_and_window() {
        let mut o = outbox(30);
        let start = t("2026-12-01T10:00:00Z");
        for i in 0..40 {
            let at = start + chrono::Duration::milliseconds(i * 500);
            o.enqueue(item(&format!("k{i:02}"), "alice@x"), at);
        }
        o.enqueue(item("other", "bob@x"), start);
        assert!(o.due(start + chrono::Duration::seconds(29)).is_empty());
        let d = o.due(start + chrono::Duration::seconds(30));
        assert_eq!(d.len(), 2);
        let alice = d.iter().find(|d| d.to == "alice@x").expect("alice");
        assert_eq!(alice.keys.len(), 40);
        assert!(alice.subject.starts_with("[laxmon] 40 notifications"));
        assert_eq!(alice.facts.get("count"), "40");
        // A notification after the group went out opens a new group.
        let later = start + chrono::Duration::seconds(31);
        let next = o.enqueue(item("late", "alice@x"), later).expect("queued");
        assert_eq!(next.next_attempt, later + chrono::Duration::seconds(30));
    }

    #[test]
    fn failures_back_off_then_give_up() {
        let mut o = outbox(0);
        let mut now = t("2026-12-01T10:00:00Z");
        o.enqueue(item("k", "a@x"), now);
        let mut waits = Vec::new();
        loop {
            let d = o.due(now);
            assert_eq!(d.len(), 1);
            let changed = o.failed(&d[0].keys, "connection refused", now);
            if changed[0].status == DeliveryStatus::GaveUp {
                break;
            }
            let next = o.next_due().expect("retry planned");
            waits.push((next - now).num_seconds());
            assert!(o.due(next - chrono::Duration::seconds(1)).is_empty());
            now = next;
        }
        assert_eq!(&waits[..6], &[10, 20, 40, 80, 160, 300]);
        assert!(o.next_due().is_none());
        assert_eq!(
            o.item("k").map(|i| i.last_error.clone()),
            Some(Some("connection refused".into()))
        );
    }

    #[test]
    fn in_flight_items_are_not_handed_out_twice() {
        let mut o = outbox(0);
        let now = t("2026-12-01T10:00:00Z");
        o.enqueue(item("k", "a@x"), now);
        assert_eq!(o.due(now).len(), 1);
        assert!(o.due(now).is_empty());
    }
}
