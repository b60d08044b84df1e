//! Routes each command to the actor of its stream: spawns and rehydrates the actor
//! on first use, forgets it when it passivates, and resends once if a command
//! raced with passivation.

use std::collections::HashMap;

use actix::prelude::*;

use super::aggregate::{AggregateActor, CommandError, Env, Execute, GetState, Passivated};
use crate::domain::Aggregate;
use crate::store::RecordedEvent;

struct RegistryActor<A: Aggregate> {
    env: Env,
    live: HashMap<String, Addr<AggregateActor<A>>>,
}

/// The registry's address plus the logic that runs on the caller's side.
pub struct Registry<A: Aggregate> {
    addr: Addr<RegistryMailbox<A>>,
}

impl<A: Aggregate> Clone for Registry<A> {
    fn clone(&self) -> Self {
        Registry {
            addr: self.addr.clone(),
        }
    }
}

pub struct RegistryMailbox<A: Aggregate>(RegistryActor<A>);

impl<A: Aggregate> Actor for RegistryMailbox<A> {
    type Context = Context<Self>;
}

struct Find<A: Aggregate> {
    stream: String,
    _a: std::marker::PhantomData<A>,
}

impl<A: Aggregate> Message for Find<A> {
    type Result = Result<Addr<AggregateActor<A>>, CommandError>;
}

struct Live;

impl Message for Live {
    type Result = usize;
}

impl<A: Aggregate> Handler<Find<A>> for RegistryMailbox<A> {
    type Result = Result<Addr<AggregateActor<A>>, CommandError>;

    fn handle(&mut self, msg: Find<A>, ctx: &mut Self::Context) -> Self::Result {
        let reg = &mut self.0;
        if let Some(addr) = reg.live.get(&msg.stream) {
            if addr.connected() {
                return Ok(addr.clone());
            }
        }
        let actor = AggregateActor::<A>::load(
            msg.stream.clone(),
            reg.env.clone(),
            Some(ctx.address().recipient()),
        )?;
        let addr = actor.start();
        reg.live.insert(msg.stream, addr.clone());
        Ok(addr)
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
            env,
            live: HashMap::new(),
        })
        .start();
        Registry { addr }
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
        self.addr
            .send(Find {
                stream: stream.to_string(),
                _a: std::marker::PhantomData,
            })
            .await
            .map_err(|_| CommandError::Unavailable(stream.to_string()))?
    }
}
