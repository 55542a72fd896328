//! TLS to the database (rustls): the system's certificate authorities, plus any in the
//! configured CA file. `sslmode` in the URL decides whether TLS is used (`disable`), tried
//! (`prefer`, the default) or required (`require`).

use std::path::Path;

use rustls_pki_types::pem::PemObject;

use crate::StoreError;

pub(super) fn connector(ca_file: Option<&Path>) -> Result<tokio_postgres_rustls::MakeRustlsConnect, StoreError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for certificate in native.certs {
        // A system certificate rustls cannot parse is skipped, as every client does.
        let _ = roots.add(certificate);
    }
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|error| StoreError::InvalidInput {
            field: "database_ca_file",
            message: format!("cannot read {}: {error}", path.display()),
        })?;
        let mut added = 0;
        for certificate in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
            let certificate = certificate.map_err(|error| StoreError::InvalidInput {
                field: "database_ca_file",
                message: format!("{} is not PEM: {error}", path.display()),
            })?;
            roots.add(certificate).map_err(|error| StoreError::InvalidInput {
                field: "database_ca_file",
                message: format!("{} holds an unusable certificate: {error}", path.display()),
            })?;
            added += 1;
        }
        if added == 0 {
            return Err(StoreError::InvalidInput {
                field: "database_ca_file",
                message: format!("{} holds no certificate", path.display()),
            });
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| StoreError::Internal(format!("TLS configuration: {error}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}
