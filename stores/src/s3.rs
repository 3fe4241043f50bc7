//! S3 stores (aws-sdk-s3): path-style addressing against any S3-compatible endpoint,
//! credentials from the standard chain or from named environment variables, retries with
//! backoff on throttling and transient errors.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_config::BehaviorVersion;
use aws_config::meta::region::RegionProviderChain;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::{
    Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use futures::FutureExt;
use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, StreamExt};

use crate::object_store::{
    Condition, DeleteFailure, DeleteReport, Metadata, Object, ObjectInfo, ObjectReader,
    ObjectStore, StoreError, check_key, forward_to_inherent,
};
use crate::stats::{Request, RequestCounts, RequestStats};
use model::progress::Progress;
use model::secret::Secret;
use model::store_url::S3Options;

/// What S3 said of an object. A missing or unreadable last-modified time is an error, never a
/// default: read as the epoch, it would make the object look ancient to a janitor.
fn object_info(
    location: impl FnOnce() -> String,
    key: &str,
    length: Option<i64>,
    modified: Option<&aws_sdk_s3::primitives::DateTime>,
    etag: Option<&str>,
) -> Result<ObjectInfo, StoreError> {
    let last_modified = modified
        .and_then(|d| SystemTime::try_from(*d).ok())
        .ok_or_else(|| StoreError::Service {
            location: location(),
            code: "MissingLastModified".into(),
            message: "the server gave no usable last-modified time; refusing to guess its age"
                .into(),
        })?;
    Ok(ObjectInfo {
        key: key.to_string(),
        size: length.unwrap_or(0).max(0) as u64,
        last_modified,
        etag: etag.map(str::to_string),
    })
}

/// `len` bytes of the file at `path` from `offset`, streamed.
async fn file_part(
    path: &std::path::Path,
    offset: u64,
    len: u64,
) -> Result<ByteStream, StoreError> {
    ByteStream::read_from()
        .path(path)
        .offset(offset)
        .length(aws_sdk_s3::primitives::Length::Exact(len))
        .build()
        .await
        .map_err(|e| StoreError::Io {
            location: path.display().to_string(),
            source: std::io::Error::other(e.to_string()),
        })
}

