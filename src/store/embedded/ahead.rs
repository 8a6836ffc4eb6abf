//! Removals kept ahead of their commit ([`Store::note_ahead`](crate::store::Store)): two
//! append-only files in the data directory, a JSON line per note, written with one
//! `write(2)` and no fsync. A kill -9 of the process cannot lose what the kernel has; a crash
//! of the machine can, as it can lose beanstalkd's binlog tail (DECISIONS 64).
//!
//! Notes go to the active file. Once every note of a file belongs to a committed batch
//! ([`AheadLog::covered`]), the file is emptied; when the active file passes
//! [`ROTATE_BYTES`] and the other is empty, notes go to the other, so that a steady stream
//! of notes (each newer than the last commit) never keeps one file growing. At start, what
//! both files hold is applied before anything is read ([`left_over`]): removals are
//! idempotent, so applying a note whose commit did land changes nothing.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::Mutex;

use crate::store::Removal;

/// The two files, in the data directory.
pub const FILE_NAMES: [&str; 2] = ["queuehub.ahead-0", "queuehub.ahead-1"];

/// Past this size the active file hands over to the other, if that one is empty.
const ROTATE_BYTES: u64 = 256 * 1024;

/// The open files (see the module docs).
pub(super) struct AheadLog {
    files: Mutex<Files>,
}

struct Files {
    files: [File; 2],
    /// The newest batch each file holds a note of, and its size; 0 and 0 when empty.
    newest: [u64; 2],
    bytes: [u64; 2],
    active: usize,
}

/// The removals a run noted ahead of commits it may not have made, oldest first. A line cut
/// short by the crash (its answer was never given), even in the middle of a character, is
/// skipped.
pub(super) fn left_over(dir: &Path) -> io::Result<Vec<Removal>> {
    let mut removals = Vec::new();
    for name in FILE_NAMES {
        let bytes = match std::fs::read(dir.join(name)) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            Err(err) => return Err(err),
        };
        for line in bytes.split(|b| *b == b'\n') {
            if let Ok(noted) = serde_json::from_slice::<Vec<Removal>>(line) {
                removals.extend(noted);
            }
        }
    }
    Ok(removals)
}

impl AheadLog {
    /// Opens (creating, emptying) both files in `dir`. Call it once what they held is
    /// committed.
    pub(super) fn open(dir: &Path) -> io::Result<Self> {
        let open = |name: &str| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(name))
                .and_then(|file| file.set_len(0).map(|()| file))
        };
        Ok(Self {
            files: Mutex::new(Files {
                files: [open(FILE_NAMES[0])?, open(FILE_NAMES[1])?],
                newest: [0; 2],
                bytes: [0; 2],
                active: 0,
            }),
        })
    }

    /// Writes `removals`, carried by commit batch `batch`, to the active file.
    pub(super) fn note(&self, batch: u64, removals: &[Removal]) -> io::Result<()> {
        let mut line = serde_json::to_vec(removals).map_err(io::Error::other)?;
        line.push(b'\n');
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        let active = files.active;
        if let Err(err) = files.files[active].write_all(&line) {
            // A part written (a full disk) would run into the next note's line: cut it off.
            let whole = files.bytes[active];
            let _ = files.files[active].set_len(whole);
            return Err(err);
        }
        files.newest[active] = files.newest[active].max(batch);
        files.bytes[active] += line.len() as u64;
        let other = 1 - active;
        if files.bytes[active] > ROTATE_BYTES && files.bytes[other] == 0 {
            files.active = other;
        }
        Ok(())
    }

    /// Every batch up to `batch` is committed: empties each file whose notes all belong to
    /// such batches. (If emptying fails, the file keeps notes that are harmless to apply.)
    pub(super) fn covered(&self, batch: u64) {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        for i in 0..2 {
            if files.bytes[i] > 0 && files.newest[i] <= batch && files.files[i].set_len(0).is_ok() {
                files.bytes[i] = 0;
                files.newest[i] = 0;
            }
        }
    }

    /// How many bytes of notes the files hold (for tests).
    #[cfg(test)]
    pub(super) fn bytes(&self) -> u64 {
        let files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        files.bytes.iter().sum()
    }
}
