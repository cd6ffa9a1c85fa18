//! The files behind a set of paths: directories read recursively (`*.yaml`, `*.yml`,
//! `*.json`, in name order), each file and directory once however it is reached (by
//! device and inode: a path given twice, a hard link, a symlink or a symlink cycle), FIFOs,
//! sockets and devices refused before they are opened, every unreadable entry reported by its
//! own path while its siblings are still read.

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The largest file read.
pub const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// The path that stands for standard input.
pub const STDIN: &str = "-";

/// A file to read, or a problem with a path (`Err`), or a path read once already (`Note`).
#[derive(Debug)]
pub enum Entry {
    File(PathBuf),
    Err(PathBuf, String),
    Note(PathBuf, String),
}

/// The entries of `paths`, in order.
pub fn walk(paths: &[PathBuf]) -> Vec<Entry> {
    let mut w = Walker::default();
    for p in paths {
        if p.as_os_str() == STDIN {
            if w.stdin {
                w.out.push(Entry::Note(
                    p.clone(),
                    "standard input named twice; read once".into(),
                ));
            } else {
                w.stdin = true;
                w.out.push(Entry::File(p.clone()));
            }
            continue;
        }
        w.path(p, true);
    }
    w.out
}

#[derive(Default)]
struct Walker {
    out: Vec<Entry>,
    /// Where each file and directory was first reached.
    seen: HashMap<(u64, u64), PathBuf>,
    /// The directories being read, outermost first.
    ancestors: Vec<(u64, u64)>,
    stdin: bool,
}

impl Walker {
    fn path(&mut self, path: &Path, named: bool) {
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) => {
                return self
                    .out
                    .push(Entry::Err(path.into(), format!("cannot read: {e}")))
            }
        };
        let id = (meta.dev(), meta.ino());
        if let Some(first) = self.seen.get(&id) {
            let note = if self.ancestors.contains(&id) {
                format!("symlink cycle back to {}; not followed", first.display())
            } else {
                format!("same {} as {}; read once", noun(&meta), first.display())
            };
            return self.out.push(Entry::Note(path.into(), note));
        }
        if let Some(kind) = special(&meta) {
            return self.out.push(Entry::Err(
                path.into(),
                format!("{kind}, not a regular file; refused unread"),
            ));
        }
        self.seen.insert(id, path.into());
        if meta.is_file() {
            return self.out.push(Entry::File(path.into()));
        }
        let before = self.out.len();
        self.ancestors.push(id);
        self.directory(path);
        self.ancestors.pop();
        if named && self.out.len() == before {
            self.out.push(Entry::Err(
                path.into(),
                "no *.yaml, *.yml or *.json file in this directory".into(),
            ));
        }
    }

    fn directory(&mut self, dir: &Path) {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => {
                return self.out.push(Entry::Err(
                    dir.into(),
                    format!("cannot read directory: {e}"),
                ))
            }
        };
        let mut paths = Vec::new();
        for entry in entries {
            match entry {
                Ok(e) => paths.push(e.path()),
                Err(e) => {
                    return self.out.push(Entry::Err(
                        dir.into(),
                        format!("cannot read directory: {e}"),
                    ))
                }
            }
        }
        paths.sort();
        for path in paths {
            let is_dir = std::fs::metadata(&path).is_ok_and(|m| m.is_dir());
            if is_dir || is_manifest_name(&path) {
                self.path(&path, false);
            }
        }
    }
}

fn is_manifest_name(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

fn noun(meta: &Metadata) -> &'static str {
    if meta.is_dir() {
        "directory"
    } else {
        "file"
    }
}

/// What a path is when it is neither a file nor a directory.
fn special(meta: &Metadata) -> Option<&'static str> {
    let t = meta.file_type();
    if t.is_file() || t.is_dir() {
        None
    } else if t.is_fifo() {
        Some("a FIFO")
    } else if t.is_socket() {
        Some("a socket")
    } else if t.is_block_device() || t.is_char_device() {
        Some("a device")
    } else {
        Some("not a file or directory")
    }
}

/// The text of one file (or of standard input for `-`).
pub fn read(path: &Path) -> Result<String, String> {
    let mut bytes = Vec::new();
    if path.as_os_str() == STDIN {
        std::io::stdin()
            .lock()
            .take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot read: {e}"))?;
    } else {
        // Non-blocking, so that a FIFO put in the file's place after the walk cannot hang the
        // read; the type is checked again on the open file.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| format!("cannot read: {e}"))?;
        let meta = file.metadata().map_err(|e| format!("cannot read: {e}"))?;
        if let Some(kind) = special(&meta).or(meta.is_dir().then_some("a directory")) {
            return Err(format!("{kind}, not a regular file; refused unread"));
        }
        read_limited(file, &mut bytes)?;
    }
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "larger than {} MiB; refused unread",
            MAX_FILE_BYTES / 1024 / 1024
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })
}

fn read_limited(file: File, bytes: &mut Vec<u8>) -> Result<(), String> {
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(bytes)
        .map(|_| ())
        .map_err(|e| format!("cannot read: {e}"))
}
