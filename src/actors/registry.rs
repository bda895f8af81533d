//! The `Metrics` actor owns the service's one Prometheus [`Registry`] and renders the
//! text exposition. Rendering runs on the actor's arbiter, not on HTTP workers.

use actix::prelude::*;
use prometheus::{Registry, TextEncoder};

use crate::metrics::Metrics as MetricHandles;

pub struct MetricsActor {
    registry: Registry,
}

impl MetricsActor {
    /// Build the registry and register every metric of the service on it.
    pub fn new(acquire_timeout_secs: f64) -> Result<(Self, MetricHandles), prometheus::Error> {
        let registry = Registry::new();
        let handles = MetricHandles::register(&registry, acquire_timeout_secs)?;
        Ok((MetricsActor { registry }, handles))
    }
}

impl Actor for MetricsActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Scrapes are rare; a small bounded mailbox is plenty and protects memory.
        ctx.set_mailbox_capacity(64);
    }
}

/// Render the exposition in Prometheus text format.
#[derive(Message)]
#[rtype(result = "Result<String, prometheus::Error>")]
pub struct Render;

impl Handler<Render> for MetricsActor {
    type Result = Result<String, prometheus::Error>;

    fn handle(&mut self, _: Render, _: &mut Self::Context) -> Self::Result {
        TextEncoder::new().encode_to_string(&self.registry.gather())
    }
}
