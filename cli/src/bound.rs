//! The yardsticks a swarm's time is judged by.
//!
//! Sending F bytes from a seed with upload `u_s` to N peers with uploads
//! `u_i` and downloads `d_i` takes at least
//! `max(F/u_s, F/min d_i, N*F/(u_s + sum u_i))`: the seed must send every
//! byte once, the slowest peer must receive every byte, and all N copies
//! must cross someone's upload link. A client-server fleet needs `N*F/u_s`.
//! Rates are in bytes per second; an unlimited rate is `f64::INFINITY`.

/// Capacities of a transfer, in bytes per second.
#[derive(Debug, Clone)]
pub struct Capacities {
    /// The seed's upload (all origins together).
    pub seed_upload: f64,
    /// Each peer's upload.
    pub peer_uploads: Vec<f64>,
    /// Each peer's download.
    pub peer_downloads: Vec<f64>,
}

impl Capacities {
    /// The P2P lower bound in seconds for `bytes` to reach every peer; None
    /// when nothing is capped (the bound would be zero and no ratio to it
    /// means anything).
    pub fn p2p_lower_bound(&self, bytes: u64) -> Option<f64> {
        let f = bytes as f64;
        let n = self.peer_uploads.len() as f64;
        let min_download = self
            .peer_downloads
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min);
        let total_upload = self.seed_upload + self.peer_uploads.iter().sum::<f64>();
        let bound = [f / self.seed_upload, f / min_download, n * f / total_upload]
            .into_iter()
            .fold(0.0, f64::max);
        (bound.is_finite() && bound > 0.0).then_some(bound)
    }

    /// The client-server time in seconds: every peer's copy from the seed.
    pub fn client_server(&self, bytes: u64) -> Option<f64> {
        let seconds = self.peer_uploads.len() as f64 * bytes as f64 / self.seed_upload;
        (seconds.is_finite() && seconds > 0.0).then_some(seconds)
    }
}

/// A rate flag's value in bytes per second: 0 means unlimited.
pub fn rate_from_limit(bytes_per_second: u64) -> f64 {
    if bytes_per_second == 0 {
        f64::INFINITY
    } else {
        bytes_per_second as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: f64 = 1024.0 * 1024.0;

    fn uniform(n: usize, up: f64, down: f64, seed: f64) -> Capacities {
        Capacities {
            seed_upload: seed,
            peer_uploads: vec![up; n],
            peer_downloads: vec![down; n],
        }
    }

    #[test]
    fn seed_bound_dominates_when_peers_are_many() {
        // 8 peers, everyone at 25 MiB/s up, downloads unlimited, 100 MiB:
        // F/u_s = 4 s, N*F/(9 * 25 MiB/s) = 3.56 s.
        let caps = uniform(8, 25.0 * MIB, f64::INFINITY, 25.0 * MIB);
        let bound = caps.p2p_lower_bound(100 << 20).expect("bounded");
        assert!((bound - 4.0).abs() < 1e-9, "{bound}");
        let cs = caps.client_server(100 << 20).expect("bounded");
        assert!((cs - 32.0).abs() < 1e-9, "{cs}");
    }

    #[test]
    fn aggregate_upload_bound_dominates_when_peers_upload_little() {
        // Peers upload 1 MiB/s: 4 * 100 / (10 + 4) = 28.6 s > 100/10 = 10 s.
        let caps = uniform(4, MIB, f64::INFINITY, 10.0 * MIB);
        let bound = caps.p2p_lower_bound(100 << 20).expect("bounded");
        assert!((bound - 400.0 / 14.0).abs() < 1e-9, "{bound}");
    }

    #[test]
    fn slowest_download_bounds_everyone() {
        let mut caps = uniform(3, 50.0 * MIB, 50.0 * MIB, 50.0 * MIB);
        caps.peer_downloads[1] = 5.0 * MIB;
        let bound = caps.p2p_lower_bound(100 << 20).expect("bounded");
        assert!((bound - 20.0).abs() < 1e-9, "{bound}");
    }

    #[test]
    fn nothing_capped_has_no_bound() {
        let caps = uniform(3, f64::INFINITY, f64::INFINITY, rate_from_limit(0));
        assert_eq!(caps.p2p_lower_bound(1 << 20), None);
        assert_eq!(caps.client_server(1 << 20), None);
    }
}
