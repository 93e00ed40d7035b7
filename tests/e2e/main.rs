//! Black-box tests: each spawns the real `app` binary on a free port with a temporary data
//! folder and talks to it over HTTP and WebSocket (`in_process` runs the same server inside
//! the test through `app::app::Application`). One test binary, one module per area.

mod support;

mod cluster;
mod disk_full;
mod hostile;
mod in_process;
mod isolation;
mod lifecycle;
mod mail;
mod mail_burst;
mod owner;
mod public_booking;
mod push;
mod realtime;
mod reminders;
mod rest_auth;
mod rest_businesses;
mod rest_cli;
mod rest_durability;
mod rest_errors;
mod rest_feed;
mod rest_reservations;
mod rest_support;
mod sessions;
mod storage;
// Issue 15: three app nodes over three NATS servers (support::cluster, support::nats).
mod cluster_proof;
