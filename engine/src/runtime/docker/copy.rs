//! Copying a volume's content into another through the daemon's archive
//! API: two helper containers (never started) mount the volumes, the
//! source's tar stream is written into the destination, and the helpers
//! are removed however the call ends. Also the incremental tar reader
//! ([`TarEntries`]) that checks the destination is empty.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, HostConfig, Mount as DockerMount, MountType, MountVolumeOptions,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, DownloadFromContainerOptionsBuilder,
    ListContainersOptionsBuilder, UploadToContainerOptionsBuilder,
};
use futures_util::{StreamExt, TryStreamExt};

use super::containers::remove_forced;
use super::{DockerRuntime, volumes};
use crate::runtime::{LABEL_HELPER, LABEL_MANAGED, Result, RuntimeError, with_default_tag};

/// Where a copy helper mounts its volume: a path no image has, so that
/// nothing of the image is copied into the volume.
const HELPER_MOUNT: &str = "/deckhand-vol";

/// The label naming, on both helpers of a copy, the volume it copies into.
const LABEL_COPY_TO: &str = "io.deckhand.copy-to";

/// [`ContainerRuntime::copy_volume`](crate::runtime::ContainerRuntime::copy_volume).
pub(super) async fn copy_volume(
    rt: &DockerRuntime,
    from: &str,
    to: &str,
    helper_image: &str,
) -> Result<()> {
    for volume in [from, to] {
        if volumes::inspect(rt, volume).await?.is_none() {
            return Err(RuntimeError::NotFound(format!(
                "no such volume: {volume} (copying {from} to {to})"
            )));
        }
    }
    // Named, so that one whose create answer was lost is still found
    // and removed.
    let tag = uuid::Uuid::now_v7().simple().to_string();
    let (src, dst) = (
        format!("deckhand-copy-{tag}-src"),
        format!("deckhand-copy-{tag}-dst"),
    );
    let mut helpers = Helpers {
        docker: rt.docker.clone(),
        names: Vec::new(),
    };
    let copied = async {
        helpers.names.push(src.clone());
        create_helper(rt, &src, helper_image, from, true, to).await?;
        helpers.names.push(dst.clone());
        create_helper(rt, &dst, helper_image, to, false, to).await?;
        copy_between(rt, &src, &dst, from, to).await
    }
    .await;
    let removed = helpers.remove_all().await;
    copied?;
    // A helper left behind keeps both volumes in use: say so.
    removed.map_err(|(name, e)| rt.map_err(&format!("remove copy helper container {name}"), e))
}

/// The helper containers of one call, removed when it ends, however it
/// ends: explicitly by [`Helpers::remove_all`], or, if the call's future is
/// dropped (a cancelled job), by a task spawned from `Drop`.
struct Helpers {
    docker: Docker,
    names: Vec<String>,
}

