//! laxmon's own notification texts: what a notifier sends when its
//! `subject:`/`body:`/`text:`/`title:`/`message:` is not configured.
//!
//! Each kind of notification says what it is: a problem asks for action, an
//! escalation and a reminder say how long nobody has reacted, an
//! acknowledgement says who took it, and a recovery says how long the
//! problem lasted and asks for nothing. Mail gets the whole story, an SMS one
//! line of GSM characters with the output last (so a cut loses the least),
//! popups and webhooks a headline and a short message. Pure: facts in, text
//! out; never reads a clock or the configuration.

use super::facts::Facts;

/// What a notification is about, as the texts tell it apart (the fact
/// `notification_kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The first page of a problem.
    Problem,
    /// Nobody acknowledged in time: the next level is paged.
    Escalation,
    /// The problem is still there and still not acknowledged.
    Reminder,
    /// Someone acknowledged the alarm.
    Acknowledgement,
    /// The check recovered; the alarm is resolved.
    Recovery,
}

impl Kind {
    /// The kind the facts name (`notification_kind`, else `notification_type`); a problem when neither says.
    pub(crate) fn of(facts: &Facts) -> Kind {
        let named = match facts.get("notification_kind") {
            "" => facts.get("notification_type"),
            k => k,
        };
        match named {
            "ESCALATION" => Kind::Escalation,
            "REMINDER" => Kind::Reminder,
            "ACKNOWLEDGEMENT" => Kind::Acknowledgement,
            "RECOVERY" => Kind::Recovery,
            _ => Kind::Problem,
        }
    }
}

/// Which kind of notifier a text is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Channel {
    /// A mail: subject and a body of several lines.
    Mail,
    /// An SMS: no subject, one short line.
    Sms,
    /// An ntfy popup: title and a short message.
    Popup,
    /// A webhook (chat): like a popup.
    Webhook,
}

/// A rendered subject (mail subject, popup title; empty for SMS) and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Text {
    /// Mail subject or popup title.
    pub subject: String,
    /// Mail body, SMS text or popup message.
    pub body: String,
}

/// laxmon's default text of this notification for this channel.
pub(crate) fn default_text(channel: Channel, facts: &Facts) -> Text {
    let kind = Kind::of(facts);
    match channel {
        Channel::Mail => Text {
            subject: format!("[laxmon] {}", headline(kind, facts)),
            body: mail_body(kind, facts),
        },
        Channel::Sms => Text {
            subject: String::new(),
            body: sms(kind, facts),
        },
        Channel::Popup | Channel::Webhook => Text {
            subject: headline(kind, facts),
            body: short_message(kind, facts),
        },
    }
}

/// One line saying what happened: `RECOVERED: web on cs1 is OK again after 4m 12s`.
fn headline(kind: Kind, f: &Facts) -> String {
    let (check, host, state, since) = (
        f.get("check"),
        f.get("host"),
        f.get("state"),
        f.get("since"),
    );
    match kind {
        Kind::Problem => format!("PROBLEM: {check} on {host} is {state}"),
        Kind::Escalation => format!("ESCALATION: {check} on {host} is still {state} after {since}"),
        Kind::Reminder => format!("REMINDER: {check} on {host} is still {state} after {since}"),
        Kind::Acknowledgement => format!(
            "ACKNOWLEDGED: {check} on {host} ({state}) by {}",
            f.get("ack_by")
        ),
        Kind::Recovery => format!("RECOVERED: {check} on {host} is {state} again after {since}"),
    }
}

