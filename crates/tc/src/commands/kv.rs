//! `tc kv …`: get / put / ls / rm / head in the session's space (for delegates: the space the
//! delegation names).

use std::path::Path;

use anyhow::{Context as _, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Map, Value};
use tinycloud_auth::ability::Ability;
use tinycloud_auth::resource::Resource;
use tinycloud_sdk::kv::{check_key, Meta, PutOptions, SignedUrlOptions};
use tinycloud_sdk::session::Session;
use tinycloud_sdk::Error as SdkError;
use tokio::io::AsyncWriteExt as _;
use tokio_util::io::ReaderStream;

use tinycloud_sdk::terminal::field;

use super::Ctx;
use crate::cli::PutArgs;
use crate::error::CliError;
use crate::output::bytes_written;

/// Files larger than this get a progress bar.
const PROGRESS_THRESHOLD: u64 = 1024 * 1024;
/// Read size when streaming a file or stdin.
const CHUNK: usize = 64 * 1024;

/// Metadata as JSON. A metadata-only answer has no body, so its `Content-Length` says nothing
/// about the value: `with_size` is false there.
fn metadata_json(meta: &Meta, with_size: bool) -> Value {
    let headers: Map<String, Value> = meta
        .headers
        .iter()
        .filter(|(k, _)| with_size || k != "content-length")
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    json!({
        "etag": meta.etag,
        "contentType": meta.content_type,
        "size": if with_size { meta.size } else { None },
        "headers": headers,
    })
}

/// Checks a key before anything is signed (`.`/`..` segments → exit 2).
fn key_arg(key: &str) -> Result<(), CliError> {
    check_key(key).map_err(|e| {
        let detail = match e {
            SdkError::InvalidInput(m) => m,
            other => other.to_string(),
        };
        CliError::usage(format!("invalid key: {detail}"))
            .hint("keys are used verbatim: write them without '.' or '..' segments")
    })
}

/// `tc kv get`.
pub async fn get(ctx: &Ctx, key: &str, output: Option<&Path>, raw: bool) -> Result<()> {
    key_arg(key)?;
    let (_, client) = ctx.session_client()?;
    let kv = client.kv();
    if let Some(path) = output {
        let (meta, stream) = kv.get_stream(key).await?;
        let written = copy_to_file(stream, path).await?;
        return Ok(ctx.out.done(
            &json!({"key": key, "output": path, "bytes": written, "metadata": metadata_json(&meta, true)}),
            || format!("Wrote {} to {}", bytes_written(written), path.display()),
        )?);
    }
    if ctx.out.json && !raw {
        let obj = kv.get(key).await?;
        let (data, encoding) = match std::str::from_utf8(&obj.data) {
            Ok(text) => (text.to_owned(), "utf-8"),
            Err(_) => (STANDARD.encode(&obj.data), "base64"),
        };
        return Ok(ctx.out.result(
            &json!({"key": key, "data": data, "encoding": encoding, "metadata": metadata_json(&obj.meta, true)}),
            String::new,
        )?);
    }
    let (_, mut stream) = kv.get_stream(key).await?;
    let mut stdout = tokio::io::stdout();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        match stdout.write_all(&chunk).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(e).context("cannot write to stdout"),
        }
    }
    match stdout.flush().await {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("cannot write to stdout")
        }
        _ => Ok(()),
    }
}

/// Streams a value into `path` through a fresh temporary file created exclusively beside it
/// (`O_EXCL`, so a planted file or symlink at any temporary name is never opened), mode 0600
/// from creation (a value may be secret-bearing; the client cannot tell), fsynced, then renamed
/// over `path` (a symlink at `path` is replaced, not followed). A failed download leaves
/// `path` as it was and no temporary file behind.
async fn copy_to_file<S>(mut stream: S, path: &Path) -> Result<u64>
where
    S: Stream<Item = tinycloud_sdk::Result<Bytes>> + Unpin,
{
    let tmp = tinycloud_sdk::session::temp_beside(path)
        .with_context(|| format!("cannot create a temporary file beside {}", path.display()))?;
    let handle = tmp
        .as_file()
        .try_clone()
        .with_context(|| format!("cannot write {}", path.display()))?;
    let mut file = tokio::fs::File::from_std(handle);
    let mut written = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        file.write_all(&chunk)
            .await
            .with_context(|| format!("cannot write {}", path.display()))?;
        written += chunk.len() as u64;
    }
    file.flush().await?;
    file.sync_all()
        .await
        .with_context(|| format!("cannot write {}", path.display()))?;
    drop(file);
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(written)
}

