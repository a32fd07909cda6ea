//! The freeness check, in the sandboxed component: `is-free-on-wildcard`
//! under a policy that grants the wildcard binds on the pool's ports and
//! nothing else. One store and instance serve every check, remade only when
//! a call fails: instantiating per check would cost more than the check.

use crate::bindings::PortUtils;
use crate::{
    COMPONENT, ErrorCode, Limits, NetworkPolicy, PortBlock, PortUtilsPre, State, Stderr,
    async_linker, sandboxed_store,
};
use wasmtime::component::Component;
use wasmtime::{Engine, Result, Store};

/// Checks ports with the component.
pub struct Checker {
    engine: Engine,
    pre: PortUtilsPre<State>,
    policy: NetworkPolicy,
    limits: Limits,
    live: Option<(Store<State>, PortUtils)>,
}

impl Checker {
    /// A checker confined to `pool`'s span (its lowest to its highest port).
    pub fn new(pool: PortBlock) -> Result<Self> {
        let engine = crate::engine(None)?;
        let component = Component::new(&engine, COMPONENT)?;
        let pre = PortUtilsPre::new(async_linker(&engine)?.instantiate_pre(&component)?)?;
        Ok(Checker {
            engine,
            pre,
            policy: NetworkPolicy::wildcard_binds(pool),
            limits: Limits::default(),
            live: None,
        })
    }

    /// Whether `port` is free for TCP and UDP on both wildcard addresses.
    /// An error means the check could not be made (the port is then not
    /// handed out).
    pub async fn is_free(&mut self, port: u16) -> Result<bool> {
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
