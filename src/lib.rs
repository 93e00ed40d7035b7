//! `app`: one binary that replaces a Django + Channels + Daphne + Redis stack.
//!
//! Architecture (DESIGN.md): API handlers ([`api`]) validate input and hand every change to
//! the single [`writer`], which applies it as one sled transaction over the [`store`] (entity,
//! event — which is also its activity entry — and outbox rows together) and replies after the
//! group-commit flush.
//! A sled watcher on the `events` tree feeds the [`bus`] (a tokio broadcast channel), which
//! publishes each event once it is durable, in id order. WebSocket sessions ([`ws`]) and the
//! [`mail`] drainer subscribe to it (the drainer as a doorbell: it sends the outbox rows the
//! writer stored with their cause). [`web`] is the dashboard compiled into the binary; [`app`]
//! wires everything and owns the shutdown sequence; [`cli`] and [`config`] turn flags and
//! environment into settings; [`watch`] is a client of the running server. The load generator
//! is not here: it is the `app-bench` binary of the workspace member in `bench/`.

pub mod api;
pub mod app;
pub mod auth;
pub mod bus;
pub mod cli;
pub mod commands;
pub mod config;
pub mod domain;
pub mod mail;
pub mod metrics;
pub mod shutdown;
pub mod store;
pub mod watch;
pub mod web;
pub mod writer;
pub mod ws;