fn progress_bar(len: u64) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} uploading [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// `tc kv put`.
pub async fn put(ctx: &Ctx, args: PutArgs) -> Result<()> {
    key_arg(&args.key)?;
    let (_, client) = ctx.session_client()?;
    let kv = client.kv();
    let opts = PutOptions {
        content_type: args.content_type.clone(),
        if_match: args.if_match.clone(),
        if_absent: args.if_absent,
        metadata: vec![],
    };
    let (etag, size) = match (&args.value, &args.file) {
        (Some(value), _) => {
            let len = value.len() as u64;
            (kv.put(&args.key, value.clone(), &opts).await?, Some(len))
        }
        (None, Some(path)) => {
            let file = tokio::fs::File::open(path)
                .await
                .map_err(|e| CliError::usage(format!("cannot read {}: {e}", path.display())))?;
            let len = file.metadata().await?.len();
            let bar =
                (len > PROGRESS_THRESHOLD && ctx.out.progress_allowed()).then(|| progress_bar(len));
            let counter = bar.clone();
            let stream = ReaderStream::with_capacity(file, CHUNK).map(move |chunk| {
                if let (Ok(bytes), Some(bar)) = (&chunk, &counter) {
                    bar.inc(bytes.len() as u64);
                }
                chunk
            });
            let result = kv.put_stream(&args.key, stream, &opts).await;
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            (result?, Some(len))
        }
        (None, None) => {
            let stream = ReaderStream::with_capacity(tokio::io::stdin(), CHUNK);
            (kv.put_stream(&args.key, stream, &opts).await?, None)
        }
    };
    ctx.out.done(
        &json!({"key": args.key, "written": true, "etag": etag, "size": size}),
        || format!("Wrote {}", args.key),
    )?;
    Ok(())
}

/// The prefix to list when none is given: the whole space if the session may list it, else
/// the one KV path it may list (a delegate holding `kv/notes/` lists `notes/`).
fn default_prefix(session: &Session) -> String {
    let Ok(list) = "tinycloud.kv/list".parse::<Ability>() else {
        return String::new();
    };
    let mut paths: Vec<String> = session
        .capabilities()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.ability.covers(&list))
        .filter_map(|c| match c.resource {
            Resource::Space(r) if r.service() == "kv" => {
                Some(r.path().unwrap_or_default().to_owned())
            }
            _ => None,
        })
        .collect();
    paths.sort();
    paths.dedup();
    match paths.as_slice() {
        [only] => only.clone(),
        _ => String::new(),
    }
}

/// `tc kv ls`.
pub async fn ls(ctx: &Ctx, prefix: Option<&str>, limit: Option<usize>) -> Result<()> {
    if let Some(p) = prefix.filter(|p| !p.is_empty()) {
        tinycloud_auth::resource::validate_path(p)
            .map_err(|e| CliError::usage(format!("invalid prefix {p:?}: {e}")))?;
    }
    if limit == Some(0) {
        return Err(CliError::usage("--limit must be at least 1").into());
    }
    let (_, client) = ctx.session_client()?;
    let prefix = match prefix {
        Some(p) => p.to_owned(),
        None => default_prefix(&client.active_session()?),
    };
    let kv = client.kv();
    let (keys, truncated) = match limit {
        Some(n) => {
            let page = kv.list_page(&prefix, Some(n), None).await?;
            (page.keys, page.truncated)
        }
        None => (kv.list(&prefix).await?, false),
    };
    ctx.out.result(
        &json!({"keys": keys, "count": keys.len(), "prefix": prefix, "truncated": truncated}),
        || keys.iter().map(|k| field(k)).collect::<Vec<_>>().join("\n"),
    )?;
    Ok(())
}

/// `tc kv rm`.
pub async fn rm(ctx: &Ctx, key: &str, if_match: Option<&str>) -> Result<()> {
    key_arg(key)?;
    let (_, client) = ctx.session_client()?;
    let etag = client.kv().delete(key, if_match).await?;
    ctx.out
        .done(&json!({"key": key, "deleted": true, "etag": etag}), || {
            format!("Deleted {key}")
        })?;
    Ok(())
}

/// `tc kv head`: a missing key is an answer (`exists: false`), not a failure.
/// `tc kv share`: mint a signed read URL and print it (the URL alone on stdout, so it can be
/// used as `curl "$(tc kv share KEY)"`).
pub async fn share(ctx: &Ctx, key: &str, ttl_secs: i64) -> Result<()> {
    key_arg(key)?;
    if ttl_secs > 300 {
        return Err(CliError::usage(format!(
            "--ttl must be at most {}",
            crate::duration::format_secs(300)
        ))
        .hint("signed URLs live at most 5 minutes; mint a new one when it expires")
        .into());
    }
    let (_, client) = ctx.session_client()?;
    let opts = SignedUrlOptions {
        ttl_secs: u64::try_from(ttl_secs).ok(),
        etag: None,
    };
    let url = client.kv().signed_url(key, &opts).await?;
    if !ctx.out.json {
        ctx.out
            .note(&format!("expires at {}", field(&url.expires_at)));
    }
    ctx.out.result(
        &json!({
            "key": key,
            "url": url.url,
            "ticketId": url.ticket_id,
            "expiresAt": url.expires_at,
        }),
        || field(&url.url).into_owned(),
    )?;
    Ok(())
}

pub async fn head(ctx: &Ctx, key: &str) -> Result<()> {
    key_arg(key)?;
    let (_, client) = ctx.session_client()?;
    let meta = client.kv().head(key).await?;
    let value = json!({
        "key": key,
        "exists": meta.is_some(),
        "metadata": meta.as_ref().map(|m| metadata_json(m, false)),
    });
    ctx.out.result(&value, || match &meta {
        None => format!("{key}: does not exist"),
        Some(m) => {
            let mut lines = vec![format!("{key}: exists")];
            if let Some(e) = &m.etag {
                lines.push(format!("etag:         {e}"));
            }
            if let Some(t) = &m.content_type {
                lines.push(format!("content-type: {t}"));
            }
            lines.join("\n")
        }
    })?;
    Ok(())
}