impl Helpers {
    async fn remove_all(mut self) -> std::result::Result<(), (String, BollardError)> {
        let names = std::mem::take(&mut self.names);
        let mut first_error = None;
        for name in names {
            if let Err(e) = remove_forced(&self.docker, &name).await {
                first_error.get_or_insert((name, e));
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for Helpers {
    fn drop(&mut self) {
        if self.names.is_empty() {
            return;
        }
        let (docker, names) = (self.docker.clone(), std::mem::take(&mut self.names));
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                for name in names {
                    if let Err(e) = remove_forced(&docker, &name).await {
                        tracing::warn!("could not remove copy helper container {name}: {e}");
                    }
                }
            });
        }
    }
}

/// Create a helper container (never started) mounting `volume` at
/// [`HELPER_MOUNT`], for the copy into volume `copy_to`.
async fn create_helper(
    rt: &DockerRuntime,
    name: &str,
    image: &str,
    volume: &str,
    read_only: bool,
    copy_to: &str,
) -> Result<()> {
    let body = ContainerCreateBody {
        image: Some(with_default_tag(image)),
        // Docker wants a command to create a container; it never runs.
        entrypoint: Some(vec!["/deckhand-helper-never-started".into()]),
        cmd: Some(Vec::new()),
        network_disabled: Some(true),
        labels: Some(HashMap::from([
            (LABEL_MANAGED.to_owned(), "true".to_owned()),
            (LABEL_HELPER.to_owned(), "copy-volume".to_owned()),
            (LABEL_COPY_TO.to_owned(), copy_to.to_owned()),
        ])),
        host_config: Some(HostConfig {
            network_mode: Some("none".into()),
            mounts: Some(vec![DockerMount {
                typ: Some(MountType::VOLUME),
                source: Some(volume.to_owned()),
                target: Some(HELPER_MOUNT.into()),
                read_only: Some(read_only),
                volume_options: Some(MountVolumeOptions {
                    no_copy: Some(true),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::default().name(name).build();
    rt.docker
        .create_container(Some(options), body)
        .await
        .map(|_| ())
        .map_err(|e| {
            rt.map_err(
                &format!("create a helper container for volume {volume} from {image}"),
                e,
            )
        })
}

/// Remove the helper containers of every copy into volume `to` that are
/// still there. A copy whose process was killed in the middle (kill -9,
/// power loss) leaves its helpers behind: [`Helpers`] never got to remove
/// them, their names are that call's own, and they keep `to` and the
/// copy's source in use, so that undoing the copy could not remove `to`
/// and the source would stay mounted by a stray container.
pub(super) async fn remove_helpers_of(rt: &DockerRuntime, to: &str) -> Result<()> {
    let filters = HashMap::from([(
        "label",
        vec![
            format!("{LABEL_HELPER}=copy-volume"),
            format!("{LABEL_COPY_TO}={to}"),
        ],
    )]);
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    let left = rt
        .docker
        .list_containers(Some(options))
        .await
        .map_err(|e| rt.map_err(&format!("list copy helper containers of volume {to}"), e))?;
    for id in left.into_iter().filter_map(|c| c.id) {
        remove_forced(&rt.docker, &id)
            .await
            .map_err(|e| rt.map_err(&format!("remove copy helper container {id}"), e))?;
    }
    Ok(())
}

/// Whether the volume mounted in helper `helper` has no content (its
/// root directory may have any mode and owner).
async fn helper_volume_is_empty(rt: &DockerRuntime, helper: &str, volume: &str) -> Result<bool> {
    let options = DownloadFromContainerOptionsBuilder::default()
        .path(HELPER_MOUNT)
        .build();
    let mut stream = rt.docker.download_from_container(helper, Some(options));
    let mut entries = TarEntries::default();
    let root = HELPER_MOUNT.trim_start_matches('/');
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| rt.map_err(&format!("read volume {volume}"), e))?;
        if entries
            .feed(&chunk)
            .iter()
            .any(|e| !is_archive_root(e, root))
        {
            // Enough seen: dropping the stream ends the download.
            return Ok(false);
        }
    }
    Ok(true)
}

/// Stream the content of `src`'s volume into `dst`'s.
async fn copy_between(
    rt: &DockerRuntime,
    src: &str,
    dst: &str,
    from: &str,
    to: &str,
) -> Result<()> {
    if !helper_volume_is_empty(rt, dst, to).await? {
        return Err(RuntimeError::Conflict(format!(
            "volume {to} is not empty: a copy of {from} goes only into an empty volume"
        )));
    }
    // The mount point itself, so that its mode and owner come along
    // (entries `deckhand-vol/…`, unpacked at `/`).
    let options = DownloadFromContainerOptionsBuilder::default()
        .path(HELPER_MOUNT)
        .build();
    let read_error: Arc<Mutex<Option<BollardError>>> = Arc::default();
    let seen = read_error.clone();
    let tar = rt
        .docker
        .download_from_container(src, Some(options))
        .map_err(move |e| {
            let text = e.to_string();
            seen.lock().expect("read error").get_or_insert(e);
            std::io::Error::other(text)
        });
    let options = UploadToContainerOptionsBuilder::default().path("/").build();
    let written = rt
        .docker
        .upload_to_container(dst, Some(options), bollard::body_try_stream(tar))
        .await;
    // A failed read also fails the write; the read's error says why.
    if let Some(e) = read_error.lock().expect("read error").take() {
        return Err(rt.map_err(&format!("read volume {from} to copy it to {to}"), e));
    }
    written.map_err(|e| rt.map_err(&format!("write the copy of volume {from} into {to}"), e))
}

/// Whether a tar entry of a volume downloaded at `root` is the volume's
/// root directory itself (and not content).
fn is_archive_root(entry: &str, root: &str) -> bool {
    entry.trim_start_matches("./").trim_end_matches('/') == root
}

/// The names of the entries of a tar stream, read incrementally (only the
/// headers are kept: an entry's data is skipped as it streams by). Enough of
/// the format for what the daemon's archive API writes: ustar names with
/// prefixes, PAX and GNU long-name records (which describe the next entry).
#[derive(Default)]
struct TarEntries {
    pending: Vec<u8>,
    /// Data bytes (padded to blocks) still to skip.
    skip: u64,
    /// The next entry's name from a PAX `path` or GNU `L` record.
    long_name: Option<String>,
    /// Reading a long-name record's data into `pending`, this many bytes.
    collecting: Option<(u8, u64)>,
    ended: bool,
}

impl TarEntries {
    /// Feed the next bytes; returns the names of the entries completed.
    fn feed(&mut self, mut chunk: &[u8]) -> Vec<String> {
        let mut names = Vec::new();
        while !chunk.is_empty() && !self.ended {
            if self.skip > 0 {
                let n = (self.skip.min(chunk.len() as u64)) as usize;
                if let Some((_, want)) = self.collecting {
                    let keep = (want as usize).saturating_sub(self.pending.len()).min(n);
                    self.pending.extend_from_slice(&chunk[..keep]);
                }
                self.skip -= n as u64;
                chunk = &chunk[n..];
                if self.skip == 0
                    && let Some((kind, _)) = self.collecting.take()
                {
                    let data = std::mem::take(&mut self.pending);
                    self.long_name = Self::long_name_of(kind, &data);
                }
                continue;
            }
            let need = 512 - self.pending.len();
            let n = need.min(chunk.len());
            self.pending.extend_from_slice(&chunk[..n]);
            chunk = &chunk[n..];
            if self.pending.len() < 512 {
                break;
            }
            let header = std::mem::take(&mut self.pending);
            if header.iter().all(|&b| b == 0) {
                self.ended = true;
                break;
            }
            let field = |from: usize, to: usize| {
                let f = &header[from..to];
                let end = f.iter().position(|&b| b == 0).unwrap_or(f.len());
                String::from_utf8_lossy(&f[..end]).into_owned()
            };
            let size = u64::from_str_radix(field(124, 136).trim(), 8).unwrap_or(0);
            let kind = header[156];
            self.skip = size.div_ceil(512) * 512;
            match kind {
                b'x' | b'L' => self.collecting = Some((kind, size)),
                b'g' | b'K' => {}
                _ => {
                    let name = self.long_name.take().unwrap_or_else(|| {
                        let (name, prefix) = (field(0, 100), field(345, 500));
                        if &header[257..262] == b"ustar" && !prefix.is_empty() {
                            format!("{prefix}/{name}")
                        } else {
                            name
                        }
                    });
                    names.push(name);
                }
            }
            if self.skip == 0
                && let Some((kind, _)) = self.collecting.take()
            {
                self.long_name = Self::long_name_of(kind, &[]);
            }
        }
        names
    }

    fn long_name_of(kind: u8, data: &[u8]) -> Option<String> {
        let text = String::from_utf8_lossy(data);
        match kind {
            b'L' => Some(text.trim_end_matches('\0').to_owned()),
            // PAX records: "<len> key=value\n"; only `path` names the entry.
            _ => text.lines().find_map(|record| {
                let (_, kv) = record.split_once(' ')?;
                kv.strip_prefix("path=").map(str::to_owned)
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar header block for `name` with `size` bytes of data.
    fn header(name: &str, kind: u8, size: usize) -> Vec<u8> {
        let mut h = vec![0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        let size = format!("{size:011o}\0");
        h[124..136].copy_from_slice(size.as_bytes());
        h[156] = kind;
        h[257..263].copy_from_slice(b"ustar\0");
        h
    }

    fn entry(name: &str, kind: u8, data: &[u8]) -> Vec<u8> {
        let mut e = header(name, kind, data.len());
        e.extend_from_slice(data);
        e.resize(512 + data.len().div_ceil(512) * 512, 0);
        e
    }

    #[test]
    fn tar_entries_are_read_incrementally_whatever_the_chunking() {
        let long = format!("deckhand-vol/{}", "d".repeat(150));
        let pax = format!("{} path={long}\n", 6 + long.len() + 6);
        let mut tar = Vec::new();
        tar.extend(entry("deckhand-vol/", b'5', b""));
        tar.extend(entry("deckhand-vol/a.txt", b'0', &[7u8; 700]));
        tar.extend(entry("PaxHeaders/x", b'x', pax.as_bytes()));
        tar.extend(entry("truncated", b'0', b"x"));
        tar.extend(entry(
            "././@LongLink",
            b'L',
            format!("{long}/z\0").as_bytes(),
        ));
        tar.extend(entry("cut", b'2', b""));
        tar.extend([0u8; 1024]);
        tar.extend(entry("after-the-end", b'0', b""));
        let expected = vec![
            "deckhand-vol/".to_string(),
            "deckhand-vol/a.txt".into(),
            long.clone(),
            format!("{long}/z"),
        ];
        for chunk in [1, 7, 511, 512, 513, 4096, tar.len()] {
            let mut entries = TarEntries::default();
            let names: Vec<String> = tar.chunks(chunk).flat_map(|c| entries.feed(c)).collect();
            assert_eq!(names, expected, "chunks of {chunk}");
        }
        assert!(is_archive_root("deckhand-vol/", "deckhand-vol"));
        assert!(is_archive_root("./deckhand-vol", "deckhand-vol"));
        assert!(!is_archive_root("deckhand-vol/a", "deckhand-vol"));
    }
}
