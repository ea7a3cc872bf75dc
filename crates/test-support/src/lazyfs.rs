//! A small FUSE filesystem that loses what was not synced, as LazyFS does:
//! one flat directory held in memory, each file with its synced bytes apart
//! from its current ones, the directory with its synced entries apart from
//! its current ones. `fsync`/`fdatasync` of a file makes its current bytes
//! the synced ones; `fsync` of the directory does the same for the entries.
//! [`LazyFs::drop_unsynced`] is the power loss: every file goes back to its
//! synced bytes and the directory to its synced entries (files created and
//! not synced into it vanish; files removed come back).
//!
//! Real processes use it through the kernel (so `kill -9` of a process that
//! writes into it can be followed by a power loss). Files are opened with
//! direct I/O and attributes are never cached, so after a drop the kernel
//! shows what the filesystem holds, not stale pages.
//!
//! Mounting needs `/dev/fuse` and root (the mount is made with mount(2)
//! directly, no `fusermount`).

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyWrite, Request, WriteFlags,
};

const NO_CACHE: Duration = Duration::ZERO;

#[derive(Debug, Default)]
struct Node {
    synced: Vec<u8>,
    current: Vec<u8>,
}

#[derive(Debug, Default)]
struct State {
    nodes: HashMap<u64, Node>,
    current: BTreeMap<String, u64>,
    synced: BTreeMap<String, u64>,
    next: u64,
    /// Counters: file syncs and directory syncs seen.
    file_syncs: u64,
    dir_syncs: u64,
}

/// The filesystem, mounted: unmounted when dropped.
pub struct LazyFs {
    state: Arc<Mutex<State>>,
    session: Option<fuser::BackgroundSession>,
}

impl LazyFs {
    /// Mount an empty one at `at` (an existing empty directory).
    pub fn mount(at: &Path) -> std::io::Result<LazyFs> {
        let state = Arc::new(Mutex::new(State {
            next: 2,
            ..State::default()
        }));
        let mut cfg = fuser::Config::default();
        cfg.mount_options = vec![
            fuser::MountOption::FSName("herald-lazyfs".into()),
            fuser::MountOption::DefaultPermissions,
        ];
        let session = fuser::spawn_mount(Fuse(state.clone()), at, &cfg)?;
        Ok(LazyFs {
            state,
            session: Some(session),
        })
    }

    /// Lose power: everything not synced is gone.
    pub fn drop_unsynced(&self) {
        let mut s = self.state.lock().unwrap();
        s.current = s.synced.clone();
        for n in s.nodes.values_mut() {
            n.current = n.synced.clone();
        }
    }

    /// (file syncs, directory syncs) seen so far.
    pub fn syncs(&self) -> (u64, u64) {
        let s = self.state.lock().unwrap();
        (s.file_syncs, s.dir_syncs)
    }
}

impl Drop for LazyFs {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            let _ = s.umount_and_join();
        }
    }
}

/// Whether this machine can mount a FUSE filesystem (`/dev/fuse` there and
/// openable, which needs root here).
pub fn fuse_available() -> Result<(), String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .map(|_| ())
        .map_err(|e| format!("/dev/fuse cannot be opened: {e}"))
}

struct Fuse(Arc<Mutex<State>>);

fn attr(ino: u64, node: Option<&Node>) -> FileAttr {
    let (kind, size, perm, nlink) = match node {
        None => (FileType::Directory, 0, 0o755, 2),
        Some(n) => (FileType::RegularFile, n.current.len() as u64, 0o644, 1),
    };
    FileAttr {
        ino: INodeNo(ino),
        size,
        blocks: size.div_ceil(512),
        atime: UNIX_EPOCH,
        mtime: UNIX_EPOCH,
        ctime: UNIX_EPOCH,
        crtime: UNIX_EPOCH,
        kind,
        perm,
        nlink,
        uid: owner_uid(),
        gid: 0,
        rdev: 0,
        flags: 0,
        blksize: 4096,
    }
}

/// The owner shown for every file: the user running the tests.
fn owner_uid() -> u32 {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap_or(0)
}

fn name_of(name: &OsStr) -> String {
    name.to_string_lossy().into_owned()
}

