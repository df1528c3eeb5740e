//! The alarm stage: feeds check results to the alarm lifecycle (from its
//! [`intake`](super::intake), which keeps per check what the lifecycle can
//! tell apart), carries out the effects (persist alarms, queue
//! notifications, run actions), delivers the outbox, applies what
//! `laxmon ack`/`unack` asked for and the silences in the store (both
//! polled), and answers the [`control`](super::control) handle.
//!
//! One task owns the lifecycle and the outbox; actions run as tasks of
//! their own and report back, so a slow restart never holds up alarms.
//! Persistence goes through the store; a failed write is logged and retried
//! with the next snapshot, never allowed to stop alarms or notifications.

use super::control::{AlarmControl, AlarmView, ControlError, Inbox, Request};
use super::intake::IntakeReceiver;
use crate::actions::notify::{self, Notifiers};
use crate::alarm::lifecycle::{AckTerms, ActionRequest, AlarmError, AlarmId, Alarms, Effect};
use crate::alarm::outbox::{Delivery, DeliveryStatus, Outbox};
use crate::alarm::silence::Silence;
use crate::alarm::store::{ActionRun, AlarmStore, NotificationStore};
use crate::config::alarms::Action;
use crate::config::Config;
use crate::store::{AlarmRequestOp, AlarmRow, Store, StoreError};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// How often requests of `laxmon ack`/`unack` and changed silences are looked for.
const ACK_POLL: Duration = Duration::from_secs(2);
/// The longest the stage sleeps without looking at timers.
const MAX_SLEEP: Duration = Duration::from_secs(30);
/// How long shutdown waits for running actions.
const ACTION_GRACE: Duration = Duration::from_secs(60);
/// How long shutdown waits for notifications being sent.
const DELIVERY_GRACE: Duration = Duration::from_secs(5);
/// How long delivered notifications stay in memory (the store keeps them all).
const OUTBOX_KEEP: Duration = Duration::from_secs(24 * 3600);

/// The alarm stage and everything it owns.
pub struct AlarmStage {
    config: Arc<Config>,
    store: Store,
    alarms: Alarms,
    outbox: Outbox,
    notifiers: Arc<Notifiers>,
    actions: JoinSet<ActionRun>,
    /// Deliveries being sent, each with its outcome.
    deliveries: JoinSet<(Delivery, Result<(), String>)>,
    /// Keys of notifications the store could not take yet (database away);
    /// written on every tick until it can.
    unsaved: Vec<String>,
    /// Handles `clusterreorg` and `restart-vm` actions.
    cluster_actions: Option<mpsc::UnboundedSender<ActionRequest>>,
    /// The silences in the store at restore, applied when the stage starts.
    restored_silences: Vec<Silence>,
    /// The handle to attach to when running.
    control: Option<AlarmControl>,
    /// The attached handle's inbox while running.
    inbox: Option<Inbox>,
}

impl AlarmStage {
    /// Restores the lifecycle and the outbox from the store.
    pub async fn restore(config: Arc<Config>, store: Store) -> anyhow::Result<AlarmStage> {
        let snapshot = store
            .load_snapshot()
            .await
            .map_err(|e| anyhow::anyhow!("cannot load the alarm state: {e}"))?;
        let alarms = Alarms::restore(&config, snapshot.unwrap_or_default());
        let installation = store
            .installation_id()
            .await
            .map_err(|e| anyhow::anyhow!("cannot read the installation id: {e}"))?;
        let mut outbox = Outbox::new(&config.alarms, &installation);
        let pending = store
            .pending()
            .await
            .map_err(|e| anyhow::anyhow!("cannot load the notification outbox: {e}"))?;
        if !pending.is_empty() {
            tracing::info!(
                pending = pending.len(),
                "resuming notifications from the outbox"
            );
        }
        outbox.restore(pending);
        let restored_silences = store
            .silences(false, Utc::now())
            .await
            .map_err(|e| anyhow::anyhow!("cannot load the silences: {e}"))?;
        let notifiers = Arc::new(Notifiers::new(&config.alarms)?);
        Ok(AlarmStage {
            config,
            store,
            alarms,
            outbox,
            notifiers,
            actions: JoinSet::new(),
            deliveries: JoinSet::new(),
            unsaved: Vec::new(),
            cluster_actions: None,
            restored_silences,
            control: None,
            inbox: None,
        })
    }

    /// Answers this control handle while running.
    pub fn with_control(mut self, control: AlarmControl) -> Self {
        self.control = Some(control);
        self
    }

