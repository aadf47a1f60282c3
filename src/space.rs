//! Disk space: what a build will write and where, checked against what is free before
//! anything is downloaded; sizes as people write them (`64GiB`); and the one test for
//! "the disk is full" that write errors are classified by.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::hint::{Fix, Hint};
use crate::progress::human_bytes;

/// The largest size a blob descriptor may declare unless `--max-blob-size` says
/// otherwise. Hosted registries cap a layer well below this (Amazon ECR at 52,000 MiB),
/// so a larger declaration is a broken or hostile manifest far more often than a real
/// layer, and the space check would otherwise take it at its word.
pub const DEFAULT_MAX_BLOB_SIZE: u64 = 64 << 30;

/// Whether a write failed because its filesystem is full (ENOSPC).
pub fn is_out_of_space(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::StorageFull
}

/// Parses a size as people write it: a whole number of bytes, optionally followed by a
/// unit, binary (`KiB`, `MiB`, `GiB`, `TiB`, `PiB`, `EiB`) or decimal (`kB`, `MB`,
/// `GB`, `TB`, `PB`, `EB`), in any case, with an optional space before it.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let not_a_number = || format!("`{text}` is not a size: write a whole number, e.g. 64GiB");
    if unit.starts_with(['.', ',']) {
        return Err(not_a_number());
    }
    let number: u64 = number.parse().map_err(|_| not_a_number())?;
    let unit = unit.trim();
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        "pib" => 1 << 50,
        "eib" => 1 << 60,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "pb" => 1_000_000_000_000_000,
        "eb" => 1_000_000_000_000_000_000,
        _ => {
            return Err(format!(
                "`{unit}` is not a unit of size: use B, KiB, MiB, GiB, TiB, PiB, EiB (or kB, MB, GB, TB, PB, EB)"
            ))
        }
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("`{text}` is more than 2^64 bytes"))
}

/// The directory where the filesystem holding `path` is mounted: the highest ancestor
/// (from the nearest one that exists) still on the same device.
pub fn filesystem_of(path: &Path) -> PathBuf {
    let mut ancestors = path
        .ancestors()
        .filter_map(|p| Some((p, p.metadata().ok()?)));
    let Some((mut top, first)) = ancestors.next() else {
        return path.to_owned();
    };
    for (dir, meta) in ancestors {
        if meta.dev() != first.dev() {
            break;
        }
        top = dir;
    }
    top.to_owned()
}

/// A directory a build writes into, and the option that moves it (for the hint: the
/// command line names it, this module only carries it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub dir: PathBuf,
    pub flag: &'static str,
}

/// What a build will write, known at plan time; every sum saturates.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Demand {
    /// Blob bytes the downloads will still write into the store.
    pub download: u64,
    /// Bytes of every blob and manifest the package will hold.
    pub content: u64,
    /// Blobs and manifests in the package.
    pub entries: u64,
}

/// Room for the package's own metadata (`pkgr.yaml`, `index.json`, `checksums.txt`,
/// `oci-layout`) beyond what each entry costs, and for the end of the tar and zstd's
/// frame.
const METADATA_ALLOWANCE: u64 = 64 << 10;
/// Per entry: a 512-byte tar header, up to 511 bytes of padding, and its lines in
/// `checksums.txt` and `index.json`.
const PER_ENTRY: u64 = 1024 + 256;

impl Demand {
    /// Adds a blob or manifest the package holds, of which `missing` bytes are still
    /// to be downloaded.
    pub fn add(&mut self, size: u64, missing: u64) {
        self.download = self.download.saturating_add(missing);
        self.content = self.content.saturating_add(size);
        self.entries = self.entries.saturating_add(1);
    }

    /// An upper bound on the package file's size. Layers are mostly compressed
    /// already, so zstd is assumed to gain nothing; its worst case for incompressible
    /// input adds 1/256.
    pub fn package_estimate(&self) -> u64 {
        let tar = self
            .content
            .saturating_add(self.entries.saturating_mul(PER_ENTRY))
            .saturating_add(METADATA_ALLOWANCE);
        tar.saturating_add(tar / 256)
    }
}

/// A place with the filesystem it is on and the bytes free there.
#[derive(Debug, Clone)]
struct Measured {
    place: Place,
    device: u64,
    free: u64,
}

impl Measured {
    fn of(place: Place) -> io::Result<Self> {
        let device = place.dir.metadata()?.dev();
        let stat = rustix::fs::statvfs(&place.dir)?;
        // What an unprivileged writer may use: blocks reserved for root do not count.
        let free = stat.f_bavail.saturating_mul(stat.f_frsize);
        Ok(Self {
            place,
            device,
            free,
        })
    }
}

/// Free space where a build writes, measured once, before its first download, so that
/// later checks compare everything planned so far against the same starting point.
/// Clones share what [`SpaceCheck::reserve`] took.
#[derive(Debug, Clone)]
pub struct SpaceCheck {
    store: Measured,
    output: Measured,
    /// Bytes written into the store by work that no plan counts as a download (an
    /// import from the Docker daemon), since the measure.
    reserved: Arc<AtomicU64>,
}

