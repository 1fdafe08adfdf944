//! The TLS trust of the Chatwork client: Mozilla's root certificates compiled into the
//! binary (`webpki-roots`), as trust anchors already in the form rustls verifies with.
//!
//! Why not the system's store (reqwest's default, rustls' platform verifier): on Linux it
//! reads the certificate bundle and then every file of the certificate directory (145 on
//! a Debian machine) and parses them all when the client is built, which is at every
//! Lambda cold start of the sync consumers; that made their cold start 2.5 to 2.8 times a
//! hello-world's. Compiled-in anchors cost no file read and no parsing. Chatwork's API
//! (`api.chatwork.com`) is a public endpoint with a certificate from a public CA, so
//! Mozilla's list is the right trust for it; the price is that the list changes only
//! when the crate is updated and the functions rebuilt (BENCHMARKS.md, README's security
//! notes). A base URL served with a private CA (a proxy in front of Chatwork) is not
//! trusted.

use std::sync::{Arc, LazyLock};

/// The client configuration, built once per process.
static CONFIG: LazyLock<Result<rustls::ClientConfig, String>> = LazyLock::new(|| {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth())
});

/// The rustls configuration the Chatwork client's reqwest uses (TLS 1.2 and 1.3,
/// aws-lc-rs, Mozilla's roots).
pub(crate) fn client_config() -> Result<rustls::ClientConfig, String> {
    CONFIG.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reqwest_takes_the_compiled_in_roots() {
        assert!(webpki_roots::TLS_SERVER_ROOTS.len() > 100, "Mozilla's list");
        // reqwest recognises the configuration only when it is of the rustls it was
        // built with; otherwise `build` fails with an unknown TLS backend.
        reqwest::Client::builder()
            .tls_backend_preconfigured(client_config().unwrap())
            .build()
            .unwrap();
        let unknown = reqwest::Client::builder()
            .tls_backend_preconfigured("not a TLS configuration")
            .build();
        assert!(unknown.is_err());
    }
}
