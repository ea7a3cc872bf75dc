//! A simulated filesystem for the log's power-loss tests: one directory,
//! each file holding its synced bytes and the operations since its last
//! `fdatasync`, the directory holding its synced entries apart from its
//! current ones. A power loss keeps what was synced, then replays a random
//! prefix of the unsynced operations of each file, the last one possibly
//! torn at a 512- or 4096-byte boundary of the file, may leave garbage
//! after the tail, and forgets every directory change not synced (a file
//! created and not synced into the directory is gone; one removed comes
//! back). Faults: `fdatasync` failing, a disk that runs out of space, and
//! the process dying before its Nth changing call (every call after fails).

#![allow(dead_code)]

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use herald_spool::{Fs, FsFile, OpenHow};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[derive(Debug, Clone)]
enum Op {
    Write(u64, Vec<u8>),
    SetLen(u64),
}

#[derive(Debug, Default)]
struct Inode {
    synced: Vec<u8>,
    current: Vec<u8>,
    unsynced: Vec<Op>,
}

fn apply(data: &mut Vec<u8>, op: &Op) {
    match op {
        Op::Write(at, b) => {
            let end = *at as usize + b.len();
            if data.len() < end {
                data.resize(end, 0);
            }
            data[*at as usize..end].copy_from_slice(b);
        }
        Op::SetLen(n) => data.resize(*n as usize, 0),
    }
}

#[derive(Debug, Default)]
struct State {
    inodes: HashMap<u64, Inode>,
    next_ino: u64,
    current: BTreeMap<String, u64>,
    synced: BTreeMap<String, u64>,
    /// `fdatasync` fails (EIO) while set.
    failing_syncs: bool,
    /// Bytes all files may hold together, while set.
    space: Option<usize>,
    /// Counters: data syncs and directory syncs.
    pub data_syncs: u64,
    pub dir_syncs: u64,
    /// The process dies before this many more changing calls: every call
    /// from then on fails (nothing more reaches the disk) until a power
    /// loss or a restart.
    crash_in: Option<u64>,
    dead: bool,
}

impl State {
    /// Count a changing call: fails once the process is "dead".
    fn step(&mut self) -> io::Result<()> {
        if let Some(n) = self.crash_in {
            if n == 0 {
                self.dead = true;
                self.crash_in = None;
            } else {
                self.crash_in = Some(n - 1);
            }
        }
        if self.dead {
            return Err(io::Error::other("the process died here (simulated crash)"));
        }
        Ok(())
    }

    fn used(&self) -> usize {
        self.current
            .values()
            .map(|i| self.inodes[i].current.len())
            .sum()
    }
}

/// How a power loss treats the unsynced writes.
#[derive(Debug, Clone, Copy)]
pub struct Loss {
    pub seed: u64,
    /// Tear the last replayed write at multiples of this (512 or 4096).
    pub sector: usize,
    /// Append random bytes after the tail of the last segment.
    pub garbage: bool,
}

#[derive(Debug, Clone, Default)]
pub struct SimFs {
    state: Arc<Mutex<State>>,
}

fn name(p: &Path) -> String {
    p.file_name()
        .expect("a file in the spool directory")
        .to_string_lossy()
        .into_owned()
}

fn not_found(p: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} not found", p.display()),
    )
}

impl SimFs {
    pub fn new() -> SimFs {
        SimFs::default()
    }

    /// The process dies before the `n`th changing call from now (0: the
    /// next one): a crash at any point between a write, a sync, an unlink
    /// and a directory sync.
    pub fn crash_after(&self, n: u64) {
        self.state.lock().unwrap().crash_in = Some(n);
    }

    /// A restart: the process runs again on what the page cache holds.
    pub fn restart(&self) {
        let mut s = self.state.lock().unwrap();
        s.dead = false;
        s.crash_in = None;
        s.failing_syncs = false;
        s.space = None;
    }

    pub fn fail_syncs(&self, on: bool) {
        self.state.lock().unwrap().failing_syncs = on;
    }

    /// Let the files grow by `room` more bytes at most (`None`: no limit).
    pub fn limit_space(&self, room: Option<usize>) {
        let mut s = self.state.lock().unwrap();
        s.space = room.map(|r| s.used() + r);
    }

    pub fn syncs(&self) -> (u64, u64) {
        let s = self.state.lock().unwrap();
        (s.data_syncs, s.dir_syncs)
    }

    /// The current bytes of a file (for tests that flip bits).
    pub fn bytes(&self, file: &str) -> Option<Vec<u8>> {
        let s = self.state.lock().unwrap();
        s.current.get(file).map(|i| s.inodes[i].current.clone())
    }

    pub fn names(&self) -> Vec<String> {
        self.state.lock().unwrap().current.keys().cloned().collect()
    }

