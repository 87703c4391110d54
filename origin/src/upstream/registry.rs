//! An OCI distribution registry as an upstream, through `oci-client`.
//!
//! oci-client carries the parts that are easy to get subtly wrong: the
//! `WWW-Authenticate` challenge, basic auth, the bearer-token flow with the
//! token cached until its `exp` claim (per repository and operation), TLS
//! with extra CA certificates, digest checks of manifests and of streamed
//! blobs. One client per namespace keeps credentials and tokens apart.
//!
//! Not taken from it: the manifest's `Content-Type` (its raw pull does not
//! return it; see `media`). Blob lengths come from the GET's
//! `Content-Length`, so no separate HEAD request is made.

use futures_util::StreamExt as _;
use oci_client::client::{
    BlobResponse, Certificate, CertificateEncoding, ClientConfig, ClientProtocol,
};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use shoal_registry::media::MANIFEST_TYPES;
use shoal_registry::{ManifestReference, RepositoryName};
use shoal_swarm::Digest;

use super::{BlobStream, Manifest, UpstreamError};
use crate::config::RegistrySpec;

/// Bound on connecting to the registry; reads are bounded per chunk below.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Bound on one read: a registry that stops sending fails the fetch
/// instead of pinning it forever.
const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// One registry namespace.
pub(crate) struct RegistryBackend {
    namespace: String,
    endpoint: String,
    client: Client,
    auth: RegistryAuth,
    /// Removed from every error message, whatever the source echoed.
    secrets: Vec<String>,
}

impl RegistryBackend {
    pub(crate) fn new(namespace: &str, spec: &RegistrySpec) -> Result<Self, UpstreamError> {
        let config = ClientConfig {
            protocol: if spec.insecure {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            extra_root_certificates: spec
                .ca_pem
                .iter()
                .map(|pem| Certificate {
                    encoding: CertificateEncoding::Pem,
                    data: pem.clone(),
                })
                .collect(),
            connect_timeout: Some(CONNECT_TIMEOUT),
            read_timeout: Some(READ_TIMEOUT),
            ..ClientConfig::default()
        };
        // `Client::new` silently falls back to defaults (dropping the CA)
        // when the configuration is unusable; try_from reports it.
        let client = Client::try_from(config).map_err(|e| UpstreamError::Failed {
            namespace: namespace.to_owned(),
            message: format!("building the registry client: {e}"),
        })?;
        let (auth, secrets) = match &spec.credentials {
            Some(c) => (
                RegistryAuth::Basic(c.username.clone(), c.password.expose().to_owned()),
                vec![c.password.expose().to_owned()],
            ),
            None => (RegistryAuth::Anonymous, Vec::new()),
        };
        Ok(RegistryBackend {
            namespace: namespace.to_owned(),
            endpoint: spec.endpoint.clone(),
            client,
            auth,
            secrets,
        })
    }

    pub(crate) async fn manifest(
        &self,
        name: &RepositoryName,
        reference: &ManifestReference,
    ) -> Result<Manifest, UpstreamError> {
        let image = match reference {
            ManifestReference::Tag(tag) => {
                Reference::with_tag(self.endpoint.clone(), name.to_string(), tag.clone())
            }
            ManifestReference::Digest(digest) => {
                Reference::with_digest(self.endpoint.clone(), name.to_string(), digest.to_string())
            }
        };
        let (bytes, digest) = self
            .client
            .pull_manifest_raw(&image, &self.auth, &MANIFEST_TYPES)
            .await
            .map_err(|e| self.error(e))?;
        let digest: Digest = digest
            .parse()
            .map_err(|e| self.failed(format!("manifest digest {digest:?}: {e}")))?;
        let media_type = shoal_registry::Manifest::parse(&bytes)
            .map_err(|e| self.failed(e.to_string()))?
            .media_type;
        Ok(Manifest {
            media_type,
            digest,
            bytes,
        })
    }

    pub(crate) async fn blob(
        &self,
        name: &RepositoryName,
        digest: &Digest,
    ) -> Result<BlobStream, UpstreamError> {
        let digest_text = digest.to_string();
        let image =
            Reference::with_digest(self.endpoint.clone(), name.to_string(), digest_text.clone());
        self.client
            .store_auth_if_needed(image.resolve_registry(), &self.auth)
            .await;
        // `bytes=0-` makes the registry answer 206, for which oci-client
        // hands the stream over without hashing it: the store already hashes
        // every byte (digest and pieces) as it writes, and a third SHA-256
        // pass costs a core at the origin's line rate. A registry that
        // ignores the range answers 200 and oci-client verifies as well.
        let stream = match self
            .client
            .pull_blob_stream_partial(&image, digest_text.as_str(), 0, None)
            .await
            .map_err(|e| self.error(e))?
        {
            BlobResponse::Full(stream) | BlobResponse::Partial(stream) => stream,
        };
        let length = stream
            .content_length
            .ok_or_else(|| self.failed("blob response has no Content-Length".into()))?;
        Ok(BlobStream {
            length,
            body: stream.stream.boxed(),
        })
    }

    /// Maps oci-client's error onto ours: absences, refusals, the rest.
    fn error(&self, error: OciDistributionError) -> UpstreamError {
        let refused = || UpstreamError::Unauthorized {
            namespace: self.namespace.clone(),
        };
        match &error {
            OciDistributionError::ImageManifestNotFoundError(_) => UpstreamError::NotFound,
            OciDistributionError::UnauthorizedError { .. }
            | OciDistributionError::AuthenticationFailure(_) => refused(),
            OciDistributionError::ServerError { code: 404, .. } => UpstreamError::NotFound,
            OciDistributionError::ServerError {
                code: 401 | 403, ..
            } => refused(),
            OciDistributionError::RegistryError { envelope, .. } => {
                let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
                if codes.iter().any(|c| {
                    matches!(
                        c,
                        OciErrorCode::ManifestUnknown
                            | OciErrorCode::BlobUnknown
                            | OciErrorCode::NameUnknown
                            | OciErrorCode::NotFound
                    )
                }) {
                    UpstreamError::NotFound
                } else if codes
                    .iter()
                    .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
                {
                    refused()
                } else {
                    self.failed(error_chain(&error))
                }
            }
            _ => self.failed(error_chain(&error)),
        }
    }

    fn failed(&self, message: String) -> UpstreamError {
        UpstreamError::Failed {
            namespace: self.namespace.clone(),
            message: redact(message, &self.secrets),
        }
    }
}

/// `message` with every occurrence of each secret replaced.
pub(crate) fn redact(mut message: String, secrets: &[String]) -> String {
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        message = message.replace(secret.as_str(), "<redacted>");
    }
    message
}

/// An error and its sources on one line.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_everywhere() {
        let secrets = vec!["hunter2".to_owned(), String::new()];
        assert_eq!(
            redact("bad hunter2 and hunter2".into(), &secrets),
            "bad <redacted> and <redacted>"
        );
    }
}
