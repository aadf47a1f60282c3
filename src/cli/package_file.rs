//! The guard in front of every command that reads a package: the path must name a
//! regular file. Opening a FIFO blocks until a writer comes, and a directory or a
//! device such as /dev/zero is never a package, so they are refused from their
//! metadata before anything opens them.

use std::fs::FileType;
use std::path::Path;

use super::Error;

/// Refuses a path that exists but is not a regular file (symbolic links are followed).
/// A path that cannot be looked at is left to the reader, whose error says why.
pub fn ensure_regular(path: &Path) -> Result<(), Error> {
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_file() => Err(Error::NotARegularFile {
            path: path.to_owned(),
            kind: describe(&meta.file_type()),
        }),
        _ => Ok(()),
    }
}

fn describe(file_type: &FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a FIFO";
        }
        if file_type.is_char_device() {
            return "a character device";
        }
        if file_type.is_block_device() {
            return "a block device";
        }
        if file_type.is_socket() {
            return "a socket";
        }
    }
    if file_type.is_dir() {
        "a directory"
    } else {
        "not a file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_and_directories_are_named_and_files_pass() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.tar");
        std::fs::write(&file, b"x").unwrap();
        assert!(ensure_regular(&file).is_ok());
        assert!(ensure_regular(&dir.path().join("missing")).is_ok());
        for (path, kind) in [
            (dir.path(), "a directory"),
            (Path::new("/dev/zero"), "a character device"),
        ] {
            let err = ensure_regular(path).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("{} is not a regular file (it is {kind})", path.display())
            );
            assert_eq!(err.exit_code(), crate::cli::error::EXIT_FAILURE);
        }
    }
}
