//! Fault injection and request accounting of the operator's traffic, whichever server it
//! talks to: the simulator does both itself; in front of a real API server the fault proxy does.

use crate::proxy::FaultProxy;
use crate::sim::{FaultConfig, RequestLog, SimHandle};

/// Fault injection and request accounting of the operator's traffic: the simulator itself, or
/// the proxy in front of a real API server.
pub enum Gate<'a> {
    Sim(&'a SimHandle),
    Proxy(&'a FaultProxy),
}

impl Gate<'_> {
    pub fn set_faults(&self, config: FaultConfig) {
        match self {
            Gate::Sim(s) => s.set_faults(config),
            Gate::Proxy(p) => p.set_faults(config),
        }
    }
    pub fn clear_faults(&self) {
        match self {
            Gate::Sim(s) => s.clear_faults(),
            Gate::Proxy(p) => p.clear_faults(),
        }
    }
    /// Ends every open watch of the operator.
    pub fn cut_watches(&self) {
        match self {
            Gate::Sim(s) => s.cut_watches(),
            Gate::Proxy(p) => p.cut_watches(),
        }
    }
    pub fn mark(&self) -> u64 {
        match self {
            Gate::Sim(s) => s.mark(),
            Gate::Proxy(p) => p.mark(),
        }
    }
    pub fn requests_since(&self, mark: u64) -> RequestLog {
        match self {
            Gate::Sim(s) => s.requests_since(mark),
            Gate::Proxy(p) => p.requests_since(mark),
        }
    }
    pub fn requests(&self) -> RequestLog {
        match self {
            Gate::Sim(s) => s.requests(),
            Gate::Proxy(p) => p.requests(),
        }
    }
    pub fn reset_requests(&self) {
        match self {
            Gate::Sim(s) => s.reset_requests(),
            Gate::Proxy(p) => p.reset_requests(),
        }
    }
}
