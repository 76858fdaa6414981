//! `s3://bucket/prefix` on the command line: Zarr arrays and groups in S3-compatible object
//! storage, reached through ndstore-zarr's object store with the credentials, region and
//! endpoint of the usual AWS environment variables.
//!
//! The command line refuses, before any request, what would otherwise make it wait: no
//! credentials in the environment (object_store would then ask the EC2 instance metadata
//! service, which off EC2 only times out), and it bounds every request to
//! [`DEFAULT_ATTEMPTS`] attempts unless `AWS_MAX_ATTEMPTS` says otherwise (the AWS CLI's
//! default), so an endpoint that does not answer is an error within seconds, not minutes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ndstore::zarr::ObjectTarget;
use ndstore::zarr::meta::is_chunk_key;
use ndstore::{Error, ErrorKind, Result};

/// The scheme of an object storage URL the command line reads and writes.
pub const SCHEME: &str = "s3://";

/// A request's attempts in all (the first and its retries) when `AWS_MAX_ATTEMPTS` is unset,
/// as in the AWS CLI's standard retry mode.
pub const DEFAULT_ATTEMPTS: &str = "3";

/// Whether `path` is spelled as an `s3://` URL.
pub fn is_s3(path: &Path) -> bool {
    path.to_str().is_some_and(|p| p.starts_with(SCHEME))
}

/// Whether the environment holds credentials object_store uses without asking the instance
/// metadata service: static keys, a web identity, a container's credentials, or unsigned
/// requests for a public bucket.
fn has_credentials(var: impl Fn(&str) -> Option<String>) -> bool {
    let set = |name: &str| var(name).is_some_and(|v| !v.is_empty());
    (set("AWS_ACCESS_KEY_ID") && set("AWS_SECRET_ACCESS_KEY"))
        || (set("AWS_WEB_IDENTITY_TOKEN_FILE") && set("AWS_ROLE_ARN"))
        || set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        || set("AWS_CONTAINER_CREDENTIALS_FULL_URI")
        || var("AWS_SKIP_SIGNATURE").is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// The bucket's store, built once per bucket and process (one client and one runtime, shared
/// by every node of a listing and by a copy's source and destination).
fn bucket_target(url: &Path, bucket: &str) -> Result<ObjectTarget> {
    static BUCKETS: OnceLock<Mutex<HashMap<String, ObjectTarget>>> = OnceLock::new();
    let buckets = BUCKETS.get_or_init(|| Mutex::new(HashMap::new()));
    if let Ok(known) = buckets.lock()
        && let Some(target) = known.get(bucket)
    {
        return Ok(target.clone());
    }
    if !has_credentials(|name| std::env::var(name).ok()) {
        return Err(Error::new(
            ErrorKind::PermissionDenied,
            "no AWS credentials in the environment: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary ones), AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN, AWS_CONTAINER_CREDENTIALS_RELATIVE_URI, or AWS_SKIP_SIGNATURE=true for a public bucket; AWS_ENDPOINT_URL and AWS_REGION name the service",
        )
        .with_path(url));
    }
    let mut settings = Vec::new();
    if std::env::var_os("AWS_MAX_ATTEMPTS").is_none() {
        settings.push(("AWS_MAX_ATTEMPTS", DEFAULT_ATTEMPTS));
    }
    let target = ObjectTarget::from_url_with(&format!("{SCHEME}{bucket}"), &settings)
        .map_err(|e| Error::new(e.kind(), e.message()).with_path(url))?;
    if let Ok(mut known) = buckets.lock() {
        known.insert(bucket.to_owned(), target.clone());
    }
    Ok(target)
}

/// The bucket and the prefix (without its surrounding `/`) of an `s3://bucket/prefix` URL.
///
/// # Errors
///
/// `InvalidInput` naming the URL when it is not `s3://` or names no bucket.
pub fn split(url: &Path) -> Result<(String, String)> {
    let rest = url
        .to_str()
        .and_then(|u| u.strip_prefix(SCHEME))
        .ok_or_else(|| {
            Error::new(ErrorKind::InvalidInput, "not an s3://bucket/prefix URL").with_path(url)
        })?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "no bucket: spell it s3://bucket/prefix",
        )
        .with_path(url));
    }
    Ok((bucket.to_owned(), prefix.trim_matches('/').to_owned()))
}

/// The object storage target of `url` (`s3://bucket/prefix`), and of `node` below it when
/// given (`s3://bucket/store.zarr::group/array`).
///
/// # Errors
///
/// `InvalidInput` for a URL without a bucket or a prefix object_store refuses (`..`, empty
/// segments); `PermissionDenied` naming the environment variables when there are no
/// credentials; a configuration object_store refuses.
pub fn target(url: &Path, node: Option<&str>) -> Result<ObjectTarget> {
    let (bucket, prefix) = split(url)?;
    let base = bucket_target(url, &bucket)?;
    let full = match node.map(|n| n.trim_matches('/')) {
        Some(node) if !node.is_empty() => {
            if node.split('/').any(|part| part == ".." || part == ".") {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!("the node path '{node}' has a '.' or '..' component; name nodes from the store's root"),
                )
                .with_path(url));
            }
            if prefix.is_empty() {
                node.to_owned()
            } else {
                format!("{prefix}/{node}")
            }
        }
        _ => prefix,
    };
    base.at(&full).map_err(|e| {
        Error::new(e.kind(), e.message().to_owned())
            .with_path(url)
            .at(ndstore::Location::Object(full.clone()))
    })
}

