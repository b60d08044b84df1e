//! The aggregate actor: holds one stream's state, runs `decide`, commits the events
//! (with the timers they arm and an optional checkpoint) and only then applies them.
//! It keeps no logic of its own, so what it does is what replay does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::clock::Clock;
use crate::config::ActorSettings;
use crate::domain::{
    Aggregate, Ctx, DecodeError, DomainEvent, IndexChange, Policy, Rejection, TimerChange,
};
use crate::names::lookup;
use crate::store::{
    timer_id, EventMeta, Expected, InboxEntry, LookupEntry, NewEvent, RecordedEvent, SharedStore,
    Snapshot, StoreError, StreamLoad, Timer, UnitOfWork,
};

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The business rules refused the command: a 4xx, never retried as is.
    #[error("rejected: {0}")]
    Rejected(Rejection),
    /// No aggregate handles this (a timer of an unknown kind or stream): firing it
    /// again cannot succeed.
    #[error("unroutable: {0}")]
    Unroutable(String),
    /// The log could not be read or written: retry later.
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stream {stream} holds an event this build cannot read: {source}")]
    Undecodable {
        stream: String,
        #[source]
        source: DecodeError,
    },
    #[error("the actor for {0} is unavailable")]
    Unavailable(String),
}

/// A command for one aggregate, with what the commit should carry along.
pub struct Execute<A: Aggregate> {
    pub command: A::Command,
    /// The event that led to this command, for correlation and causation.
    pub cause: Option<EventMeta>,
    /// The timer that fired this command: disarmed in the same transaction.
    pub fired_timer: Option<String>,
    /// A subscriber checkpoint to move in the same transaction.
    pub checkpoint: Option<(String, u64)>,
    /// An inbound delivery recorded (and deduplicated) in the same transaction.
    pub inbox: Option<InboxEntry>,
}

impl<A: Aggregate> Clone for Execute<A> {
    fn clone(&self) -> Self {
        Execute {
            command: self.command.clone(),
            cause: self.cause.clone(),
            fired_timer: self.fired_timer.clone(),
            checkpoint: self.checkpoint.clone(),
            inbox: self.inbox.clone(),
        }
    }
}

impl<A: Aggregate> Execute<A> {
    pub fn new(command: A::Command) -> Self {
        Execute {
            command,
            cause: None,
            fired_timer: None,
            checkpoint: None,
            inbox: None,
        }
    }

    pub fn caused_by(mut self, cause: &EventMeta) -> Self {
        self.cause = Some(cause.clone());
        self
    }
}

impl<A: Aggregate> Message for Execute<A> {
    type Result = Result<Vec<RecordedEvent>, CommandError>;
}

/// Tells the registry an idle actor stopped, so the next command rehydrates it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Passivated {
    pub stream: String,
}

/// A read of the actor's current state (the operator API's view).
pub struct GetState<A: Aggregate>(std::marker::PhantomData<A>);

impl<A: Aggregate> Default for GetState<A> {
    fn default() -> Self {
        GetState(std::marker::PhantomData)
    }
}

impl<A: Aggregate> Message for GetState<A> {
    type Result = (A, u64);
}

/// Shared by every actor of one aggregate type.
#[derive(Clone)]
pub struct Env {
    pub store: SharedStore,
    pub clock: Clock,
    pub policy: Arc<Policy>,
    pub settings: ActorSettings,
}

pub struct AggregateActor<A: Aggregate> {
    stream: String,
    state: A,
    seq: u64,
    snapshot_seq: u64,
    env: Env,
    last_used: Instant,
    on_idle: Option<Recipient<Passivated>>,
}

/// Folds a stream from its snapshot (when it is of the current state version) and
/// the events after it.
pub fn rehydrate<A: Aggregate>(
    store: &SharedStore,
    stream: &str,
) -> Result<(A, u64, u64), CommandError> {
    let (mut state, mut seq) = match store.load_snapshot(stream)? {
        Some(s) if s.state_version == A::STATE_VERSION => match serde_json::from_str::<A>(&s.state)
        {
            Ok(state) => (state, s.seq),
            Err(e) => {
                tracing::warn!(stream, error = %e, "snapshot unreadable, folding the whole stream");
                (A::default(), 0)
            }
        },
        _ => (A::default(), 0),
    };
    let snapshot_seq = seq;
    for rec in store.read_stream(stream, seq)? {
        let event =
            A::Event::decode(&rec.event_type, rec.version, &rec.payload).map_err(|source| {
                CommandError::Undecodable {
                    stream: stream.to_string(),
                    source,
                }
            })?;
        state.apply(&event);
        seq = rec.seq;
    }
    Ok((state, seq, snapshot_seq))
}