/// The mail body: what happened, the check's output, and what to do (nothing, for a recovery).
fn mail_body(kind: Kind, f: &Facts) -> String {
    let (check, host, state, since, id) = (
        f.get("check"),
        f.get("host"),
        f.get("state"),
        f.get("since"),
        f.get("alarm_id"),
    );
    let at = match f.get("address") {
        "" => format!("{check} on {host}"),
        a if a == host => format!("{check} on {host}"),
        a => format!("{check} on {host} ({a})"),
    };
    let mut lines: Vec<String> = Vec::new();
    match kind {
        Kind::Problem => lines.push(format!(
            "{at} is {state} ({}, attempt {}/{}).",
            f.get("state_type"),
            f.get("attempt"),
            f.get("max_attempts")
        )),
        Kind::Escalation => lines.push(format!(
            "{at} is still {state} after {since}, and nobody has acknowledged it: escalated to level {} of rule {}.",
            f.get("level"),
            f.get("rule")
        )),
        Kind::Reminder => lines.push(format!(
            "{at} is still {state} after {since}, and nobody has acknowledged it."
        )),
        Kind::Acknowledgement => {
            lines.push(format!(
                "{} acknowledged alarm {id}: {at} is {state}, for {since} now.",
                f.get("ack_by")
            ));
            if !f.get("ack_comment").is_empty() {
                lines.push(format!("Comment: {}", f.get("ack_comment")));
            }
            lines.push(String::new());
            lines.push(
                "Reminders and escalations stop; the alarm stays open until the check recovers."
                    .into(),
            );
        }
        Kind::Recovery => lines.push(format!(
            "{at} recovered after {since}: it is {state} again (it was {}).",
            f.get("previous_state")
        )),
    }
    lines.push(String::new());
    lines.push(f.get("output").to_string());
    if !f.get("long_output").is_empty() {
        lines.push(f.get("long_output").to_string());
    }
    lines.push(String::new());
    let opened = f.get("opened");
    lines.push(match kind {
        Kind::Recovery => format!(
            "Alarm {id} (rule {}) was open from {opened} to {} and is resolved.",
            f.get("rule"),
            f.get("time")
        ),
        _ => format!("Alarm {id} (rule {}), open since {opened}.", f.get("rule")),
    });
    if !f.get("note").is_empty() {
        lines.push(f.get("note").to_string());
    }
    if matches!(kind, Kind::Problem | Kind::Escalation | Kind::Reminder) {
        lines.push(format!("Acknowledge: laxmon ack {id}"));
    }
    let mut body = lines.join("\n");
    body.push('\n');
    body
}

/// One SMS line of GSM 7-bit characters; the check's output comes last, so
/// that cutting to the gateway's length loses only the end of it.
fn sms(kind: Kind, f: &Facts) -> String {
    let who = format!(
        "#{} {}@{}",
        f.get("alarm_id"),
        f.get("check"),
        f.get("host")
    );
    let (state, since, output) = (f.get("state"), f.get("since"), f.get("output"));
    let with_output = |head: String| match output {
        "" => head,
        o => format!("{head}: {o}"),
    };
    match kind {
        Kind::Problem => with_output(format!("PROBLEM {who} {state}")),
        Kind::Escalation => with_output(format!("ESCALATION {who} {state} for {since}, not acked")),
        Kind::Reminder => with_output(format!("REMINDER {who} still {state} after {since}")),
        Kind::Acknowledgement => match f.get("ack_comment") {
            "" => format!("ACK {who} {state} by {}", f.get("ack_by")),
            c => format!("ACK {who} {state} by {}: {c}", f.get("ack_by")),
        },
        Kind::Recovery => format!(
            "RECOVERED {who} {state} after {since} (was {})",
            f.get("previous_state")
        ),
    }
}