    /// Sends `clusterreorg` and `restart-vm` requests to this channel.
    pub fn with_cluster_actions(mut self, tx: mpsc::UnboundedSender<ActionRequest>) -> Self {
        self.cluster_actions = Some(tx);
        self
    }

    /// Runs until `results` closes, then finishes running actions, records
    /// the cluster stage's last runs (from `cluster_done`) and makes one last
    /// delivery round.
    pub async fn run(
        mut self,
        mut results: IntakeReceiver,
        mut cluster_done: mpsc::UnboundedReceiver<ActionRun>,
    ) {
        let mut ack_poll = tokio::time::interval(ACK_POLL);
        ack_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let silences = std::mem::take(&mut self.restored_silences);
        let effects = self.alarms.set_silences(silences, Utc::now());
        self.handle(effects).await;
        self.inbox = self.control.as_ref().and_then(|c| {
            let inbox = c.attach();
            if inbox.is_none() {
                tracing::error!(
                    "another alarm stage holds the control handle; this one takes no requests"
                );
            }
            inbox
        });
        self.publish();
        tracing::info!(
            open = self.alarms.open_alarms().count(),
            silences = self.alarms.silences().count(),
            "alarm stage running"
        );
        self.publish_metrics();
        loop {
            let wake = self.next_wake();
            tokio::select! {
                r = results.recv() => match r {
                    Some(result) => {
                        let effects = self.alarms.observe(&result, Utc::now());
                        self.handle(effects).await;
                        self.deliver().await;
                        if !self.unsaved.is_empty() {
                            self.save_unsaved().await;
                        }
                    }
                    None => break,
                },
                Some(run) = cluster_done.recv() => self.record_run(run).await,
                Some(sent) = self.deliveries.join_next(), if !self.deliveries.is_empty() => self.delivered(sent).await,
                Some(done) = self.actions.join_next(), if !self.actions.is_empty() => {
                    match done {
                        Ok(run) => self.record_run(run).await,
                        Err(e) => tracing::error!(error = %e, "action task failed"),
                    }
                }
                _ = tokio::time::sleep(wake) => {
                    let now = Utc::now();
                    let effects = self.alarms.tick(now);
                    self.handle(effects).await;
                    self.deliver().await;
                    self.save_unsaved().await;
                    self.outbox.prune(now, OUTBOX_KEEP);
                }
                _ = ack_poll.tick() => {
                    self.apply_requests().await;
                    self.poll_silences().await;
                }
                Some(req) = next_request(&mut self.inbox) => {
                    self.control(req).await;
                    self.deliver().await;
                }
            }
        }
        // Requests now answer `Unavailable` at once, queued ones too.
        self.inbox = None;
        let deadline = tokio::time::sleep(ACTION_GRACE);
        tokio::pin!(deadline);
        while !self.actions.is_empty() {
            tokio::select! {
                Some(done) = self.actions.join_next() => {
                    if let Ok(run) = done {
                        self.record_run(run).await;
                    }
                }
                _ = &mut deadline => {
                    tracing::warn!(running = self.actions.len(), "actions still running at shutdown; abandoning them");
                    self.actions.abort_all();
                    break;
                }
            }
        }
        // The cluster stage finishes once it gets no more requests.
        self.cluster_actions = None;
        while let Some(run) = cluster_done.recv().await {
            self.record_run(run).await;
        }
        self.deliver().await;
        // Sends in flight get a short grace; one that hangs longer is
        // abandoned and stays pending in the store, to be sent after the
        // restart (with the same idempotency key).
        let grace = tokio::time::sleep(DELIVERY_GRACE);
        tokio::pin!(grace);
        while !self.deliveries.is_empty() {
            tokio::select! {
                Some(sent) = self.deliveries.join_next() => self.delivered(sent).await,
                _ = &mut grace => {
                    tracing::warn!(sending = self.deliveries.len(), "notifications still sending at shutdown; they stay queued");
                    self.deliveries.abort_all();
                    break;
                }
            }
        }
        self.save_unsaved().await;
        self.save_snapshot().await;
    }

    fn next_wake(&self) -> Duration {
        let now = Utc::now();
        [self.alarms.next_due(), self.outbox.next_due()]
            .into_iter()
            .flatten()
            .map(|t| (t - now).to_std().unwrap_or(Duration::ZERO))
            .min()
            .unwrap_or(MAX_SLEEP)
            .min(MAX_SLEEP)
    }