impl SpaceCheck {
    /// Measures the store's directory (where downloads go) and the output directory
    /// (where the staging directory and the package go). An error names the directory.
    pub fn measure(store: Place, output: Place) -> Result<Self, (PathBuf, io::Error)> {
        let measure = |place: Place| {
            let dir = place.dir.clone();
            Measured::of(place).map_err(|e| (dir, e))
        };
        Ok(Self {
            store: measure(store)?,
            output: measure(output)?,
            reserved: Arc::default(),
        })
    }

    /// Takes `written` bytes of the store's filesystem for work outside the plan, and
    /// checks that they fit beside everything reserved before and a package holding
    /// `content` more bytes. Every later check counts them as downloads.
    pub fn reserve(&self, written: u64, content: u64) -> Result<(), Shortfall> {
        let _ = self
            .reserved
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_add(written))
            });
        let mut demand = Demand::default();
        demand.add(content, 0);
        self.check(&demand)
    }

    /// Whether `demand` fits. On one filesystem the downloads and the package add up
    /// (blobs are hard-linked into the staging directory); across two, the store's
    /// filesystem takes the downloads and the output's takes a copy of every blob
    /// (links cannot cross filesystems) and the package.
    pub fn check(&self, demand: &Demand) -> Result<(), Shortfall> {
        let mut demand = *demand;
        demand.download = demand
            .download
            .saturating_add(self.reserved.load(Ordering::Relaxed));
        let package = demand.package_estimate();
        let short = |needed: u64, free: u64, places: Vec<Place>| {
            (needed > free).then_some(Shortfall {
                needed,
                free,
                places,
            })
        };
        let shortfall = if self.store.device == self.output.device {
            let mut places = vec![self.store.place.clone()];
            if self.output.place.dir != self.store.place.dir {
                places.push(self.output.place.clone());
            }
            short(
                demand.download.saturating_add(package),
                self.store.free.min(self.output.free),
                places,
            )
        } else {
            short(
                demand.download,
                self.store.free,
                vec![self.store.place.clone()],
            )
            .or_else(|| {
                short(
                    demand.content.saturating_add(package),
                    self.output.free,
                    vec![self.output.place.clone()],
                )
            })
        };
        shortfall.map_or(Ok(()), Err)
    }
}

/// Whether `needed` bytes fit on `place`'s filesystem now, for work that knows its
/// exact size before it starts (a pull knows its layers' and its package's).
pub fn room_for(place: Place, needed: u64) -> io::Result<Result<(), Shortfall>> {
    let measured = Measured::of(place)?;
    Ok(if needed > measured.free {
        Err(Shortfall {
            needed,
            free: measured.free,
            places: vec![measured.place],
        })
    } else {
        Ok(())
    })
}

/// A build that will not fit: how much it needs, how much is free, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not enough free space: this build needs {} on the filesystem of {}, and {} is free there",
    human_bytes(*needed),
    join(places.iter().map(|p| p.dir.display().to_string())),
    human_bytes(*free)
)]
pub struct Shortfall {
    pub needed: u64,
    pub free: u64,
    pub places: Vec<Place>,
}

impl Hint for Shortfall {
    fn hint(&self) -> Option<Fix> {
        Some(Fix::MakeRoom {
            options: self.places.iter().map(|p| p.flag).collect(),
        })
    }
}