fn user_metadata(
    m: Option<&std::collections::HashMap<String, String>>,
) -> BTreeMap<String, String> {
    m.map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

#[derive(Debug)]
struct Inner {
    client: Client,
    bucket: String,
    prefix: String,
    stats: RequestStats,
}

#[derive(Debug, Clone)]
pub struct S3Store {
    inner: Arc<Inner>,
}

impl S3Store {
    pub async fn connect(
        bucket: String,
        prefix: String,
        opts: &S3Options,
    ) -> Result<S3Store, StoreError> {
        let region = RegionProviderChain::first_try(opts.region.clone().map(Region::new))
            .or_default_provider()
            .or_else(Region::new("us-east-1"));
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).region(region);
        if let Some(url) = &opts.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        match (&opts.access_key_env, &opts.secret_key_env) {
            (Some(ak_var), Some(sk_var)) => {
                let read = |var: &str| {
                    Secret::from_env(var).ok_or_else(|| {
                        StoreError::Credentials(format!(
                            "environment variable `{var}` is not set or empty"
                        ))
                    })
                };
                let (ak, sk) = (read(ak_var)?, read(sk_var)?);
                loader = loader.credentials_provider(Credentials::new(
                    ak.expose(),
                    sk.expose(),
                    None,
                    None,
                    "named-environment-variables",
                ));
            }
            (None, None) => {}
            _ => {
                return Err(StoreError::Credentials(
                    "name both the access-key and the secret-key variable, or neither".into(),
                ));
            }
        }
        let sdk = loader.load().await;
        let config = aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(5)
                    .with_initial_backoff(Duration::from_millis(200)),
            )
            // S3-compatible servers (Ceph, MinIO, older appliances) often reject the newer
            // default checksum trailers; send checksums only where the API requires them.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .build();
        Ok(S3Store {
            inner: Arc::new(Inner {
                client: Client::from_conf(config),
                bucket,
                prefix,
                stats: RequestStats::default(),
            }),
        })
    }

    fn url(&self) -> String {
        if self.inner.prefix.is_empty() {
            format!("s3://{}", self.inner.bucket)
        } else {
            format!("s3://{}/{}", self.inner.bucket, self.inner.prefix)
        }
    }

    fn location(&self, key: &str) -> String {
        format!("s3://{}/{}", self.inner.bucket, self.full_key(key))
    }

    fn full_key(&self, key: &str) -> String {
        if self.inner.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.inner.prefix)
        }
    }

    fn relative<'a>(&self, full: &'a str) -> &'a str {
        if self.inner.prefix.is_empty() {
            full
        } else {
            full.strip_prefix(&self.inner.prefix)
                .and_then(|k| k.strip_prefix('/'))
                .unwrap_or(full)
        }
    }

    fn map_err<E>(&self, location: String, err: SdkError<E, HttpResponse>) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        match &err {
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => StoreError::Unreachable {
                location,
                message: DisplayErrorContext(&err).to_string(),
            },
            SdkError::ServiceError(se) => {
                let status = se.raw().status().as_u16();
                let code = se.err().code().unwrap_or_default().to_string();
                let message = se.err().message().unwrap_or_default().to_string();
                match (code.as_str(), status) {
                    ("NoSuchBucket", _) => StoreError::NoSuchBucket {
                        bucket: self.inner.bucket.clone(),
                    },
                    ("NoSuchKey" | "NotFound", _) | (_, 404) => StoreError::NotFound { location },
                    ("AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch", _)
                    | (_, 403) => StoreError::AccessDenied {
                        location,
                        message: if message.is_empty() {
                            code
                        } else {
                            format!("{code}: {message}")
                        },
                    },
                    // A conditional write that raced another is a conflict like any other.
                    ("PreconditionFailed" | "ConditionalRequestConflict", _) | (_, 412) => {
                        StoreError::PreconditionFailed { location }
                    }
                    _ => StoreError::Service {
                        location,
                        code: if code.is_empty() {
                            format!("HTTP {status}")
                        } else {
                            code
                        },
                        message,
                    },
                }
            }
            _ => StoreError::Service {
                location,
                code: "RequestError".into(),
                message: DisplayErrorContext(&err).to_string(),
            },
        }
    }

    fn list(&self, prefix: &str) -> BoxStream<'static, Result<ObjectInfo, StoreError>> {
        enum Page {
            First,
            Next(String),
            Done,
        }
        let this = self.clone();
        let full_prefix = self.full_key(prefix);
        stream::unfold(Page::First, move |page| {
            let this = this.clone();
            let full_prefix = full_prefix.clone();
            async move {
                let token = match page {
                    Page::Done => return None,
                    Page::First => None,
                    Page::Next(t) => Some(t),
                };
                this.inner.stats.count(Request::List);
                let resp = this
                    .inner
                    .client
                    .list_objects_v2()
                    .bucket(&this.inner.bucket)
                    .prefix(&full_prefix)
                    .set_continuation_token(token)
                    .send()
                    .await;
                let out = match resp {
                    Ok(out) => out,
                    Err(e) => {
                        let err = this.map_err(this.location(""), e);
                        return Some((stream::iter(vec![Err(err)]), Page::Done));
                    }
                };
                let mut items: Vec<Result<ObjectInfo, StoreError>> = out
                    .contents()
                    .iter()
                    .map(|o| {
                        let key = o.key().ok_or_else(|| StoreError::Service {
                            location: this.location(""),
                            code: "MissingKey".into(),
                            message: "the listing holds an object without a key".into(),
                        })?;
                        object_info(
                            || this.location(this.relative(key)),
                            this.relative(key),
                            o.size(),
                            o.last_modified(),
                            o.e_tag(),
                        )
                    })
                    .collect();
                let next = match (out.is_truncated(), out.next_continuation_token()) {
                    (Some(true), Some(t)) => Page::Next(t.to_string()),
                    // A listing that says there is more but not where is incomplete: what it
                    // left out would look deleted.
                    (Some(true), None) => {
                        items.push(Err(StoreError::Service {
                            location: format!("s3://{}/{}", this.inner.bucket, full_prefix),
                            code: "TruncatedListing".into(),
                            message: "the listing is truncated but gives no continuation token"
                                .into(),
                        }));
                        Page::Done
                    }
                    _ => Page::Done,
                };
                Some((stream::iter(items), next))
            }
        })
        .flatten()
        .boxed()
    }

    async fn head(&self, key: &str) -> Result<(ObjectInfo, BTreeMap<String, String>), StoreError> {
        check_key(key)?;
        self.inner.stats.count(Request::Head);
        let out = self
            .inner
            .client
            .head_object()
            .bucket(&self.inner.bucket)
            .key(self.full_key(key))
            .send()
            .await
            .map_err(|e| self.map_err(self.location(key), e))?;
        let info = object_info(
            || self.location(key),
            key,
            out.content_length(),
            out.last_modified(),
            out.e_tag(),
        )?;
        let metadata = user_metadata(out.metadata());
        Ok((info, metadata))
    }

    /// One GET: what it says of the object, and its body still to read.
    async fn get_object(
        &self,
        key: &str,
    ) -> Result<(ObjectInfo, BTreeMap<String, String>, ByteStream), StoreError> {
        check_key(key)?;
        self.inner.stats.count(Request::Get);
        let out = self
            .inner
            .client
            .get_object()
            .bucket(&self.inner.bucket)
            .key(self.full_key(key))
            .send()
            .await
            .map_err(|e| self.map_err(self.location(key), e))?;
        let info = object_info(
            || self.location(key),
            key,
            out.content_length(),
            out.last_modified(),
            out.e_tag(),
        )?;
        Ok((info, user_metadata(out.metadata()), out.body))
    }

    /// The object's body as it arrives, never whole in memory.
    async fn reader(&self, key: &str) -> Result<(ObjectInfo, ObjectReader), StoreError> {
        let (info, _, body) = self.get_object(key).await?;
        Ok((info, Box::new(body.into_async_read())))
    }

    async fn get(&self, key: &str) -> Result<Object, StoreError> {
        let (info, metadata, body) = self.get_object(key).await?;
        let bytes = body
            .collect()
            .await
            .map_err(|e| StoreError::Unreachable {
                location: self.location(key),
                message: format!("reading the body: {e}"),
            })?
            .into_bytes()
            .to_vec();
        Ok(Object {
            info,
            metadata,
            bytes,
        })
    }

    async fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        metadata: &BTreeMap<String, String>,
        condition: &Condition,
    ) -> Result<Option<String>, StoreError> {
        check_key(key)?;
        self.inner.stats.count(Request::Put);
        let mut req = self
            .inner
            .client
            .put_object()
            .bucket(&self.inner.bucket)
            .key(self.full_key(key))
            .body(ByteStream::from(bytes));
        if !metadata.is_empty() {
            req = req.set_metadata(Some(metadata.clone().into_iter().collect()));
        }
        req = match condition {
            Condition::None => req,
            Condition::IfNoneMatch => req.if_none_match("*"),
            Condition::IfMatch(etag) => req.if_match(etag),
        };
        let out = req.send().await.map_err(|e| {
            match (self.map_err(self.location(key), e), condition) {
                // S3 answers NoSuchKey when the version to replace is gone: the condition does
                // not hold, as when it was replaced.
                (StoreError::NotFound { location }, Condition::IfMatch(_)) => {
                    StoreError::PreconditionFailed { location }
                }
                (e, _) => e,
            }
        })?;
        Ok(out.e_tag().map(str::to_string))
    }

    async fn put_file(
        &self,
        key: &str,
        path: &std::path::Path,
        metadata: &BTreeMap<String, String>,
        part_size: u64,
        progress: &dyn Progress,
    ) -> Result<(), StoreError> {
        check_key(key)?;
        let part_size = part_size.max(crate::object_store::MIN_PART_SIZE);
        let size = tokio::fs::metadata(path)
            .await
            .map_err(|source| StoreError::Io {
                location: path.display().to_string(),
                source,
            })?
            .len();
        let location = self.location(key);
        let meta = (!metadata.is_empty()).then(|| metadata.clone().into_iter().collect());
        if size <= part_size {
            self.inner.stats.count(Request::Put);
            let body = file_part(path, 0, size).await?;
            self.inner
                .client
                .put_object()
                .bucket(&self.inner.bucket)
                .key(self.full_key(key))
                .set_metadata(meta)
                .body(body)
                .send()
                .await
                .map_err(|e| self.map_err(location, e))?;
            progress(size);
            return Ok(());
        }
        self.inner.stats.count(Request::Put);
        let created = self
            .inner
            .client
            .create_multipart_upload()
            .bucket(&self.inner.bucket)
            .key(self.full_key(key))
            .set_metadata(meta)
            .send()
            .await
            .map_err(|e| self.map_err(location.clone(), e))?;
        let upload_id = created.upload_id().unwrap_or_default().to_string();
        match self
            .upload_parts(key, path, size, part_size, &upload_id, progress)
            .await
        {
            Ok(()) => Ok(()),
            Err(e) => {
                // Parts of an unfinished upload are stored (and billed) until aborted.
                let _ = self
                    .inner
                    .client
                    .abort_multipart_upload()
                    .bucket(&self.inner.bucket)
                    .key(self.full_key(key))
                    .upload_id(&upload_id)
                    .send()
                    .await;
                Err(e)
            }
        }
    }

    async fn upload_parts(
        &self,
        key: &str,
        path: &std::path::Path,
        size: u64,
        part_size: u64,
        upload_id: &str,
        progress: &dyn Progress,
    ) -> Result<(), StoreError> {
        use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
        let location = self.location(key);
        let count = size.div_ceil(part_size);
        // A few parts in flight; each streams from its slice of the file, so memory stays
        // bounded by the SDK's buffers, not by the part size.
        let parts: Vec<Result<CompletedPart, StoreError>> = stream::iter(0..count)
            .map(|i| {
                let location = location.clone();
                async move {
                    let offset = i * part_size;
                    let len = part_size.min(size - offset);
                    let number = i as i32 + 1;
                    self.inner.stats.count(Request::Put);
                    let out = self
                        .inner
                        .client
                        .upload_part()
                        .bucket(&self.inner.bucket)
                        .key(self.full_key(key))
                        .upload_id(upload_id)
                        .part_number(number)
                        .content_length(len as i64)
                        .body(file_part(path, offset, len).await?)
                        .send()
                        .await
                        .map_err(|e| self.map_err(format!("{location} (part {number})"), e))?;
                    progress(len);
                    Ok(CompletedPart::builder()
                        .set_e_tag(out.e_tag().map(str::to_string))
                        .part_number(number)
                        .build())
                }
            })
            .buffered(4)
            .collect()
            .await;
        let parts = parts.into_iter().collect::<Result<Vec<_>, _>>()?;
        self.inner.stats.count(Request::Put);
        self.inner
            .client
            .complete_multipart_upload()
            .bucket(&self.inner.bucket)
            .key(self.full_key(key))
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| self.map_err(location, e))?;
        Ok(())
    }

    async fn get_to_file(
        &self,
        key: &str,
        dest: &std::path::Path,
        progress: &dyn Progress,
    ) -> Result<(ObjectInfo, BTreeMap<String, String>), StoreError> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (info, metadata, body) = self.get_object(key).await?;
        let io = |source| StoreError::Io {
            location: dest.display().to_string(),
            source,
        };
        let mut file = tokio::fs::File::create(dest).await.map_err(io)?;
        let mut body = body.into_async_read();
        let mut buf = vec![0u8; 1 << 20];
        let mut copied = 0u64;
        loop {
            let n = body
                .read(&mut buf)
                .await
                .map_err(|e| StoreError::Unreachable {
                    location: self.location(key),
                    message: format!("reading the body into {}: {e}", dest.display()),
                })?;
            if n == 0 {
                break;
            }
            file.write_all(&buf[..n]).await.map_err(io)?;
            copied += n as u64;
            progress(n as u64);
        }
        if copied != info.size {
            return Err(StoreError::Unreachable {
                location: self.location(key),
                message: format!("body ended after {copied} of {} bytes", info.size),
            });
        }
        file.sync_all().await.map_err(io)?;
        Ok((info, metadata))
    }

    /// Invalid keys are failures of their own, never sent; the others go in batches, several
    /// in flight. The first request that fails as a whole is the error, and no later batch is
    /// sent.
    async fn delete_many(&self, keys: Vec<String>) -> Result<DeleteReport, StoreError> {
        let mut report = DeleteReport::default();
        let mut valid = Vec::with_capacity(keys.len());
        for key in keys {
            match check_key(&key) {
                Ok(()) => valid.push(key),
                Err(e) => report.failed.push(DeleteFailure::invalid_key(key, &e)),
            }
        }
        let batches: Vec<Vec<String>> = valid
            .chunks(crate::object_store::DELETE_BATCH)
            .map(<[String]>::to_vec)
            .collect();
        let mut results = stream::iter(batches)
            .map(|batch| self.delete_batch(batch))
            .buffer_unordered(crate::object_store::DELETE_CONCURRENCY);
        while let Some(batch) = results.next().await {
            let batch = batch?;
            report.requests += 1;
            report.deleted += batch.deleted;
            report.failed.extend(batch.failed);
        }
        Ok(report)
    }

    /// One DeleteObjects request: the keys S3 did not delete, and how many it did. A request
    /// that fails as a whole is an error: nothing is reported deleted that S3 did not confirm.
    async fn delete_batch(&self, batch: Vec<String>) -> Result<DeleteReport, StoreError> {
        let invalid = |message: String| StoreError::Service {
            location: self.url(),
            code: "InvalidRequest".into(),
            message,
        };
        let objects = batch
            .iter()
            .map(|k| ObjectIdentifier::builder().key(self.full_key(k)).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(e.to_string()))?;
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .map_err(|e| invalid(e.to_string()))?;
        self.inner.stats.count(Request::Delete);
        let out = self
            .inner
            .client
            .delete_objects()
            .bucket(&self.inner.bucket)
            .delete(delete)
            .send()
            .await
            .map_err(|e| self.map_err(self.url(), e))?;
        let failed: Vec<DeleteFailure> = out
            .errors()
            .iter()
            .map(|e| DeleteFailure {
                key: self.relative(e.key().unwrap_or_default()).to_string(),
                code: e.code().unwrap_or("Unknown").to_string(),
                message: e.message().unwrap_or_default().to_string(),
            })
            .collect();
        let failed_keys: HashSet<&str> = failed.iter().map(|f| f.key.as_str()).collect();
        Ok(DeleteReport {
            deleted: batch
                .iter()
                .filter(|k| !failed_keys.contains(k.as_str()))
                .count(),
            failed,
            requests: 1,
        })
    }
}

impl ObjectStore for S3Store {
    fn url(&self) -> String {
        S3Store::url(self)
    }

    fn location(&self, key: &str) -> String {
        S3Store::location(self, key)
    }

    fn requests(&self) -> RequestCounts {
        self.inner.stats.snapshot()
    }

    fn put_file<'a>(
        &'a self,
        key: &'a str,
        path: &'a std::path::Path,
        metadata: &'a Metadata,
        part_size: u64,
        progress: &'a dyn Progress,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        S3Store::put_file(self, key, path, metadata, part_size, progress).boxed()
    }

    forward_to_inherent!(S3Store);
}
