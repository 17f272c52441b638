//! Integration tests: real swarms on 127.0.0.1, ephemeral ports, no mDNS. One binary for all of them.

mod common;
mod flood;
mod gossip;
mod lone;
mod requests;
mod transfer;
mod trim;