/// [`rehydrate`] from what [`crate::store::EventStore::load_streams`] read: the
/// same fold, without a query per stream. An unreadable snapshot falls back to
/// reading the whole stream.
pub fn rehydrate_loaded<A: Aggregate>(
    store: &SharedStore,
    stream: &str,
    load: StreamLoad,
) -> Result<(A, u64, u64), CommandError> {
    let (mut state, mut seq) = match load.snapshot {
        Some(s) => match serde_json::from_str::<A>(&s.state) {
            Ok(state) => (state, s.seq),
            Err(_) => return rehydrate(store, stream),
        },
        None => (A::default(), 0),
    };
    let snapshot_seq = seq;
    for rec in load.events {
        let event =
            A::Event::decode(&rec.event_type, rec.version, &rec.payload).map_err(|source| {
                CommandError::Undecodable {
                    stream: stream.to_string(),
                    source,
                }
            })?;
        state.apply_owned(event);
        seq = rec.seq;
    }
    Ok((state, seq, snapshot_seq))
}

impl<A: Aggregate> AggregateActor<A> {
    pub fn load(
        stream: String,
        env: Env,
        on_idle: Option<Recipient<Passivated>>,
    ) -> Result<Self, CommandError> {
        let (state, seq, snapshot_seq) = rehydrate::<A>(&env.store, &stream)?;
        Ok(AggregateActor {
            stream,
            state,
            seq,
            snapshot_seq,
            env,
            #[allow(clippy::disallowed_methods)]
            last_used: Instant::now(),
            on_idle,
        })
    }

    fn unit_of_work(
        &self,
        msg: &Execute<A>,
        events: &[A::Event],
        now: chrono::DateTime<chrono::Utc>,
    ) -> UnitOfWork {
        let at = StreamAt {
            stream: &self.stream,
            state: &self.state,
            seq: self.seq,
            snapshot_seq: self.snapshot_seq,
        };
        unit_of_work(&at, &self.env, msg, events, now)
    }
}

/// A stream's folded state and where it stands in the log: what a decision and its
/// unit of work start from, whether an actor holds it or a batch loaded it.
pub struct StreamAt<'a, A: Aggregate> {
    pub stream: &'a str,
    pub state: &'a A,
    pub seq: u64,
    pub snapshot_seq: u64,
}

/// The unit of work that commits `events` decided on `at` for `msg`: the appends
/// (expecting the stream at `at.seq`), the timers and lookups the events change,
/// the fired timer's disarm, the checkpoint, the inbox entry and, when due, a
/// snapshot. `now` is the instant `decide` saw: events are recorded at the time
/// they were decided, so a replay reads the settings back exactly (a window's due
/// time minus its recording time is the buffer, to the nanosecond).
pub fn unit_of_work<A: Aggregate>(
    at: &StreamAt<'_, A>,
    env: &Env,
    msg: &Execute<A>,
    events: &[A::Event],
    now: chrono::DateTime<chrono::Utc>,
) -> UnitOfWork {
    let stream = at.stream;
    let new_events: Vec<NewEvent> = events
        .iter()
        .map(|e| NewEvent {
            event_type: e.event_type().to_string(),
            version: e.version(),
            payload: e.encode(),
            meta: match &msg.cause {
                Some(c) => EventMeta::caused_by(c, now),
                None => EventMeta::root(now),
            },
        })
        .collect();
    let mut unit = UnitOfWork::default();
    for change in events.iter().flat_map(A::timers) {
        match change {
            TimerChange::Arm { kind, due_at } => unit.arm_timers.push(Timer {
                stream: stream.to_string(),
                kind: kind.to_string(),
                due_at,
            }),
            TimerChange::Disarm { kind } => {
                let id = timer_id(stream, &kind);
                unit.arm_timers.retain(|t| t.id() != id);
                unit.disarm_timers.push(id);
            }
        }
    }
    if let Some(id) = &msg.fired_timer {
        // Disarming the fired timer is what makes it fire exactly once, even
        // when the decision produced no event.
        // An event that disarms it already did (a hold's expiry): one delete is enough.
        if !unit.arm_timers.iter().any(|t| &t.id() == id) && !unit.disarm_timers.contains(id) {
            unit.disarm_timers.push(id.clone());
        }
    }
    for change in events.iter().flat_map(A::index) {
        match change {
            IndexChange::Put { kind, key } => unit.lookup_put.push(LookupEntry {
                kind: kind.to_string(),
                key,
                value: stream.to_string(),
            }),
            IndexChange::PutException { key, message } => {
                let key = format!("{stream}#{key}");
                unit.lookup_delete.retain(|(_, k)| k != &key);
                unit.lookup_put.push(LookupEntry {
                    kind: lookup::EXCEPTION.to_string(),
                    key,
                    value: message,
                });
            }
            IndexChange::DeleteException { key } => {
                let key = format!("{stream}#{key}");
                unit.lookup_put.retain(|e| e.key != key);
                unit.lookup_delete
                    .push((lookup::EXCEPTION.to_string(), key));
            }
        }
    }
    unit.checkpoint = msg.checkpoint.clone();
    unit.inbox = msg.inbox.clone();
    let next_seq = at.seq + events.len() as u64;
    if !events.is_empty() && next_seq - at.snapshot_seq >= env.settings.snapshot_every {
        let mut next = at.state.clone();
        for e in events {
            next.apply(e);
        }
        if let Ok(state) = serde_json::to_string(&next) {
            unit.snapshot = Some(Snapshot {
                stream: stream.to_string(),
                seq: next_seq,
                state_version: A::STATE_VERSION,
                state,
            });
        }
    }
    if !new_events.is_empty() {
        unit.appends.push(crate::store::StreamAppend {
            stream: stream.to_string(),
            expected: Expected::Seq(at.seq),
            events: new_events,
        });
    }
    unit
}

