//! Routes each command to the actor of its stream: spawns and rehydrates the actor
//! on first use, forgets it when it passivates, and resends once if a command
//! raced with passivation.
//!
//! Fired timers of streams without a resident actor take a batch path instead: the
//! registry lends those streams to the batch (commands for them wait), the batch
//! loads their states in bulk, decides each with the aggregate's own `decide`, and
//! commits one unit of work per stream in one transaction; an actor spawned
//! afterwards rehydrates from a log that already holds the batch's events.

use std::collections::HashMap;

use actix::prelude::*;
use tokio::sync::oneshot;

use super::aggregate::{
    rehydrate_loaded, unit_of_work, AggregateActor, CommandError, Env, Execute, GetState,
    Passivated, StreamAt,
};
use crate::domain::{Aggregate, Ctx};
use crate::store::{RecordedEvent, StoreError, Timer, UnitOfWork};

struct RegistryActor<A: Aggregate> {
    env: Env,
    live: HashMap<String, Addr<AggregateActor<A>>>,
    /// Streams a timer batch is deciding for, with the lookups waiting for them.
    lent: HashMap<String, Vec<oneshot::Sender<()>>>,
}

/// The registry's address plus the logic that runs on the caller's side.
pub struct Registry<A: Aggregate> {
    addr: Addr<RegistryMailbox<A>>,
    env: Env,
}

impl<A: Aggregate> Clone for Registry<A> {
    fn clone(&self) -> Self {
        Registry {
            addr: self.addr.clone(),
            env: self.env.clone(),
        }
    }
}

/// The outcome of one fired timer: its id and what firing it came to.
pub type Fired = (String, Result<(), CommandError>);

pub struct RegistryMailbox<A: Aggregate>(RegistryActor<A>);

impl<A: Aggregate> Actor for RegistryMailbox<A> {
    type Context = Context<Self>;
}

struct Find<A: Aggregate> {
    stream: String,
    _a: std::marker::PhantomData<A>,
}

enum Found<A: Aggregate> {
    Actor(Addr<AggregateActor<A>>),
    /// A timer batch holds the stream: ask again once it is done.
    Lent(oneshot::Receiver<()>),
}

impl<A: Aggregate> Message for Find<A> {
    type Result = Result<Found<A>, CommandError>;
}

/// Lends the streams without a resident actor (and not lent already) to a batch;
/// answers, per stream, whether it was lent.
struct Lend {
    streams: Vec<String>,
}

impl Message for Lend {
    type Result = Vec<bool>;
}

struct Return {
    streams: Vec<String>,
}

impl Message for Return {
    type Result = ();
}

struct Live;

impl Message for Live {
    type Result = usize;
}

impl<A: Aggregate> Handler<Find<A>> for RegistryMailbox<A> {
    type Result = Result<Found<A>, CommandError>;

    fn handle(&mut self, msg: Find<A>, ctx: &mut Self::Context) -> Self::Result {
        let reg = &mut self.0;
        if let Some(addr) = reg.live.get(&msg.stream) {
            if addr.connected() {
                return Ok(Found::Actor(addr.clone()));
            }
        }
        if let Some(waiting) = reg.lent.get_mut(&msg.stream) {
            let (tx, rx) = oneshot::channel();
            waiting.push(tx);
            return Ok(Found::Lent(rx));
        }
        let actor = AggregateActor::<A>::load(
            msg.stream.clone(),
            reg.env.clone(),
            Some(ctx.address().recipient()),
        )?;
        let addr = actor.start();
        reg.live.insert(msg.stream, addr.clone());
        Ok(Found::Actor(addr))
    }
}

impl<A: Aggregate> Handler<Lend> for RegistryMailbox<A> {
    type Result = Vec<bool>;

    fn handle(&mut self, msg: Lend, _ctx: &mut Self::Context) -> Vec<bool> {
        let reg = &mut self.0;
        msg.streams
            .into_iter()
            .map(|stream| {
                let resident = reg.live.get(&stream).is_some_and(|a| a.connected());
                if resident || reg.lent.contains_key(&stream) {
                    return false;
                }
                reg.lent.insert(stream, Vec::new());
                true
            })
            .collect()
    }
}

impl<A: Aggregate> Handler<Return> for RegistryMailbox<A> {
    type Result = ();

    fn handle(&mut self, msg: Return, _ctx: &mut Self::Context) {
        for stream in msg.streams {
            for waiter in self.0.lent.remove(&stream).unwrap_or_default() {
                let _ = waiter.send(());
            }
        }
    }
}

