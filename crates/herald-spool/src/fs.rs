//! The few filesystem calls the log makes, behind a trait, so the tests can
//! run the log on a simulated filesystem that keeps synced and unsynced
//! bytes apart and "loses power" (`tests/power_loss.rs`). [`RealFs`] is
//! the one used outside tests: each method is one system call (or two),
//! nothing buffered, so the sync order in `log.rs` is the order the kernel
//! sees.

use std::any::Any;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// How to open a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenHow {
    /// Read only; it must exist.
    Read,
    /// Read and write; it must exist.
    Write,
    /// Read and write, created empty if missing (never truncated).
    OrCreate,
    /// Read and write; it must not exist yet.
    New,
}

/// An open file. Writes and reads take an offset: the log knows where
/// everything goes, so no file position is shared between callers.
pub trait FsFile: Send + Sync + Debug {
    /// Write all of `buf` at `at` (an error may leave part of it written).
    fn write_at(&self, at: u64, buf: &[u8]) -> io::Result<()>;
    /// Read up to `buf.len()` bytes at `at`; 0 at the end of the file.
    fn read_at(&self, at: u64, buf: &mut [u8]) -> io::Result<usize>;
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// `fdatasync`: the data written (and the size) is durable on return.
    fn sync_data(&self) -> io::Result<()>;
    fn size(&self) -> io::Result<u64>;
}

/// A filesystem.
pub trait Fs: Send + Sync + Debug {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// The names of the entries of `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    fn exists(&self, path: &Path) -> bool;
    fn open(&self, path: &Path, how: OpenHow) -> io::Result<Box<dyn FsFile>>;
    fn remove(&self, path: &Path) -> io::Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// `fsync` of a directory: its entries (created, removed, renamed) are
    /// durable on return.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Take the exclusive lock of `path` (created if missing): `None` if
    /// another holder has it. The lock lasts as long as the returned value.
    fn try_lock(&self, path: &Path) -> io::Result<Option<Box<dyn Any + Send + Sync>>>;

    /// The whole content of `path`.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let f = self.open(path, OpenHow::Read)?;
        let mut out = vec![0; f.size()? as usize];
        let mut at = 0;
        while at < out.len() {
            match f.read_at(at as u64, &mut out[at..])? {
                0 => break,
                n => at += n,
            }
        }
        out.truncate(at);
        Ok(out)
    }
}

/// The operating system's filesystem.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

#[derive(Debug)]
struct RealFile(File);

impl FsFile for RealFile {
    fn write_at(&self, at: u64, buf: &[u8]) -> io::Result<()> {
        self.0.write_all_at(buf, at)
    }
    fn read_at(&self, at: u64, buf: &mut [u8]) -> io::Result<usize> {
        FileExt::read_at(&self.0, buf, at)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
}

impl Fs for RealFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir)? {
            if let Ok(name) = e?.file_name().into_string() {
                out.push(name);
            }
        }
        Ok(out)
    }
    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
    fn open(&self, path: &Path, how: OpenHow) -> io::Result<Box<dyn FsFile>> {
        let mut o = OpenOptions::new();
        o.read(true);
        match how {
            OpenHow::Read => {}
            OpenHow::Write => {
                o.write(true);
            }
            OpenHow::OrCreate => {
                o.write(true).create(true).truncate(false);
            }
            OpenHow::New => {
                o.write(true).create_new(true);
            }
        }
        Ok(Box::new(RealFile(o.open(path)?)))
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
    fn try_lock(&self, path: &Path) -> io::Result<Option<Box<dyn Any + Send + Sync>>> {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        match f.try_lock() {
            Ok(()) => Ok(Some(Box::new(f))),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }
}
