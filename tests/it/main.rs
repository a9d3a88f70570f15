//! The integration tests, one binary: the real `cutover-proxy` binary started as a child process
//! on loopback, with real upstreams, clients, DNS servers, moto for AWS, and Chromium for the
//! dashboard. `common` holds the fixtures they share. (The ledger's memory test is a binary of
//! its own, tests/ledger_memory.rs: it measures its process's peak RSS, which other tests in the
//! same process would disturb.)

mod common;

mod analyze;
mod architecture;
mod backpressure;
mod cardinality;
mod dashboard;
mod demo;
mod deploy;
mod differential;
mod dns;
mod failures;
mod fleet;
mod forwarding;
mod gate;
mod gitops;
mod grpc;
mod http1_server;
mod metrics;
mod probe;
mod refusals;
mod report;
mod restart;
mod route53;
mod route53_moto;
mod s3;
mod smuggling;
mod tls;
mod uploads;
mod upstream_h1;
