//! A throwaway PKI for mTLS tests: a CA and leaf certificates for loopback
//! (`localhost` and `127.0.0.1`, server and client use), written as PEM
//! files the way a mounted Kubernetes Secret holds them. Depends on rcgen
//! and std only, so that the swarm's tests can include this file by path
//! without depending on the harness.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, SanType,
};

/// A CA that signs leaf certificates.
pub struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
    dir: PathBuf,
}

/// The files of one component's `[tls]` table.
#[derive(Debug, Clone)]
pub struct LeafFiles {
    /// The CA bundle.
    pub ca: PathBuf,
    /// The certificate.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

impl LeafFiles {
    /// The `[tls]` table naming these files, with `peer` as given.
    pub fn toml(&self, peer: bool) -> String {
        format!(
            "[tls]\nca = {:?}\ncert = {:?}\nkey = {:?}\npeer = {peer}\n",
            self.ca.display().to_string(),
            self.cert.display().to_string(),
            self.key.display().to_string()
        )
    }
}

impl Pki {
    /// A new CA named `name`, writing its files under `dir`.
    pub fn new(dir: &Path, name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("ca key"))
            .expect("ca certificate");
        std::fs::create_dir_all(dir).expect("pki dir");
        std::fs::write(dir.join("ca.pem"), ca.pem()).expect("writing ca.pem");
        Pki {
            ca,
            dir: dir.to_owned(),
        }
    }

    /// The CA certificate's file.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// Issues a certificate for `name` (its common name, and the file
    /// names) valid for `localhost` and `127.0.0.1`, and writes it.
    pub fn issue(&self, name: &str) -> LeafFiles {
        let (cert, key) = self.leaf_pem(name);
        let files = LeafFiles {
            ca: self.ca_file(),
            cert: self.dir.join(format!("{name}.crt")),
            key: self.dir.join(format!("{name}.key")),
        };
        std::fs::write(&files.cert, cert).expect("writing the certificate");
        std::fs::write(&files.key, key).expect("writing the key");
        files
    }

    /// A fresh certificate and key for `name`, as PEM, not written.
    pub fn leaf_pem(&self, name: &str) -> (String, String) {
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("leaf params");
        params
            .subject_alt_names
            .push(SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])));
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.ca).expect("leaf certificate");
        (cert.pem(), key.serialize_pem())
    }
}