impl<A: Aggregate> Actor for AggregateActor<A> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let idle = self.env.settings.idle_timeout;
        let every = (idle / 4).max(Duration::from_millis(10));
        ctx.run_interval(every, move |act, ctx| {
            if act.last_used.elapsed() >= idle {
                ctx.stop();
            }
        });
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        if let Some(r) = &self.on_idle {
            r.do_send(Passivated {
                stream: self.stream.clone(),
            });
        }
    }
}

impl<A: Aggregate> Handler<Execute<A>> for AggregateActor<A> {
    type Result = AtomicResponse<Self, Result<Vec<RecordedEvent>, CommandError>>;

    fn handle(&mut self, msg: Execute<A>, _ctx: &mut Self::Context) -> Self::Result {
        #[allow(clippy::disallowed_methods)]
        {
            self.last_used = Instant::now();
        }
        let ctx = Ctx {
            now: self.env.clock.now(),
            policy: &self.env.policy,
        };
        let events = match self.state.decide(&msg.command, &ctx) {
            Ok(events) => events,
            Err(e) => {
                let err = CommandError::Rejected(e.into());
                return AtomicResponse::new(Box::pin(fut::ready(Err(err))));
            }
        };
        let unit = self.unit_of_work(&msg, &events, ctx.now);
        if unit.appends.is_empty()
            && unit.disarm_timers.is_empty()
            && unit.checkpoint.is_none()
            && unit.arm_timers.is_empty()
            && unit.inbox.is_none()
        {
            return AtomicResponse::new(Box::pin(fut::ready(Ok(vec![]))));
        }
        let snapshot_seq = unit.snapshot.as_ref().map(|s| s.seq);
        let commit = self.env.store.commit(unit);
        AtomicResponse::new(Box::pin(commit.into_actor(self).map(
            move |result, act, _ctx| match result {
                Ok(committed) => {
                    for e in &events {
                        act.state.apply(e);
                    }
                    act.seq += events.len() as u64;
                    if let Some(s) = snapshot_seq {
                        act.snapshot_seq = s;
                    }
                    Ok(committed.events)
                }
                Err(e) => {
                    // Whatever the log now holds is the truth: reload before the next command.
                    if let Ok((state, seq, snap)) = rehydrate::<A>(&act.env.store, &act.stream) {
                        act.state = state;
                        act.seq = seq;
                        act.snapshot_seq = snap;
                    }
                    Err(CommandError::Store(e))
                }
            },
        )))
    }
}

impl<A: Aggregate> Handler<GetState<A>> for AggregateActor<A> {
    type Result = MessageResult<GetState<A>>;

    fn handle(&mut self, _msg: GetState<A>, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult((self.state.clone(), self.seq))
    }
}