/// Gives lent streams back however the batch ends, dropped future included.
struct Loan<A: Aggregate> {
    registry: Addr<RegistryMailbox<A>>,
    streams: Vec<String>,
}

impl<A: Aggregate> Drop for Loan<A> {
    fn drop(&mut self) {
        self.registry.do_send(Return {
            streams: std::mem::take(&mut self.streams),
        });
    }
}

impl<A: Aggregate> Handler<Passivated> for RegistryMailbox<A> {
    type Result = ();

    fn handle(&mut self, msg: Passivated, _ctx: &mut Self::Context) {
        if let Some(addr) = self.0.live.get(&msg.stream) {
            if !addr.connected() {
                self.0.live.remove(&msg.stream);
            }
        }
    }
}

impl<A: Aggregate> Handler<Live> for RegistryMailbox<A> {
    type Result = usize;

    fn handle(&mut self, _msg: Live, _ctx: &mut Self::Context) -> usize {
        self.0.live.retain(|_, a| a.connected());
        self.0.live.len()
    }
}

impl<A: Aggregate> Registry<A> {
    /// Starts the registry on the current arbiter.
    pub fn start(env: Env) -> Self {
        let addr = RegistryMailbox(RegistryActor {
            env: env.clone(),
            live: HashMap::new(),
            lent: HashMap::new(),
        })
        .start();
        Registry { addr, env }
    }

    /// Runs `msg` on the actor of aggregate `id` (the stream is `<prefix>-<id>`).
    pub async fn execute(
        &self,
        id: &str,
        msg: Execute<A>,
    ) -> Result<Vec<RecordedEvent>, CommandError> {
        self.execute_on_stream(&A::stream_id(id), msg).await
    }

    pub async fn execute_on_stream(
        &self,
        stream: &str,
        msg: Execute<A>,
    ) -> Result<Vec<RecordedEvent>, CommandError> {
        // An actor that passivates between lookup and send closes its mailbox;
        // the retry rehydrates a fresh one. Two attempts are enough because a new
        // actor cannot be idle yet.
        for _ in 0..3 {
            let actor = self.find(stream).await?;
            match actor.send(msg.clone()).await {
                Ok(result) => return result,
                Err(MailboxError::Closed) => continue,
                Err(MailboxError::Timeout) => {
                    return Err(CommandError::Unavailable(stream.to_string()))
                }
            }
        }
        Err(CommandError::Unavailable(stream.to_string()))
    }

    /// The current state and sequence number of aggregate `id`.
    pub async fn state(&self, id: &str) -> Result<(A, u64), CommandError> {
        let stream = A::stream_id(id);
        for _ in 0..3 {
            let actor = self.find(&stream).await?;
            match actor.send(GetState::<A>::default()).await {
                Ok(s) => return Ok(s),
                Err(_) => continue,
            }
        }
        Err(CommandError::Unavailable(stream))
    }

    /// How many actors are resident now.
    pub async fn live(&self) -> usize {
        self.addr.send(Live).await.unwrap_or(0)
    }

    async fn find(&self, stream: &str) -> Result<Addr<AggregateActor<A>>, CommandError> {
        loop {
            let found = self
                .addr
                .send(Find {
                    stream: stream.to_string(),
                    _a: std::marker::PhantomData,
                })
                .await
                .map_err(|_| CommandError::Unavailable(stream.to_string()))??;
            match found {
                Found::Actor(addr) => return Ok(addr),
                // Returned or dropped, the loan is over either way.
                Found::Lent(done) => {
                    let _ = done.await;
                }
            }
        }
    }

