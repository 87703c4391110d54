//! The registry API's path, name, reference, digest and namespace parsers
//! on arbitrary strings. Whatever parses must display back to a string
//! that parses equal (and, for names, references and digests, to the very
//! input: there is one spelling of each).
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_registry::reference::{
    ManifestReference, RegistryRoute, RepositoryName, parse_digest, parse_namespace, parse_tag,
};

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(route) = RegistryRoute::parse(raw) {
        let shown = match &route {
            RegistryRoute::Base => "/v2/".to_owned(),
            RegistryRoute::Manifest { name, reference } => {
                format!("/v2/{name}/manifests/{reference}")
            }
            RegistryRoute::Blob { name, digest } => format!("/v2/{name}/blobs/{digest}"),
        };
        assert_eq!(shown, raw, "a route has one spelling");
        assert_eq!(RegistryRoute::parse(&shown).as_ref(), Ok(&route));
    }
    if let Ok(name) = RepositoryName::parse(raw) {
        assert_eq!(name.to_string(), raw);
        assert_eq!(name.as_str(), raw);
        assert_eq!(RepositoryName::parse(&name.to_string()).as_ref(), Ok(&name));
    }
    if let Ok(reference) = ManifestReference::parse(raw) {
        assert_eq!(reference.to_string(), raw);
        assert_eq!(
            ManifestReference::parse(&reference.to_string()).as_ref(),
            Ok(&reference)
        );
    }
    if let Ok(tag) = parse_tag(raw) {
        assert_eq!(parse_tag(&tag).as_deref(), Ok(tag.as_str()));
    }
    if let Ok(digest) = parse_digest(raw) {
        assert_eq!(digest.to_string(), raw);
        assert_eq!(parse_digest(&digest.to_string()), Ok(digest));
    }
    if let Ok(namespace) = parse_namespace(raw) {
        assert!(namespace.eq_ignore_ascii_case(raw));
        assert_eq!(
            parse_namespace(&namespace).as_deref(),
            Ok(namespace.as_str())
        );
    }
});
