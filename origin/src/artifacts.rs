//! Artifacts that are not images (a package, a model file): published with
//! `PUT /shoal/v1/artifacts/<digest>` on any origin and stored, seeded and
//! replicated exactly like a pulled blob.
//!
//! They live in the registry namespace under one reserved repository,
//! [`ARTIFACTS_REPOSITORY`], in every namespace: agents fetch them with the
//! ordinary blob path (`/v2/shoal/artifacts/blobs/<digest>`), and the
//! tracker's metainfo call finds them on the origins. An origin never asks
//! upstream for this repository: an artifact nobody published is unknown.

use shoal_registry::RepositoryName;

/// The repository artifacts are served under.
pub const ARTIFACTS_REPOSITORY: &str = "shoal/artifacts";

/// Whether `name` is the artifacts repository.
pub(crate) fn is_artifact(name: &RepositoryName) -> bool {
    name.as_str() == ARTIFACTS_REPOSITORY
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserved_name_is_a_valid_repository() {
        let name = RepositoryName::parse(ARTIFACTS_REPOSITORY).unwrap();
        assert!(is_artifact(&name));
        assert!(!is_artifact(&RepositoryName::parse("shoal/app").unwrap()));
    }
}
