//! Exclusive `flock`s with a little patience: the daemon's data-dir lock and the store's
//! check of sled's own lock (both through `fs2`, which sled uses too).

use std::fs::File;
use std::io;
use std::time::{Duration, Instant};

/// Takes an exclusive `flock` on `file`, retrying while another open file holds it, for up to
/// `patience`. `Ok(false)` if it is still held then; an error other than contention (a
/// filesystem without `flock`) at once. The lock lasts as long as `file` stays open.
pub(crate) fn lock_within(file: &File, patience: Duration) -> io::Result<bool> {
    use fs2::FileExt;
    let deadline = Instant::now() + patience;
    loop {
        match file.try_lock_exclusive() {
            Ok(()) => return Ok(true),
            Err(e) if e.kind() == fs2::lock_contended_error().kind() => {
                if Instant::now() >= deadline {
                    return Ok(false);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e),
        }
    }
}
