//! A small tmpfs mounted for one test, to fill a disk on purpose. Mounting needs root
//! (or CAP_SYS_ADMIN): a test that cannot mount one fails, it never passes unseen. The
//! mount is undone when the guard drops, a failing test included.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Tmpfs {
    pub path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` bytes at `path`, creating the directory.
    pub fn mount(path: &Path, size: u64) -> Self {
        std::fs::create_dir_all(path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .expect("cannot run mount");
        assert!(
            out.status.success(),
            "cannot mount a tmpfs at {}: disk-full tests need root or CAP_SYS_ADMIN ({})",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Self {
            path: path.to_owned(),
        }
    }

    /// Bytes free on the tmpfs.
    pub fn free(&self) -> u64 {
        let stat = rustix::fs::statvfs(&self.path).unwrap();
        stat.f_bavail * stat.f_frsize
    }

    /// Writes a file of real (not sparse) bytes at `name` until only `leave` bytes are
    /// free; with 0, until the filesystem refuses more.
    pub fn fill(&self, name: &str, leave: u64) {
        let mut file = std::fs::File::create(self.path.join(name)).unwrap();
        let chunk = vec![0xa5u8; 64 << 10];
        loop {
            let room = self.free().saturating_sub(leave);
            if room == 0 {
                break;
            }
            let n = room.min(chunk.len() as u64) as usize;
            match file.write_all(&chunk[..n]) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull && leave == 0 => break,
                Err(e) => panic!("filling {}: {e}", self.path.display()),
            }
        }
        file.sync_all().unwrap();
    }

    /// Names in a directory on the tmpfs, sorted.
    pub fn names(&self, sub: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path.join(sub))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(&self.path)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            // Something still holds it open: detach it now, it goes once released.
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}
