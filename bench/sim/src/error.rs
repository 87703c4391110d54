//! Why a simulation could not run.

/// Bad parameters, found before anything is simulated.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A count, size, rate or duration that must be positive is not.
    #[error("{0} must be positive")]
    NotPositive(&'static str),
    /// A share outside 0..=1.
    #[error("{0} must be between 0 and 1, got {1}")]
    Fraction(&'static str, f64),
    /// The piece length is not what production accepts.
    #[error("piece length {0} is not a power of two from 1 MiB to 16 MiB")]
    PieceLength(u32),
    /// More agents than the simulator's host numbering allows.
    #[error("{0} agents is more than this simulator supports (1,000,000)")]
    TooMany(u32),
    /// The metainfo constructor refused the blob geometry.
    #[error("building metainfo")]
    Metainfo(#[from] shoal_swarm::metainfo::MetainfoError),
}
