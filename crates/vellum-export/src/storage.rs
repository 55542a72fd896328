//! Where export files live: a directory under the data directory (served by Vellum at signed
//! links), or an S3-compatible bucket (downloaded from presigned S3 URLs).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use vellum_core::export::Export;

/// Where export files are kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageSettings {
    /// A local directory (created if missing).
    Local {
        /// The directory.
        root: PathBuf,
    },
    /// An S3-compatible bucket. Credentials come from the standard `AWS_*` environment variables.
    #[cfg(feature = "s3")]
    S3 {
        /// The bucket.
        bucket: String,
        /// A non-AWS endpoint (`http://127.0.0.1:9000`); plain HTTP is allowed when it says so.
        endpoint: Option<String>,
        /// The region (`us-east-1` when unset and not in the environment).
        region: Option<String>,
        /// A key prefix inside the bucket.
        prefix: String,
    },
}

/// Export file storage.
#[derive(Clone, Debug)]
pub struct Storage {
    objects: Arc<dyn ObjectStore>,
    local_root: Option<PathBuf>,
    #[cfg(feature = "s3")]
    s3: Option<Arc<object_store::aws::AmazonS3>>,
    prefix: String,
}

impl Storage {
    /// Opens the storage the settings name.
    pub fn open(settings: &StorageSettings) -> Result<Self, object_store::Error> {
        match settings {
            StorageSettings::Local { root } => {
                vellum_store::private_files::create_private_dir_all(root).map_err(|error| {
                    object_store::Error::Generic {
                        store: "LocalFileSystem",
                        source: Box::new(error),
                    }
                })?;
                Ok(Self {
                    objects: Arc::new(LocalFileSystem::new_with_prefix(root)?),
                    local_root: Some(root.clone()),
                    #[cfg(feature = "s3")]
                    s3: None,
                    prefix: String::new(),
                })
            }
            #[cfg(feature = "s3")]
            StorageSettings::S3 {
                bucket,
                endpoint,
                region,
                prefix,
            } => {
                let mut builder = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
                if let Some(endpoint) = endpoint {
                    builder = builder
                        .with_endpoint(endpoint)
                        .with_allow_http(endpoint.starts_with("http://"));
                }
                if let Some(region) = region {
                    builder = builder.with_region(region);
                }
                let s3 = Arc::new(builder.build()?);
                Ok(Self {
                    objects: s3.clone(),
                    local_root: None,
                    s3: Some(s3),
                    prefix: prefix.trim_matches('/').to_owned(),
                })
            }
        }
    }

    /// Whether downloads are served by Vellum itself (local files) rather than by the bucket.
    pub fn is_local(&self) -> bool {
        #[cfg(feature = "s3")]
        return self.s3.is_none();
        #[cfg(not(feature = "s3"))]
        true
    }

    /// The object store.
    pub fn objects(&self) -> &Arc<dyn ObjectStore> {
        &self.objects
    }

    /// The object path of an export's file.
    pub fn path_for(&self, export: &Export) -> Path {
        let name = format!("{}.{}", export.id, export.format.extension());
        if self.prefix.is_empty() {
            Path::from_iter(["exports", name.as_str()])
        } else {
            Path::from_iter([self.prefix.as_str(), "exports", name.as_str()])
        }
    }

    /// A presigned GET URL from the bucket, when the storage is a bucket.
    pub async fn presigned_url(&self, path: &str, lifetime: Duration) -> Option<Result<String, object_store::Error>> {
        #[cfg(feature = "s3")]
        if let Some(s3) = &self.s3 {
            use object_store::signer::Signer;
            let path = Path::from(path);
            return Some(
                s3.signed_url(http::Method::GET, &path, lifetime)
                    .await
                    .map(|url| url.to_string()),
            );
        }
        let _ = (path, lifetime);
        None
    }

    /// Deletes the staging files (`<path>#<n>`) that interrupted local uploads of one export's
    /// file left; they are invisible to readers but take space. Returns how many were removed.
    /// Call only while no one else writes that file (the caller holds the export's lease), so
    /// that other exports' uploads in progress, of this process or another, are never touched.
    /// (Incomplete S3 multipart uploads are the bucket's to expire: set an
    /// AbortIncompleteMultipartUpload rule.)
    pub fn remove_interrupted_uploads(&self, path: &Path) -> std::io::Result<usize> {
        let Some(root) = &self.local_root else {
            return Ok(0);
        };
        let Some(name) = path.filename() else {
            return Ok(0);
        };
        let mut directory = root.clone();
        directory.extend(path.parts().map(|part| part.as_ref().to_owned()));
        directory.pop();
        let entries = match std::fs::read_dir(&directory) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(error) => return Err(error),
        };
        let mut removed = 0;
        for entry in entries {
            let entry = entry?;
            let staged = entry
                .file_name()
                .to_str()
                .and_then(|file_name| file_name.strip_prefix(name))
                .and_then(|rest| rest.strip_prefix('#'))
                .is_some_and(|number| !number.is_empty() && number.bytes().all(|byte| byte.is_ascii_digit()));
            if staged {
                std::fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Opens a stored file for reading.
    pub async fn get(&self, path: &str) -> Result<object_store::GetResult, object_store::Error> {
        self.objects.get(&Path::from(path)).await
    }

    /// Deletes a stored file; a missing file is not an error.
    pub async fn delete(&self, path: &str) -> Result<(), object_store::Error> {
        match self.objects.delete(&Path::from(path)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(error),
        }
    }
}