    /// Carries out the lifecycle's effects. Actions start only after the
    /// alarm state that says they were handed out is stored, so that a
    /// restart finds a delayed action either still due or known to have run.
    async fn handle(&mut self, effects: Vec<Effect>) {
        let any = !effects.is_empty();
        let mut changed = false;
        let mut runs = Vec::new();
        for effect in effects {
            match effect {
                Effect::Alarm(id) => {
                    changed = true;
                    if let Some(alarm) = self.alarms.alarm(id) {
                        if let Err(e) = self.store.save_alarm(alarm).await {
                            tracing::error!(alarm = id, error = %e, "cannot store alarm");
                        }
                    }
                }
                Effect::Notify(n) => {
                    let r = notify::enqueue(
                        &mut self.outbox,
                        &self.store,
                        &self.config.alarms,
                        &n,
                        Utc::now(),
                    )
                    .await;
                    if let Err(e) = r {
                        tracing::error!(key = %n.key, error = %e, "cannot store notification yet; it is sent from memory and stored when the database is back");
                        self.unsaved.push(n.key.clone());
                    }
                }
                Effect::Run(req) => runs.push(req),
            }
        }
        if changed || !runs.is_empty() {
            self.save_snapshot().await;
        }
        if changed {
            self.publish();
        }
        for req in runs {
            self.start_action(req);
        }
        if any {
            self.publish_metrics();
        }
    }

    /// Open alarms and the outbox backlog, for `/metrics` and the status.
    fn publish_metrics(&self) {
        let open = self
            .alarms
            .open_alarms()
            .map(|a| (a.state, a.ack.is_some()));
        crate::metrics::set_open_alarms(open);
        crate::metrics::set_outbox_pending(self.outbox.pending().count());
    }

    /// Starts one action: cluster actions go to the cluster stage, the
    /// rest run as tasks of their own that report back to [`Self::record_run`].
    fn start_action(&mut self, req: ActionRequest) {
        tracing::info!(alarm = req.alarm_id, check = %req.check, rule = %req.rule, action = req.action.kind(), "running action");
        match &req.action {
            Action::ClusterReorg { .. } | Action::RestartVm { .. } => match &self.cluster_actions {
                Some(tx) => {
                    let _ = tx.send(req);
                }
                None => tracing::error!(
                    action = req.action.kind(),
                    "no cluster is configured to carry out this action"
                ),
            },
            _ => {
                let config = Arc::clone(&self.config);
                self.actions
                    .spawn(async move { crate::actions::restart::run(&req, &config).await });
            }
        }
    }

    async fn record_run(&mut self, run: ActionRun) {
        crate::metrics::action_finished(&run.action, run.succeeded(), run.timed_out);
        tracing::info!(alarm = run.alarm_id, action = %run.action, exit_code = ?run.exit_code, timed_out = run.timed_out, duration_ms = run.duration.as_secs_f64() * 1000.0, "action finished");
        if let Err(e) = self.store.save_action_run(&run).await {
            tracing::error!(error = %e, "cannot store action run");
        }
    }

    /// Starts sending everything due; each send reports back to [`Self::delivered`].
    async fn deliver(&mut self) {
        for d in self.outbox.due(Utc::now()) {
            let notifiers = Arc::clone(&self.notifiers);
            self.deliveries.spawn(async move {
                let result = notifiers.send(&d).await.map_err(|e| e.to_string());
                (d, result)
            });
        }
    }

    async fn delivered(
        &mut self,
        sent: Result<(Delivery, Result<(), String>), tokio::task::JoinError>,
    ) {
        match sent {
            Ok((d, result)) => {
                let notifier = self.config.alarms.notifier(&d.notifier);
                let channel = notifier.map_or("", |n| n.kind.name());
                crate::metrics::notification(channel, result.is_ok());
                if let Err(e) =
                    notify::record_delivery(&mut self.outbox, &self.store, &d, result, Utc::now())
                        .await
                {
                    tracing::error!(error = %e, "cannot record a delivery in the store");
                }
                self.publish_metrics();
            }
            Err(e) => tracing::error!(error = %e, "delivery task failed"),
        }
    }