    /// Lose power: see the module's comment. Faults are cleared.
    pub fn power_loss(&self, loss: Loss) {
        let mut rng = StdRng::seed_from_u64(loss.seed);
        let mut s = self.state.lock().unwrap();
        s.current = s.synced.clone();
        s.failing_syncs = false;
        s.space = None;
        s.dead = false;
        s.crash_in = None;
        let mut inos: Vec<u64> = s.inodes.keys().copied().collect();
        inos.sort();
        for ino in inos {
            let node = s.inodes.get_mut(&ino).unwrap();
            let mut data = node.synced.clone();
            let ops = std::mem::take(&mut node.unsynced);
            let kept = rng.gen_range(0..=ops.len());
            for op in &ops[..kept] {
                apply(&mut data, op);
            }
            // The next write may have reached the disk in part: whole
            // sectors from its start.
            if let Some(Op::Write(at, b)) = ops.get(kept) {
                let end = *at as usize + b.len();
                let first = (*at as usize / loss.sector + 1) * loss.sector;
                let cuts: Vec<usize> = (first..end).step_by(loss.sector).collect();
                if !cuts.is_empty() {
                    let cut = cuts[rng.gen_range(0..cuts.len())];
                    apply(&mut data, &Op::Write(*at, b[..cut - *at as usize].to_vec()));
                }
            }
            node.synced = data.clone();
            node.current = data;
        }
        if loss.garbage {
            let last = s
                .current
                .keys()
                .filter(|n| n.ends_with(".seg"))
                .max()
                .cloned();
            if let Some(last) = last {
                let ino = s.current[&last];
                let n = rng.gen_range(1..600);
                let junk: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
                let node = s.inodes.get_mut(&ino).unwrap();
                node.current.extend_from_slice(&junk);
                node.synced = node.current.clone();
            }
        }
    }
}

#[derive(Debug)]
struct SimFile {
    state: Arc<Mutex<State>>,
    ino: u64,
}

impl FsFile for SimFile {
    fn write_at(&self, at: u64, buf: &[u8]) -> io::Result<()> {
        let mut s = self.state.lock().unwrap();
        s.step()?;
        let cur_len = s.inodes[&self.ino].current.len();
        let mut take = buf.len();
        if let Some(space) = s.space {
            let grow = (at as usize + buf.len()).saturating_sub(cur_len);
            let room = space.saturating_sub(s.used());
            if grow > room {
                // What fits is written, as write(2) does, then ENOSPC.
                take = (cur_len + room).saturating_sub(at as usize).min(buf.len());
            }
        }
        let node = s.inodes.get_mut(&self.ino).unwrap();
        let op = Op::Write(at, buf[..take].to_vec());
        apply(&mut node.current, &op);
        node.unsynced.push(op);
        if take < buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "No space left on device (simulated)",
            ));
        }
        Ok(())
    }
    fn read_at(&self, at: u64, buf: &mut [u8]) -> io::Result<usize> {
        let s = self.state.lock().unwrap();
        let data = &s.inodes[&self.ino].current;
        let at = (at as usize).min(data.len());
        let n = buf.len().min(data.len() - at);
        buf[..n].copy_from_slice(&data[at..at + n]);
        Ok(n)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut s = self.state.lock().unwrap();
        s.step()?;
        let node = s.inodes.get_mut(&self.ino).unwrap();
        let op = Op::SetLen(len);
        apply(&mut node.current, &op);
        node.unsynced.push(op);
        Ok(())
    }
    fn sync_data(&self) -> io::Result<()> {
        let mut s = self.state.lock().unwrap();
        s.step()?;
        if s.failing_syncs {
            return Err(io::Error::other(
                "Input/output error (simulated fdatasync failure)",
            ));
        }
        s.data_syncs += 1;
        let node = s.inodes.get_mut(&self.ino).unwrap();
        node.synced = node.current.clone();
        node.unsynced.clear();
        Ok(())
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.state.lock().unwrap().inodes[&self.ino].current.len() as u64)
    }
}

impl Fs for SimFs {
    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }
    fn list(&self, _dir: &Path) -> io::Result<Vec<String>> {
        Ok(self.names())
    }
    fn exists(&self, path: &Path) -> bool {
        self.state.lock().unwrap().current.contains_key(&name(path))
    }
    fn open(&self, path: &Path, how: OpenHow) -> io::Result<Box<dyn FsFile>> {
        let mut s = self.state.lock().unwrap();
        if matches!(how, OpenHow::New | OpenHow::OrCreate) {
            s.step()?;
        }
        let n = name(path);
        let ino = match (s.current.get(&n).copied(), how) {
            (Some(_), OpenHow::New) => {
                return Err(io::Error::new(io::ErrorKind::AlreadyExists, n));
            }
            (Some(i), _) => i,
            (None, OpenHow::Read | OpenHow::Write) => return Err(not_found(path)),
            (None, OpenHow::OrCreate | OpenHow::New) => {
                s.next_ino += 1;
                let i = s.next_ino;
                s.inodes.insert(i, Inode::default());
                s.current.insert(n, i);
                i
            }
        };
        Ok(Box::new(SimFile {
            state: self.state.clone(),
            ino,
        }))
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state.lock().unwrap();
        s.step()?;
        s.current
            .remove(&name(path))
            .map(|_| ())
            .ok_or_else(|| not_found(path))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.state.lock().unwrap();
        s.step()?;
        let ino = s
            .current
            .remove(&name(from))
            .ok_or_else(|| not_found(from))?;
        s.current.insert(name(to), ino);
        Ok(())
    }
    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        let mut s = self.state.lock().unwrap();
        s.step()?;
        s.dir_syncs += 1;
        s.synced = s.current.clone();
        Ok(())
    }
    fn try_lock(&self, _path: &Path) -> io::Result<Option<Box<dyn Any + Send + Sync>>> {
        Ok(Some(Box::new(())))
    }
}

/// The directory the simulated filesystem stands for.
pub fn dir() -> PathBuf {
    PathBuf::from("/sim/spool")
}