/// The URL of `node` below the prefix of `url` (`s3://b/store.zarr` and `g/a` make
/// `s3://b/store.zarr/g/a`), or `url` itself without a node.
pub fn node_url(url: &Path, node: Option<&str>) -> PathBuf {
    match node.map(|n| n.trim_matches('/')).filter(|n| !n.is_empty()) {
        Some(node) => PathBuf::from(format!(
            "{}/{node}",
            url.display().to_string().trim_end_matches('/')
        )),
        None => url.to_path_buf(),
    }
}

/// Checks that a new array may be written at `target`: an array there is replaced (as a local
/// copy replaces one; the library refuses a group, and an array of another chunk layout,
/// which object storage cannot replace atomically), but never inside another array (its
/// chunks share the prefix: a copy to `a.zarr/c` would overwrite and remove `a.zarr`'s
/// chunks), and never among objects that belong to no array (a hierarchy without its root's
/// `zarr.json`, a Zarr v2 array, another tool's data), which a `zarr.json` over them would
/// hide. What a killed ndstore writer leaves (its lease object, and chunks) is no obstacle:
/// the lease tells it apart from another tool's digits.
///
/// # Errors
///
/// `InvalidInput` naming the prefix and the array it lies in or the first foreign entry; the
/// store's errors.
pub fn check_destination(target: &ObjectTarget) -> Result<()> {
    refuse_inside_an_array(target)?;
    let listing = target.list_level()?;
    let meta = ndstore::zarr::meta::METADATA_FILE;
    if listing.objects.iter().any(|o| o == meta) {
        return Ok(());
    }
    let lease = listing.objects.iter().any(|o| o == LEASE);
    let foreign = listing
        .dirs
        .iter()
        .map(|d| format!("{d}/"))
        .chain(listing.objects.iter().cloned())
        .find(|name| name != LEASE && !(lease && is_chunk_key(name.trim_end_matches('/'))));
    match foreign {
        None => Ok(()),
        Some(name) => Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "the prefix holds '{name}' but no zarr.json: ndstore writes an array only at an empty prefix, over an array, or over what a killed ndstore writer left (its lease and chunks), never among other objects"
            ),
        )
        .with_path(target.name())),
    }
}

/// The object an ndstore writer's lease lives in, under its array's prefix.
pub(crate) const LEASE: &str = ".ndstore-lease";

/// Refuses a prefix below an array's: one `zarr.json` read per level above `target`.
fn refuse_inside_an_array(target: &ObjectTarget) -> Result<()> {
    let prefix = target.prefix().trim_matches('/');
    let mut above = prefix;
    while let Some((parent, _)) = above.rsplit_once('/') {
        above = parent;
        let level = target.at(parent)?;
        match ndstore::zarr::read_object_node(&level) {
            Ok(ndstore::zarr::meta::Node::Array(_)) => {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "lies inside the array {}: its chunks share the prefix, so an array written here would overwrite and remove them",
                        level.name().display()
                    ),
                )
                .with_path(target.name()));
            }
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Whether an error of object storage says the bucket does not exist.
pub fn no_such_bucket(e: &Error) -> bool {
    e.message().contains("NoSuchBucket")
}

#[cfg(test)]
mod tests {
    use super::{has_credentials, split};
    use std::path::Path;

    #[test]
    fn credentials_come_from_the_environment() {
        let with = |pairs: &'static [(&'static str, &'static str)]| {
            has_credentials(move |name| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            })
        };
        assert!(!with(&[]));
        assert!(!with(&[("AWS_ACCESS_KEY_ID", "a")]));
        assert!(!with(&[
            ("AWS_ACCESS_KEY_ID", ""),
            ("AWS_SECRET_ACCESS_KEY", "")
        ]));
        assert!(with(&[
            ("AWS_ACCESS_KEY_ID", "a"),
            ("AWS_SECRET_ACCESS_KEY", "b")
        ]));
        assert!(with(&[("AWS_SKIP_SIGNATURE", "true")]));
        assert!(!with(&[("AWS_SKIP_SIGNATURE", "false")]));
    }

    #[test]
    fn urls_split_into_bucket_and_prefix() {
        let parts = |u: &str| split(Path::new(u)).ok();
        assert_eq!(parts("s3://b"), Some(("b".into(), String::new())));
        assert_eq!(parts("s3://b/"), Some(("b".into(), String::new())));
        assert_eq!(
            parts("s3://b/x/y.zarr/"),
            Some(("b".into(), "x/y.zarr".into()))
        );
        assert_eq!(parts("s3:///x"), None);
        assert_eq!(parts("gs://b/x"), None);
    }
}