    /// Fires `timers` (all of this aggregate type). A stream with a resident actor
    /// gets its command through the actor, so the actor's state stays the log's;
    /// the others are decided as one batch (see the module doc). Each timer is
    /// disarmed in the transaction of the events its command produced, and a
    /// stream changed meanwhile fails its unit on the expected sequence number,
    /// leaving that timer armed for the next round.
    pub async fn fire_timers(&self, timers: Vec<Timer>) -> Vec<Fired> {
        let mut first = Vec::with_capacity(timers.len());
        let mut again = Vec::new();
        let mut seen = std::collections::HashSet::with_capacity(timers.len());
        for t in timers {
            if seen.insert(t.stream.clone()) {
                first.push(t);
            } else {
                again.push(t);
            }
        }
        let lent = match self
            .addr
            .send(Lend {
                streams: first.iter().map(|t| t.stream.clone()).collect(),
            })
            .await
        {
            Ok(lent) => lent,
            Err(_) => vec![false; first.len()],
        };
        let (batch, resident): (Vec<_>, Vec<_>) =
            first.into_iter().zip(lent).partition(|(_, lent)| *lent);
        let batch: Vec<Timer> = batch.into_iter().map(|(t, _)| t).collect();
        let loan = Loan {
            registry: self.addr.clone(),
            streams: batch.iter().map(|t| t.stream.clone()).collect(),
        };
        let batched = async move {
            let fired = self.fire_batch(batch).await;
            drop(loan);
            fired
        };
        let one_by_one =
            futures::future::join_all(resident.into_iter().map(|(t, _)| self.fire_one(t)));
        let (mut fired, more) = futures::future::join(batched, one_by_one).await;
        fired.extend(more);
        // A second timer of a stream waits for the first: both decide on one state.
        for t in again {
            fired.push(self.fire_one(t).await);
        }
        fired
    }

    async fn fire_one(&self, timer: Timer) -> Fired {
        let id = timer.id();
        let Some(command) = A::timer_command(&timer.kind) else {
            return (id, Err(unknown_kind(&timer)));
        };
        let mut msg = Execute::new(command);
        msg.fired_timer = Some(id.clone());
        let result = self.execute_on_stream(&timer.stream, msg).await;
        (id, result.map(|_| ()))
    }

    async fn fire_batch(&self, timers: Vec<Timer>) -> Vec<Fired> {
        if timers.is_empty() {
            return Vec::new();
        }
        let env = self.env.clone();
        let ids: Vec<String> = timers.iter().map(Timer::id).collect();
        // Loading and deciding is CPU work: off the actors' thread.
        let decided = tokio::task::spawn_blocking(move || decide_batch::<A>(&env, &timers)).await;
        let decided = match decided {
            Ok(d) => d,
            Err(e) => {
                return ids
                    .into_iter()
                    .map(|id| (id, Err(storage(format!("timer batch failed: {e}")))))
                    .collect()
            }
        };
        let mut fired = Vec::with_capacity(ids.len());
        let mut units = Vec::with_capacity(ids.len());
        let mut committing = Vec::with_capacity(ids.len());
        for (id, outcome) in ids.into_iter().zip(decided) {
            match outcome {
                Ok(unit) => {
                    units.push(unit);
                    committing.push(id);
                }
                Err(e) => fired.push((id, Err(e))),
            }
        }
        let results = self.env.store.commit_all(units).await;
        fired.extend(
            committing
                .into_iter()
                .zip(results)
                .map(|(id, r)| (id, r.map(|_| ()).map_err(CommandError::Store))),
        );
        fired
    }
}

fn unknown_kind(timer: &Timer) -> CommandError {
    CommandError::Unroutable(format!(
        "unknown timer kind {:?} on {}",
        timer.kind, timer.stream
    ))
}

fn storage(message: String) -> CommandError {
    CommandError::Store(StoreError::Storage(message))
}

/// Loads the streams of `timers` in one read and decides each timer's command on
/// its stream, exactly as the stream's actor would: the same `decide`, the same
/// unit of work.
fn decide_batch<A: Aggregate>(
    env: &Env,
    timers: &[Timer],
) -> Vec<Result<UnitOfWork, CommandError>> {
    let streams: Vec<String> = timers.iter().map(|t| t.stream.clone()).collect();
    let loads = match env.store.load_streams(&streams, A::STATE_VERSION) {
        Ok(l) => l,
        Err(e) => {
            let message = e.to_string();
            return timers
                .iter()
                .map(|_| Err(storage(message.clone())))
                .collect();
        }
    };
    let ctx = Ctx {
        now: env.clock.now(),
        policy: &env.policy,
    };
    timers
        .iter()
        .zip(loads)
        .map(|(timer, load)| {
            let Some(command) = A::timer_command(&timer.kind) else {
                return Err(unknown_kind(timer));
            };
            let (state, seq, snapshot_seq) =
                rehydrate_loaded::<A>(&env.store, &timer.stream, load)?;
            let events = state
                .decide(&command, &ctx)
                .map_err(|e| CommandError::Rejected(e.into()))?;
            let mut msg = Execute::new(command);
            msg.fired_timer = Some(timer.id());
            let at = StreamAt {
                stream: &timer.stream,
                state: &state,
                seq,
                snapshot_seq,
            };
            Ok(unit_of_work(&at, env, &msg, &events, ctx.now))
        })
        .collect()
}
