//! The freeness check, in the sandboxed component: `is-free-on-wildcard`
//! under a policy that grants the wildcard binds on the pool's ports and
//! nothing else. Each checker keeps one store and instance for every check,
//! remade only when a call fails: instantiating per check would cost more
//! than the check. The check is most of a request's cost (four sockets made,
//! bound and closed through wasmtime-wasi), so there is a checker per core,
//! each a task of its own, and a batch's ports are checked on all of them.

use crate::bindings::PortUtils;
use crate::{
    ErrorCode, Limits, NetworkPolicy, PortBlock, PortHost, PortUtilsPre, State, Stderr,
    sandboxed_store,
};
use tokio::sync::{mpsc, oneshot};
use wasmtime::{Engine, Result, Store};

/// One port to check and where its answer goes.
type Check = (u16, oneshot::Sender<Result<bool>>);

/// Checkers on tasks of their own, fed round-robin.
pub struct Checkers {
    queues: Vec<mpsc::Sender<Check>>,
}

impl Checkers {
    /// `count` checkers (at least one) confined to `pool`'s span, sharing
    /// one engine and compiled component. Needs a tokio runtime.
    pub fn start(pool: PortBlock, count: usize) -> Result<Self> {
        let first = Checker::new(pool)?;
        let queues = (0..count.max(1))
            .map(|_| {
                let mut checker = first.sibling();
                let (queue, mut checks) = mpsc::channel::<Check>(64);
                tokio::spawn(async move {
                    while let Some((port, answer)) = checks.recv().await {
                        let _ = answer.send(checker.is_free(port).await);
                    }
                });
                queue
            })
            .collect();
        Ok(Checkers { queues })
    }

    /// Each port's answer, in order, the checks made at once.
    pub async fn check(&self, ports: &[u16]) -> Vec<Result<bool>> {
        let mut pending = Vec::with_capacity(ports.len());
        for (i, &port) in ports.iter().enumerate() {
            let (answer, answered) = oneshot::channel();
            let queue = &self.queues[i % self.queues.len()];
            pending.push(queue.send((port, answer)).await.ok().map(|()| answered));
        }
        let mut answers = Vec::with_capacity(ports.len());
        for answered in pending {
            let answer = match answered {
                Some(answered) => answered.await.ok(),
                None => None,
            };
            answers
                .push(answer.unwrap_or_else(|| Err(wasmtime::Error::msg("a checker has stopped"))));
        }
        answers
    }
}

/// Checks ports with the component, one at a time.
struct Checker {
    engine: Engine,
    pre: PortUtilsPre<State>,
    policy: NetworkPolicy,
    limits: Limits,
    live: Option<(Store<State>, PortUtils)>,
}

impl Checker {
    /// A checker confined to `pool`'s span (its lowest to its highest port).
    fn new(pool: PortBlock) -> Result<Self> {
        // The build's native code, as the CLI's other commands load it:
        // compiling the component at each start made the first answer wait
        // for Cranelift (77 to 108 ms measured here).
        let host = PortHost::embedded_load_only(Limits::default())?;
        Ok(Checker {
            engine: host.engine().clone(),
            pre: host.linked()?.clone(),
            policy: NetworkPolicy::wildcard_binds(pool),
            limits: Limits::default(),
            live: None,
        })
    }

    /// Another checker with its own store, on the same engine and code.
    fn sibling(&self) -> Self {
        Checker {
            engine: self.engine.clone(),
            pre: self.pre.clone(),
            policy: self.policy,
            limits: self.limits,
            live: None,
        }
    }

    /// Whether `port` is free for TCP and UDP on both wildcard addresses.
    /// An error means the check could not be made (the port is then not
    /// handed out).
    async fn is_free(&mut self, port: u16) -> Result<bool> {
        let mut live = match self.live.take() {
            Some(live) => live,
            None => self.instantiate().await?,
        };
        let (store, utils) = (&mut live.0, &live.1);
        let call = utils
            .hbutils_network_port()
            .call_is_free_on_wildcard(store, port);
        let answer = match tokio::time::timeout(self.limits.call_timeout, call).await {
            Ok(Ok(answer)) => answer,
            // The instance cannot be entered again after a trap or a
            // cancelled call: it is dropped, and the next check makes another.
            Ok(Err(error)) => return Err(error),
            Err(_) => wasmtime::bail!("the check of port {port} ran past its deadline"),
        };
        self.live = Some(live);
        match answer {
            Ok(free) => Ok(free),
            Err(ErrorCode::AccessDenied) => {
                wasmtime::bail!("the sandbox refused the check of port {port}")
            }
            Err(error) => wasmtime::bail!("the check of port {port} failed: {error:?}"),
        }
    }

    async fn instantiate(&mut self) -> Result<(Store<State>, PortUtils)> {
        let (mut store, _) = sandboxed_store(
            &self.engine,
            self.policy,
            Stderr::Capture,
            &self.limits.store,
        );
        let utils = self.pre.instantiate_async(&mut store).await?;
        Ok((store, utils))
    }
}