    /// Stores the notifications the database could not take before, with
    /// what happened to them since (sent, given up), so a restart neither
    /// loses nor resends them.
    async fn save_unsaved(&mut self) {
        let keys = std::mem::take(&mut self.unsaved);
        for key in keys {
            let Some(item) = self.outbox.item(&key).cloned() else {
                continue;
            };
            let saved = async {
                self.store.enqueue(&item).await?;
                match item.status {
                    DeliveryStatus::Pending => Ok(()),
                    DeliveryStatus::Sent { at } => self.store.mark_sent(&item.key, at).await,
                    DeliveryStatus::GaveUp => {
                        let error = item.last_error.clone().unwrap_or_default();
                        self.store
                            .mark_failed(&item.key, item.attempts, &error, None)
                            .await
                    }
                }
            };
            if saved.await.is_err() {
                self.unsaved.push(key);
            }
        }
    }

    /// Applies what `laxmon ack` and `laxmon unack` asked for, in order,
    /// and notes each outcome in the store.
    async fn apply_requests(&mut self) {
        let requests = match self.store.pending_alarm_requests().await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "cannot read alarm requests");
                return;
            }
        };
        for req in requests {
            let now = Utc::now();
            // Applied now, so the alarm's history stays in time order (the
            // request keeps when it was asked for); an acknowledgement that
            // expired before the daemon could apply it is refused.
            let (what, applied) = match &req.op {
                AlarmRequestOp::Ack(terms) => (
                    "acknowledged",
                    self.alarms.acknowledge_with(req.alarm_id, terms, now),
                ),
                AlarmRequestOp::Unack { by } => (
                    "unacknowledged",
                    self.alarms.unacknowledge(req.alarm_id, by, now),
                ),
            };
            let outcome = match applied {
                Ok(effects) => {
                    tracing::info!(alarm = req.alarm_id, request = req.id, "alarm {what}");
                    self.handle(effects).await;
                    "applied".to_string()
                }
                Err(e) => {
                    tracing::warn!(alarm = req.alarm_id, request = req.id, error = %e, "request not applied");
                    format!("refused: {e}")
                }
            };
            if let Err(e) = self.store.finish_alarm_request(req.id, now, &outcome).await {
                tracing::warn!(request = req.id, error = %e, "cannot note the request as applied; it is applied again (and refused) later");
            }
        }
        self.deliver().await;
    }

    /// Takes up silences set or removed in the store by another process.
    async fn poll_silences(&mut self) {
        let now = Utc::now();
        let stored = match self.store.silences(false, now).await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "cannot read silences");
                return;
            }
        };
        let held: Vec<Silence> = self.alarms.silences().cloned().collect();
        if stored == held {
            return;
        }
        tracing::info!(silences = stored.len(), "silences changed");
        let effects = self.alarms.set_silences(stored, now);
        self.handle(effects).await;
        self.deliver().await;
    }

    /// Answers one request of the control handle.
    async fn control(&mut self, req: Request) {
        let now = Utc::now();
        match req {
            Request::Ack {
                alarm_id,
                terms,
                reply,
            } => {
                let _ = reply.send(self.ack_one(alarm_id, &terms, now).await);
            }
            Request::Unack {
                alarm_id,
                by,
                reply,
            } => {
                let answer = match self.alarms.unacknowledge(alarm_id, &by, now) {
                    Ok(effects) => {
                        tracing::info!(alarm = alarm_id, by = %by, "alarm unacknowledged");
                        self.handle(effects).await;
                        self.view(alarm_id)
                    }
                    Err(e) => Err(self.refused(alarm_id, e).await),
                };
                let _ = reply.send(answer);
            }
            Request::AckMatching {
                filter,
                terms,
                reply,
            } => {
                let ids: Vec<AlarmId> = self
                    .alarms
                    .open_alarms()
                    .filter(|a| filter.matches(a))
                    .map(|a| a.id)
                    .collect();
                let mut out = Vec::with_capacity(ids.len());
                for id in ids {
                    out.push((id, self.ack_one(id, &terms, now).await));
                }
                let _ = reply.send(Ok(out));
            }
            Request::Alarm { alarm_id, reply } => {
                // One the lifecycle no longer remembers (resolved long ago) is in the store.
                let answer = match self.alarms.alarm(alarm_id) {
                    Some(_) => self.view(alarm_id),
                    None => match self.store.alarm_row(alarm_id).await {
                        Ok(Some(row)) => Ok(row),
                        Ok(None) => Err(ControlError::NotFound(
                            AlarmError::NotFound(alarm_id).to_string(),
                        )),
                        Err(e) => Err(ControlError::Unavailable(format!(
                            "cannot look up alarm {alarm_id}: {e}"
                        ))),
                    },
                };
                let _ = reply.send(answer);
            }
            Request::AddSilence { new, reply } => {
                let answer = match self.store.add_silence(&new, now).await {
                    Ok(silence) => {
                        tracing::info!(silence = silence.id, by = %silence.by, matchers = %silence.matchers, ends = %silence.ends, "silence added");
                        let mut all: Vec<Silence> = self.alarms.silences().cloned().collect();
                        all.push(silence.clone());
                        self.apply_silences(all, now).await;
                        Ok(silence)
                    }
                    Err(e) => Err(silence_error(e)),
                };
                let _ = reply.send(answer);
            }
            Request::RemoveSilence { id, by, reply } => {
                let answer = match self.store.remove_silence(id, &by, now).await {
                    Ok(silence) => {
                        tracing::info!(silence = id, by = %by, "silence removed");
                        let rest: Vec<Silence> = self
                            .alarms
                            .silences()
                            .filter(|s| s.id != id)
                            .cloned()
                            .collect();
                        self.apply_silences(rest, now).await;
                        Ok(silence)
                    }
                    Err(e) => Err(silence_error(e)),
                };
                let _ = reply.send(answer);
            }
            Request::Silences { reply } => {
                let _ = reply.send(Ok(self.alarms.silences().cloned().collect()));
            }
        }
    }

    /// Acknowledges one alarm for the control handle; persists it and
    /// returns the alarm as it is then.
    async fn ack_one(
        &mut self,
        id: AlarmId,
        terms: &AckTerms,
        now: DateTime<Utc>,
    ) -> Result<AlarmView, ControlError> {
        match self.alarms.acknowledge_with(id, terms, now) {
            Ok(effects) => {
                tracing::info!(alarm = id, by = %terms.by, expires = ?terms.expires, sticky = terms.sticky, "alarm acknowledged");
                self.handle(effects).await;
                self.view(id)
            }
            Err(e) => Err(self.refused(id, e).await),
        }
    }

    async fn apply_silences(&mut self, silences: Vec<Silence>, now: DateTime<Utc>) {
        let effects = self.alarms.set_silences(silences, now);
        self.handle(effects).await;
    }

    /// The alarm as the lifecycle now has it.
    fn view(&self, id: AlarmId) -> Result<AlarmView, ControlError> {
        let alarm = self
            .alarms
            .alarm(id)
            .ok_or_else(|| ControlError::NotFound(AlarmError::NotFound(id).to_string()))?;
        AlarmRow::from_alarm(alarm).map_err(|e| ControlError::Unavailable(e.to_string()))
    }

    /// Why the lifecycle refused a request about alarm `id`, as the control
    /// handle answers it. An alarm the lifecycle no longer remembers may be
    /// one resolved long ago: the store knows.
    async fn refused(&self, id: AlarmId, e: AlarmError) -> ControlError {
        match e {
            AlarmError::NotFound(_) => match self.store.alarm_row(id).await {
                Ok(Some(row)) if row.resolved.is_some() => {
                    ControlError::Conflict(AlarmError::Resolved(id).to_string())
                }
                Ok(_) => ControlError::NotFound(e.to_string()),
                Err(err) => ControlError::Unavailable(format!("cannot look up alarm {id}: {err}")),
            },
            AlarmError::Resolved(_)
            | AlarmError::AlreadyAcknowledged(..)
            | AlarmError::NotAcknowledged(_) => ControlError::Conflict(e.to_string()),
            AlarmError::ExpiresInPast(..) => ControlError::Invalid(e.to_string()),
        }
    }

    /// Publishes the per-check summary of open alarms to the control handle.
    fn publish(&self) {
        if let Some(inbox) = &self.inbox {
            inbox.publish(self.alarms.open_alarms());
        }
    }

    async fn save_snapshot(&mut self) {
        if let Err(e) = self.store.save_snapshot(&self.alarms.snapshot()).await {
            tracing::error!(error = %e, "cannot store the alarm state");
        }
    }
}

/// The next request of the attached control handle; never, when none is attached.
async fn next_request(inbox: &mut Option<Inbox>) -> Option<Request> {
    match inbox {
        Some(inbox) => inbox.recv().await,
        None => std::future::pending().await,
    }
}

/// A store error about a silence, as the control handle answers it.
fn silence_error(e: StoreError) -> ControlError {
    match e {
        StoreError::InvalidSilence(_) => ControlError::Invalid(e.to_string()),
        StoreError::NoSuchSilence(_) => ControlError::NotFound(e.to_string()),
        StoreError::SilenceOver { .. } => ControlError::Conflict(e.to_string()),
        e => ControlError::Unavailable(format!("the silence was not stored: {e}")),
    }
}
