//! `app`: one binary that replaces a Django + Channels + Daphne + Redis stack.
//!
//! Architecture (DESIGN.md): [`routes`] is the one router: the REST handlers ([`api`]), the
//! WebSocket routes ([`ws`]) and the dashboard ([`web`]) side by side. Both `api` and `ws`
//! work on the [`state`] handles and its authenticated `Caller` (which owns the ownership
//! rule), and answer in the JSON shapes of [`reply`]; neither imports the other. API
//! handlers validate input and hand every change to the single [`writer`], which applies it
//! as one sled transaction over the [`store`] (entity, event — which is also its activity
//! entry — and outbox rows together) and replies after the group-commit flush.
//! A sled watcher on the `events` tree feeds the [`bus`] (a tokio broadcast channel), which
//! publishes each event once it is durable, in id order. WebSocket sessions and the [`mail`]
//! drainer subscribe to it (the drainer as a doorbell: it sends the outbox rows the writer
//! stored with their cause). [`app`] builds every handle, runs the server and owns the
//! shutdown sequence, serving through our own accept loop in [`server`]; [`cli`] and [`config`] turn flags and environment into settings;
//! [`client_addr`] says who a request comes from (behind `--trusted-proxies`), for every
//! limiter; [`health`] knows whether the store can be written and [`recovery`]
//! re-executes the server once it can again; [`commands`] are the offline subcommands; [`backup`] holds `app backup`, `app restore`
//! and `app check`; [`watch`] is a client of the running server. The load generator is not
//! here: it is the `app-bench` binary of the workspace member in `bench/`.

pub mod api;
pub mod app;
pub mod auth;
pub mod backup;
pub mod bus;
pub mod cli;
pub mod client_addr;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod domain;
pub mod drain_wake;
pub mod health;
pub mod login_gate;
pub mod mail;
pub mod metrics;
pub mod push;
pub mod rate_limit;
pub mod recovery;
pub mod reply;
pub mod routes;
pub mod server;
pub mod shutdown;
pub mod state;
pub mod store;
pub mod watch;
pub mod web;
pub mod writer;
pub mod ws;