/// A popup's or chat message's body: the output and, while open, how to acknowledge.
fn short_message(kind: Kind, f: &Facts) -> String {
    let (id, output) = (f.get("alarm_id"), f.get("output"));
    match kind {
        Kind::Problem => format!("{output}\nAlarm {id}. Acknowledge: laxmon ack {id}"),
        Kind::Escalation | Kind::Reminder => {
            format!("{output}\nAlarm {id}, not acknowledged. Acknowledge: laxmon ack {id}")
        }
        Kind::Acknowledgement => match f.get("ack_comment") {
            "" => format!("Alarm {id} acknowledged by {}.", f.get("ack_by")),
            c => format!("Alarm {id} acknowledged by {}: {c}", f.get("ack_by")),
        },
        Kind::Recovery => format!("{output}\nAlarm {id} resolved."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Alarm 7: `web` on `cs1` CRITICAL since 10:00, as the lifecycle writes the facts.
    fn facts(kind: &str, notification_type: &str) -> Facts {
        let mut f = Facts::default();
        for (k, v) in [
            ("alarm_id", "7"),
            ("check", "web"),
            ("host", "cs1"),
            ("address", "192.0.2.10"),
            ("state", "CRITICAL"),
            ("previous_state", "OK"),
            ("state_type", "HARD"),
            ("attempt", "3"),
            ("max_attempts", "3"),
            ("output", "connection refused"),
            ("rule", "page"),
            ("level", "0"),
            ("opened", "2026-12-01T10:00:00+00:00"),
            ("time", "2026-12-01T10:30:00+00:00"),
            ("since", "30m"),
            ("notification_type", notification_type),
            ("notification_kind", kind),
        ] {
            f.set(k, v);
        }
        match kind {
            "ESCALATION" => f.set("level", "1"),
            "REMINDER" => f.set("since", "1h"),
            "ACKNOWLEDGEMENT" => {
                f.set("since", "12m");
                f.set("ack_by", "alice");
                f.set("ack_comment", "on it");
            }
            "RECOVERY" => {
                f.set("state", "OK");
                f.set("previous_state", "CRITICAL");
                f.set("since", "4m 12s");
                f.set("time", "2026-12-01T10:04:12+00:00");
                f.set("output", "port 80 open");
            }
            _ => {}
        }
        f
    }

    const KINDS: [(&str, &str); 5] = [
        ("PROBLEM", "PROBLEM"),
        ("ESCALATION", "PROBLEM"),
        ("REMINDER", "PROBLEM"),
        ("ACKNOWLEDGEMENT", "ACKNOWLEDGEMENT"),
        ("RECOVERY", "RECOVERY"),
    ];

    #[test]
    fn the_kind_comes_from_the_facts() {
        let cases = [
            ("PROBLEM", "PROBLEM", Kind::Problem),
            ("ESCALATION", "PROBLEM", Kind::Escalation),
            ("REMINDER", "PROBLEM", Kind::Reminder),
            ("ACKNOWLEDGEMENT", "ACKNOWLEDGEMENT", Kind::Acknowledgement),
            ("RECOVERY", "RECOVERY", Kind::Recovery),
            // Facts without the finer kind fall back to Nagios's type.
            ("", "RECOVERY", Kind::Recovery),
            ("", "", Kind::Problem),
        ];
        for (kind, ty, want) in cases {
            assert_eq!(Kind::of(&facts(kind, ty)), want, "{kind}/{ty}");
        }
    }

    #[test]
    fn mail_subjects_and_bodies() {
        let want: [(&str, &str, &str); 5] = [
            (
                "PROBLEM",
                "[laxmon] PROBLEM: web on cs1 is CRITICAL",
                "web on cs1 (192.0.2.10) is CRITICAL (HARD, attempt 3/3).\n\
                 \n\
                 connection refused\n\
                 \n\
                 Alarm 7 (rule page), open since 2026-12-01T10:00:00+00:00.\n\
                 Acknowledge: laxmon ack 7\n",
            ),
            (
                "ESCALATION",
                "[laxmon] ESCALATION: web on cs1 is still CRITICAL after 30m",
                "web on cs1 (192.0.2.10) is still CRITICAL after 30m, and nobody has acknowledged it: escalated to level 1 of rule page.\n\
                 \n\
                 connection refused\n\
                 \n\
                 Alarm 7 (rule page), open since 2026-12-01T10:00:00+00:00.\n\
                 Acknowledge: laxmon ack 7\n",
            ),
            (
                "REMINDER",
                "[laxmon] REMINDER: web on cs1 is still CRITICAL after 1h",
                "web on cs1 (192.0.2.10) is still CRITICAL after 1h, and nobody has acknowledged it.\n\
                 \n\
                 connection refused\n\
                 \n\
                 Alarm 7 (rule page), open since 2026-12-01T10:00:00+00:00.\n\
                 Acknowledge: laxmon ack 7\n",
            ),
            (
                "ACKNOWLEDGEMENT",
                "[laxmon] ACKNOWLEDGED: web on cs1 (CRITICAL) by alice",
                "alice acknowledged alarm 7: web on cs1 (192.0.2.10) is CRITICAL, for 12m now.\n\
                 Comment: on it\n\
                 \n\
                 Reminders and escalations stop; the alarm stays open until the check recovers.\n\
                 \n\
                 connection refused\n\
                 \n\
                 Alarm 7 (rule page), open since 2026-12-01T10:00:00+00:00.\n",
            ),
            (
                "RECOVERY",
                "[laxmon] RECOVERED: web on cs1 is OK again after 4m 12s",
                "web on cs1 (192.0.2.10) recovered after 4m 12s: it is OK again (it was CRITICAL).\n\
                 \n\
                 port 80 open\n\
                 \n\
                 Alarm 7 (rule page) was open from 2026-12-01T10:00:00+00:00 to 2026-12-01T10:04:12+00:00 and is resolved.\n",
            ),
        ];
        for ((kind, ty), (wkind, subject, body)) in KINDS.iter().zip(want) {
            assert_eq!(*kind, wkind);
            let t = default_text(Channel::Mail, &facts(kind, ty));
            assert_eq!(t.subject, subject, "{kind}");
            assert_eq!(t.body, body, "{kind}");
        }
    }

    #[test]
    fn only_open_alarms_ask_for_an_acknowledgement() {
        for (kind, ty) in KINDS {
            let f = facts(kind, ty);
            let asks = matches!(kind, "PROBLEM" | "ESCALATION" | "REMINDER");
            for channel in [
                Channel::Mail,
                Channel::Sms,
                Channel::Popup,
                Channel::Webhook,
            ] {
                let t = default_text(channel, &f);
                let text = format!("{}\n{}", t.subject, t.body);
                // An SMS has no room for the hint; its `#7` names the alarm.
                let hint = asks && channel != Channel::Sms;
                assert_eq!(
                    text.contains("laxmon ack"),
                    hint,
                    "{kind} {channel:?}: {text}"
                );
            }
        }
    }

    #[test]
    fn mail_body_carries_long_output_and_note_when_there_are_any() {
        let mut f = facts("PROBLEM", "PROBLEM");
        f.set("long_output", "line 2\nline 3");
        f.set("note", "restart loop: 3 restarts within 5 cycles");
        f.set("address", "cs1");
        let body = default_text(Channel::Mail, &f).body;
        assert_eq!(
            body,
            "web on cs1 is CRITICAL (HARD, attempt 3/3).\n\
             \n\
             connection refused\n\
             line 2\n\
             line 3\n\
             \n\
             Alarm 7 (rule page), open since 2026-12-01T10:00:00+00:00.\n\
             restart loop: 3 restarts within 5 cycles\n\
             Acknowledge: laxmon ack 7\n"
        );
    }

    #[test]
    fn sms_texts() {
        let want = [
            "PROBLEM #7 web@cs1 CRITICAL: connection refused",
            "ESCALATION #7 web@cs1 CRITICAL for 30m, not acked: connection refused",
            "REMINDER #7 web@cs1 still CRITICAL after 1h: connection refused",
            "ACK #7 web@cs1 CRITICAL by alice: on it",
            "RECOVERED #7 web@cs1 OK after 4m 12s (was CRITICAL)",
        ];
        for ((kind, ty), want) in KINDS.iter().zip(want) {
            let t = default_text(Channel::Sms, &facts(kind, ty));
            assert_eq!(t.subject, "", "{kind}");
            assert_eq!(t.body, want, "{kind}");
        }
        let mut f = facts("ACKNOWLEDGEMENT", "ACKNOWLEDGEMENT");
        f.set("ack_comment", "");
        assert_eq!(
            default_text(Channel::Sms, &f).body,
            "ACK #7 web@cs1 CRITICAL by alice"
        );
    }

    /// GSM 03.38's basic character set: one septet each (the extension
    /// table's `{}[]~|^\\€` cost two).
    fn is_gsm_basic(c: char) -> bool {
        c.is_ascii_alphanumeric()
            || " @$\n\r!\"#%&'()*+,-./:;<=>?_".contains(c)
            || "£¥èéùìòÇØøÅåΔΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà".contains(c)
    }

    #[test]
    fn sms_texts_stay_within_one_gsm_message_with_a_typical_output() {
        for (kind, ty) in KINDS {
            let mut f = facts(kind, ty);
            f.set("check", "apache-frontend-01");
            f.set("host", "cs1-rack4.example.org");
            f.set("alarm_id", "123456");
            f.set("since", "23h 59m");
            if kind != "RECOVERY" {
                f.set("state", "CRITICAL");
            }
            f.set(
                "output",
                "HTTP CRITICAL - Unable to open TCP socket: connection refused",
            );
            let sms = default_text(Channel::Sms, &f).body;
            assert!(sms.chars().count() <= 160, "{kind}: {} {sms}", sms.len());
            assert!(sms.chars().all(is_gsm_basic), "{kind}: {sms}");
        }
    }

    #[test]
    fn popup_and_webhook_texts() {
        let want: [(&str, &str); 5] = [
            (
                "PROBLEM: web on cs1 is CRITICAL",
                "connection refused\nAlarm 7. Acknowledge: laxmon ack 7",
            ),
            (
                "ESCALATION: web on cs1 is still CRITICAL after 30m",
                "connection refused\nAlarm 7, not acknowledged. Acknowledge: laxmon ack 7",
            ),
            (
                "REMINDER: web on cs1 is still CRITICAL after 1h",
                "connection refused\nAlarm 7, not acknowledged. Acknowledge: laxmon ack 7",
            ),
            (
                "ACKNOWLEDGED: web on cs1 (CRITICAL) by alice",
                "Alarm 7 acknowledged by alice: on it",
            ),
            (
                "RECOVERED: web on cs1 is OK again after 4m 12s",
                "port 80 open\nAlarm 7 resolved.",
            ),
        ];
        for ((kind, ty), (title, message)) in KINDS.iter().zip(want) {
            for channel in [Channel::Popup, Channel::Webhook] {
                let t = default_text(channel, &facts(kind, ty));
                assert_eq!(t.subject, title, "{kind} {channel:?}");
                assert_eq!(t.body, message, "{kind} {channel:?}");
            }
        }
    }
}
