//! cairn-node's integration tests, in one binary (each test binary links the whole prover stack: one binary
//! compiles and links it once instead of three times). The modules:
//! - `prover`: a prover node driven by a bare libp2p client standing in for a coordinator;
//! - `service`: the coordinator service with many jobs and hostile or unlucky conditions;
//! - `fake_network`: coordinator and prover nodes over real libp2p on loopback.
//!
//! All with the (named) fake proving backend; the same paths with real proofs are in `cairn-cli/tests`.

mod support;

mod fake_network;
mod prover;
mod service;
