//! What `pkgr create` prints at the end: the package's path on stdout (or, with
//! `--json`, the document of `package::made`), and a closing line on stderr.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Error;
use crate::package::made;
use crate::progress::{human_bytes, took};

pub async fn report(path: PathBuf, json: bool, elapsed: Duration) -> Result<(), Error> {
    let result = match json {
        true => {
            let described = path.clone();
            let document = crate::cli::blocking("describing the package", move || {
                Ok(made::describe(&described)?)
            })
            .await?;
            format!("{document:#}")
        }
        false => path.display().to_string(),
    };
    say_created(&path, elapsed);
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{result}");
    Ok(())
}

/// The closing line: what was made, how large, how long, the rate.
fn say_created(path: &Path, elapsed: Duration) {
    if crate::progress::is_quiet() {
        return;
    }
    let bytes = made::package_bytes(path);
    let _ = writeln!(
        std::io::stderr().lock(),
        "created {} ({}) {}",
        path.display(),
        human_bytes(bytes),
        took(bytes, elapsed)
    );
}
