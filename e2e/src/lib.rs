//! End-to-end tests of the real binaries (tracker, origin, agents) against a
//! real `docker-registry` upstream and real clients (skopeo, ctr, docker).
//!
//! The binaries they drive are still placeholders (see the agent, origin and
//! tracker issues), so this crate holds no tests yet; the swarm engine's own
//! multi-peer test lives in `swarm/tests/`.