impl Filesystem for Fuse {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let s = self.0.lock().unwrap();
        match (u64::from(parent), s.current.get(&name_of(name))) {
            (1, Some(&ino)) => reply.entry(&NO_CACHE, &attr(ino, s.nodes.get(&ino)), Generation(0)),
            _ => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let s = self.0.lock().unwrap();
        let ino = u64::from(ino);
        match (ino, s.nodes.get(&ino)) {
            (1, _) => reply.attr(&NO_CACHE, &attr(1, None)),
            (_, Some(n)) => reply.attr(&NO_CACHE, &attr(ino, Some(n))),
            _ => reply.error(Errno::ENOENT),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<fuser::TimeOrNow>,
        _mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<std::time::SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<std::time::SystemTime>,
        _chgtime: Option<std::time::SystemTime>,
        _bkuptime: Option<std::time::SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut s = self.0.lock().unwrap();
        let ino = u64::from(ino);
        if ino == 1 {
            return reply.attr(&NO_CACHE, &attr(1, None));
        }
        let Some(n) = s.nodes.get_mut(&ino) else {
            return reply.error(Errno::ENOENT);
        };
        if let Some(size) = size {
            n.current.resize(size as usize, 0);
        }
        reply.attr(&NO_CACHE, &attr(ino, Some(n)));
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        if u64::from(parent) != 1 {
            return reply.error(Errno::ENOENT);
        }
        let mut s = self.0.lock().unwrap();
        let name = name_of(name);
        let ino = match s.current.get(&name) {
            Some(&ino) => ino,
            None => {
                let ino = s.next;
                s.next += 1;
                s.nodes.insert(ino, Node::default());
                s.current.insert(name, ino);
                ino
            }
        };
        reply.created(
            &NO_CACHE,
            &attr(ino, s.nodes.get(&ino)),
            Generation(0),
            FileHandle(0),
            FopenFlags::FOPEN_DIRECT_IO,
        );
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let mut s = self.0.lock().unwrap();
        let ino = u64::from(ino);
        let Some(n) = s.nodes.get_mut(&ino) else {
            return reply.error(Errno::ENOENT);
        };
        if flags.0 & libc_o_trunc() != 0 {
            n.current.clear();
        }
        reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO);
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let s = self.0.lock().unwrap();
        let Some(n) = s.nodes.get(&u64::from(ino)) else {
            return reply.error(Errno::ENOENT);
        };
        let at = (offset as usize).min(n.current.len());
        let end = (at + size as usize).min(n.current.len());
        reply.data(&n.current[at..end]);
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut s = self.0.lock().unwrap();
        let Some(n) = s.nodes.get_mut(&u64::from(ino)) else {
            return reply.error(Errno::ENOENT);
        };
        let end = offset as usize + data.len();
        if n.current.len() < end {
            n.current.resize(end, 0);
        }
        n.current[offset as usize..end].copy_from_slice(data);
        reply.written(data.len() as u32);
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut s = self.0.lock().unwrap();
        s.file_syncs += 1;
        if let Some(n) = s.nodes.get_mut(&u64::from(ino)) {
            n.synced = n.current.clone();
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut s = self.0.lock().unwrap();
        s.dir_syncs += 1;
        s.synced = s.current.clone();
        reply.ok();
    }

    fn unlink(&self, _req: &Request, _parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut s = self.0.lock().unwrap();
        match s.current.remove(&name_of(name)) {
            Some(_) => reply.ok(),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        _parent: INodeNo,
        name: &OsStr,
        _newparent: INodeNo,
        newname: &OsStr,
        _flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mut s = self.0.lock().unwrap();
        match s.current.remove(&name_of(name)) {
            Some(ino) => {
                s.current.insert(name_of(newname), ino);
                reply.ok()
            }
            None => reply.error(Errno::ENOENT),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        if u64::from(ino) != 1 {
            return reply.error(Errno::ENOTDIR);
        }
        let s = self.0.lock().unwrap();
        let mut entries = vec![
            (1, FileType::Directory, ".".to_string()),
            (1, FileType::Directory, "..".to_string()),
        ];
        entries.extend(
            s.current
                .iter()
                .map(|(n, &i)| (i, FileType::RegularFile, n.clone())),
        );
        for (i, (ino, kind, name)) in entries.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(ino), (i + 1) as u64, kind, name) {
                break;
            }
        }
        reply.ok();
    }
}

/// `O_TRUNC` on Linux.
fn libc_o_trunc() -> i32 {
    0o1000
}