fn join(items: impl Iterator<Item = String>) -> String {
    items.collect::<Vec<_>>().join(" and ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_parsed_with_binary_and_decimal_units() {
        for (text, bytes) in [
            ("0", 0),
            ("1234", 1234),
            ("512B", 512),
            ("64GiB", 64 << 30),
            ("64 GiB", 64 << 30),
            ("100gib", 100 << 30),
            ("3MiB", 3 << 20),
            ("2KiB", 2048),
            ("1TiB", 1 << 40),
            ("8EiB", 1 << 63),
            ("15EiB", 15 << 60),
            ("5GB", 5_000_000_000),
            ("1kB", 1000),
            ("18446744073709551615", u64::MAX),
        ] {
            assert_eq!(parse_size(text), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn a_size_that_is_not_one_is_refused_with_a_reason() {
        assert_eq!(
            parse_size("GiB").unwrap_err(),
            "`GiB` is not a size: write a whole number, e.g. 64GiB"
        );
        assert_eq!(
            parse_size("1.5GiB").unwrap_err(),
            "`1.5GiB` is not a size: write a whole number, e.g. 64GiB"
        );
        assert_eq!(
            parse_size("64 gigs").unwrap_err(),
            "`gigs` is not a unit of size: use B, KiB, MiB, GiB, TiB, PiB, EiB (or kB, MB, GB, TB, PB, EB)"
        );
        assert_eq!(
            parse_size("16EiB").unwrap_err(),
            "`16EiB` is more than 2^64 bytes"
        );
        assert!(parse_size("-1").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("99999999999999999999").is_err());
    }

    fn measured(dir: &str, flag: &'static str, device: u64, free: u64) -> Measured {
        Measured {
            place: Place {
                dir: dir.into(),
                flag,
            },
            device,
            free,
        }
    }

    fn demand(download: u64, content: u64, entries: u64) -> Demand {
        Demand {
            download,
            content,
            entries,
        }
    }

    const MIB: u64 = 1 << 20;

    #[test]
    fn the_package_estimate_bounds_a_tar_of_incompressible_blobs() {
        let d = demand(0, 100 * MIB, 10);
        let tar = 100 * MIB + 10 * PER_ENTRY + METADATA_ALLOWANCE;
        assert_eq!(d.package_estimate(), tar + tar / 256);
        assert!(d.package_estimate() > 100 * MIB + 10 * 1024);
        let mut added = Demand::default();
        added.add(60 * MIB, 0);
        added.add(40 * MIB, 40 * MIB);
        assert_eq!(added, demand(40 * MIB, 100 * MIB, 2));
        added.add(u64::MAX, u64::MAX);
        assert_eq!(added.download, u64::MAX, "sums saturate");
        assert_eq!(added.package_estimate(), u64::MAX);
    }

    #[test]
    fn on_one_filesystem_the_downloads_and_the_package_add_up() {
        let d = demand(50 * MIB, 80 * MIB, 4);
        let need = 50 * MIB + d.package_estimate();
        let check = |free| SpaceCheck {
            store: measured("/c", "--cache", 1, free),
            output: measured("/o", "--output", 1, free),
            reserved: Arc::default(),
        };
        assert_eq!(check(need).check(&d), Ok(()));
        let short = check(need - 1).check(&d).unwrap_err();
        assert_eq!((short.needed, short.free), (need, need - 1));
        assert_eq!(
            short.to_string(),
            format!(
                "not enough free space: this build needs {} on the filesystem of /c and /o, and {} is free there",
                human_bytes(need),
                human_bytes(need - 1)
            )
        );
        assert_eq!(
            short.hint(),
            Some(Fix::MakeRoom {
                options: vec!["--cache", "--output"]
            })
        );
    }

    #[test]
    fn without_a_cache_the_store_is_the_output_and_is_named_once() {
        let d = demand(80 * MIB, 80 * MIB, 4);
        let check = SpaceCheck {
            store: measured("/o", "--output", 1, 100 * MIB),
            output: measured("/o", "--output", 1, 100 * MIB),
            reserved: Arc::default(),
        };
        let short = check.check(&d).unwrap_err();
        assert_eq!(short.needed, 80 * MIB + d.package_estimate());
        assert_eq!(
            short.places,
            [Place {
                dir: "/o".into(),
                flag: "--output"
            }]
        );
        assert!(short.to_string().contains("on the filesystem of /o, and"));
    }

    #[test]
    fn across_two_filesystems_the_output_holds_a_copy_of_every_blob_and_the_package() {
        let d = demand(30 * MIB, 80 * MIB, 4);
        let output_need = 80 * MIB + d.package_estimate();
        let check = |store_free, output_free| SpaceCheck {
            store: measured("/c", "--cache", 1, store_free),
            output: measured("/o", "--output", 2, output_free),
            reserved: Arc::default(),
        };
        assert_eq!(check(30 * MIB, output_need).check(&d), Ok(()));

        let short = check(30 * MIB - 1, u64::MAX).check(&d).unwrap_err();
        assert_eq!((short.needed, short.free), (30 * MIB, 30 * MIB - 1));
        assert_eq!(short.places[0].flag, "--cache");

        let short = check(u64::MAX, output_need - 1).check(&d).unwrap_err();
        assert_eq!(short.needed, output_need);
        assert_eq!(
            short.hint(),
            Some(Fix::MakeRoom {
                options: vec!["--output"]
            })
        );
    }

    #[test]
    fn bytes_reserved_outside_the_plan_count_in_every_later_check() {
        let check = SpaceCheck {
            store: measured("/c", "--cache", 1, 100 * MIB),
            output: measured("/o", "--output", 1, 100 * MIB),
            reserved: Arc::default(),
        };
        let mut tar = Demand::default();
        tar.add(40 * MIB, 0);
        assert_eq!(check.reserve(40 * MIB, 40 * MIB), Ok(()));
        // A clone (another import) shares the reservation, and the plan sees it.
        let short = check.clone().reserve(40 * MIB, 40 * MIB).unwrap_err();
        assert_eq!(short.needed, 80 * MIB + tar.package_estimate());
        let mut both = tar;
        both.add(40 * MIB, 0);
        assert_eq!(
            check.check(&both).unwrap_err().needed,
            80 * MIB + both.package_estimate()
        );
    }

    #[test]
    fn the_filesystem_of_a_path_is_where_its_device_starts() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b");
        std::fs::create_dir_all(&deep).unwrap();
        let found = filesystem_of(&deep.join("not-yet-there"));
        assert!(deep.starts_with(&found), "{}", found.display());
        let device = |p: &Path| p.metadata().unwrap().dev();
        assert_eq!(device(&found), device(&deep));
        if let Some(parent) = found.parent() {
            assert_ne!(device(parent), device(&found), "{}", found.display());
        }
    }
}
