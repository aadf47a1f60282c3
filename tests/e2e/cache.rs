//! `pkgr cache path|ls|verify|prune`, checked against what a create put in the cache,
//! and the cache lock that keeps a prune from pulling blobs out from under a create.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::Output;
use std::time::{Duration, SystemTime};

use pkgr::progress::human_bytes;

use crate::support::definition::Definition;
use crate::support::images::{layer, noise, Image, Pusher};
use crate::support::package::Package;
use crate::support::proxy::{Fault, FaultProxy};
use crate::support::registry::TestRegistry;
use crate::support::{package_path, spawn, stderr, stdout, wait_until, Workspace};

const WAITING: &str = "waiting for another pkgr process to release the cache lock";

/// Two images that share a base layer: 2 manifests, 2 configs, 3 distinct layers.
fn two_images(registry: &TestRegistry) -> (Vec<String>, Vec<Image>) {
    let pusher = Pusher::new(&registry.addr);
    let base = layer(&[("base", &noise(21, 300_000))]);
    let images = vec![
        pusher.image(
            "app-a",
            "1",
            false,
            "amd64",
            &[base.clone(), layer(&[("a", &noise(22, 50_000))])],
        ),
        pusher.image(
            "app-b",
            "1",
            true,
            "amd64",
            &[base, layer(&[("b", &noise(23, 70_000))])],
        ),
    ];
    let refs = vec![
        format!("{}/app-a:1", registry.addr),
        format!("{}/app-b:1", registry.addr),
    ];
    (refs, images)
}

/// Every distinct blob of `images`, digest → size.
fn blobs_of(images: &[&Image]) -> BTreeMap<String, u64> {
    images
        .iter()
        .flat_map(|i| i.all())
        .map(|b| (b.digest.clone(), b.bytes.len() as u64))
        .collect()
}

fn succeeded(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        stdout(out),
        stderr(out)
    );
    stdout(out)
}

fn ls_json(ws: &Workspace) -> serde_json::Value {
    serde_json::from_str(&succeeded(&ws.cache(&["ls", "--json"]))).unwrap()
}

/// The cache's blobs as `ls --json` lists them, digest → size.
fn listed(ws: &Workspace) -> BTreeMap<String, u64> {
    ls_json(ws)["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["digest"].as_str().unwrap().to_owned(),
                e["size"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn ingest_files(ws: &Workspace) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(ws.path("cache").join("ingest-v1"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn path_follows_the_flag_then_the_environment() {
    let ws = Workspace::new();
    let line = |out: Output| succeeded(&out).trim_end().to_owned();
    let env_cache = ws.path("cache").display().to_string();
    assert_eq!(line(ws.cache(&["path"])), env_cache);

    let flag = ws.path("elsewhere");
    let flag_str = flag.to_str().unwrap();
    assert_eq!(
        line(ws.cache(&["path", "--cache", flag_str])),
        flag_str,
        "--cache after the subcommand"
    );
    assert_eq!(
        line(ws.cache(&["--cache", flag_str, "path"])),
        flag_str,
        "--cache before the subcommand"
    );
    assert!(!flag.exists(), "`cache path` must not create the directory");

    let without_env = || {
        let mut cmd = ws.pkgr();
        cmd.env_remove("PKGR_CACHE_DIR").args(["cache", "path"]);
        cmd
    };
    let xdg = ws.path("xdg");
    assert_eq!(
        line(without_env().env("XDG_CACHE_HOME", &xdg).output().unwrap()),
        xdg.join("pkgr").display().to_string()
    );
    assert_eq!(
        line(without_env().output().unwrap()),
        ws.path("home").join(".cache/pkgr").display().to_string()
    );

    let out = without_env().env_remove("HOME").output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.starts_with("error: no cache directory"), "{err}");
    assert!(
        err.contains("hint: pass --cache DIR or set $PKGR_CACHE_DIR"),
        "{err}"
    );
}

#[test]
fn ls_counts_exactly_what_a_create_stored() {
    let registry = TestRegistry::start();
    let (refs, images) = two_images(&registry);
    let ws = Workspace::new();

    let empty = ls_json(&ws);
    for key in ["blobs", "bytes", "partials", "partialBytes"] {
        assert_eq!(empty[key], 0, "{key} of an empty cache");
    }

    ws.define(&Definition::new("listed").images(&refs));
    let package = Package::read(&package_path(&ws.create(&[])));
    let in_package: BTreeMap<String, u64> = package
        .blob_names()
        .into_iter()
        .map(|name| {
            let hex = name.rsplit('/').next().unwrap();
            (format!("sha256:{hex}"), package.files[name].len() as u64)
        })
        .collect();
    assert_eq!(in_package, blobs_of(&[&images[0], &images[1]]));
    assert_eq!(in_package.len(), 7);
    let bytes: u64 = in_package.values().sum();

    let json = ls_json(&ws);
    assert_eq!(json["root"], ws.path("cache").display().to_string());
    assert_eq!(json["schemaVersion"], 1);
    assert_eq!(json["blobs"], 7);
    assert_eq!(json["bytes"], bytes);
    assert_eq!(json["partials"], 0);
    assert_eq!(json["partialBytes"], 0);
    assert_eq!(listed(&ws), in_package);
    // The last use is the blob file's modification time, in UTC.
    let (first, _) = in_package.iter().next().unwrap();
    File::options()
        .write(true)
        .open(ws.cached_blob(first))
        .unwrap()
        .set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_599))
        .unwrap();
    let json = ls_json(&ws);
    assert_eq!(json["entries"][0]["digest"], first.as_str());
    assert_eq!(json["entries"][0]["lastUsed"], "2025-12-31T23:59:59Z");

    let partial = ws
        .path("cache")
        .join("ingest-v1")
        .join(format!("{}.partial", "ab".repeat(32)));
    std::fs::write(&partial, vec![7u8; 1234]).unwrap();
    let json = ls_json(&ws);
    assert_eq!(
        (&json["partials"], &json["partialBytes"]),
        (&1.into(), &1234.into())
    );

    let table = succeeded(&ws.cache(&["ls"]));
    assert_eq!(
        table,
        format!(
            "cache     {}\nblobs     7 ({})\npartials  1 (1.2 KiB)\n",
            ws.path("cache").display(),
            human_bytes(bytes)
        )
    );

    let absent = ws.path("absent");
    let out = ws.cache(&["ls", "--json", "--cache", absent.to_str().unwrap()]);
    let json: serde_json::Value = serde_json::from_str(&succeeded(&out)).unwrap();
    assert_eq!((&json["blobs"], &json["bytes"]), (&0.into(), &0.into()));
    assert_eq!(json["entries"], serde_json::json!([]));
    assert!(!absent.exists(), "`cache ls` must not create the cache");
}

#[test]
fn verify_reports_and_evicts_a_damaged_blob() {
    let registry = TestRegistry::start();
    let (refs, images) = two_images(&registry);
    let ws = Workspace::new();
    ws.define(&Definition::new("verified").images(&refs));
    package_path(&ws.create(&[]));
    let all = blobs_of(&[&images[0], &images[1]]);
    let bytes: u64 = all.values().sum();

    let clean = succeeded(&ws.cache(&["verify", "--no-progress"]));
    assert_eq!(
        clean,
        format!("checked 7 blobs ({}): 0 damaged\n", human_bytes(bytes))
    );

    // Same length, one byte flipped: only re-hashing can tell.
    let damaged = &images[1].layers[1];
    let path = ws.cached_blob(&damaged.digest);
    let mut content = std::fs::read(&path).unwrap();
    content[100] ^= 0xff;
    std::fs::write(&path, &content).unwrap();

    let out = ws.cache(&["verify", "--no-progress"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(
        stdout(&out),
        format!(
            "{} damaged, removed\nchecked 7 blobs ({}): 1 damaged\n",
            damaged.digest,
            human_bytes(bytes)
        )
    );
    assert!(
        err.contains(&format!(
            "error: 1 damaged blob(s) in the cache {} were removed",
            ws.path("cache").display()
        )),
        "{err}"
    );
    assert!(!path.exists(), "the damaged blob must be evicted");
    let mut rest = all.clone();
    rest.remove(&damaged.digest);
    assert_eq!(listed(&ws), rest);

    let again = succeeded(&ws.cache(&["verify", "--no-progress"]));
    assert_eq!(
        again,
        format!(
            "checked 6 blobs ({}): 0 damaged\n",
            human_bytes(bytes - damaged.bytes.len() as u64)
        )
    );
    // The next create fetches the evicted blob again.
    let package = Package::read(&package_path(&ws.create(&[])));
    assert_eq!(package.blob(&damaged.digest), Some(&damaged.bytes));

    let absent = ws.path("absent");
    let out = ws.cache(&["verify", "--cache", absent.to_str().unwrap()]);
    assert_eq!(
        succeeded(&out),
        format!("no cache at {}: nothing to verify\n", absent.display())
    );
    assert!(!absent.exists());
}

#[test]
fn prune_sweeps_stale_partials_and_old_locks_but_keeps_blobs() {
    let registry = TestRegistry::start();
    let (refs, images) = two_images(&registry);
    let ws = Workspace::new();
    ws.define(&Definition::new("pruned").images(&refs));
    package_path(&ws.create(&[]));
    let all = blobs_of(&[&images[0], &images[1]]);

    let ingest = ws.path("cache").join("ingest-v1");
    assert!(
        ingest_files(&ws).is_empty(),
        "a create that finished leaves nothing in ingest: {:?}",
        ingest_files(&ws)
    );

    // What crashed runs leave: partials, and a lock file from a build before partials
    // locked themselves; and one download still going on (its partial locked), which
    // must be left alone.
    let (crashed, lone, busy) = ("c".repeat(64), "d".repeat(64), "e".repeat(64));
    std::fs::write(ingest.join(format!("{crashed}.partial")), vec![0u8; 3000]).unwrap();
    std::fs::write(ingest.join(format!("{crashed}.lock")), b"").unwrap();
    std::fs::write(ingest.join(format!("{lone}.partial")), vec![0u8; 500]).unwrap();
    std::fs::write(ingest.join(format!("{busy}.partial")), vec![0u8; 100]).unwrap();
    let busy_writer = File::options()
        .write(true)
        .open(ingest.join(format!("{busy}.partial")))
        .unwrap();
    busy_writer.lock().unwrap();

    let out = succeeded(&ws.cache(&["prune"]));
    assert_eq!(
        out,
        format!(
            "removed 0 blobs (0 B) and 2 partial downloads ({}), and 1 stale lock file from {}\n",
            human_bytes(3500),
            ws.path("cache").display()
        )
    );
    assert_eq!(ingest_files(&ws), vec![format!("{busy}.partial")]);
    assert_eq!(listed(&ws), all, "prune without options keeps every blob");
    drop(busy_writer);

    let out = succeeded(&ws.cache(&["prune"]));
    assert_eq!(
        out,
        format!(
            "removed 0 blobs (0 B) and 1 partial download (100 B) from {}\n",
            ws.path("cache").display()
        )
    );
    assert!(ingest_files(&ws).is_empty());

    let absent = ws.path("absent");
    let out = ws.cache(&["prune", "--all", "--cache", absent.to_str().unwrap()]);
    assert_eq!(
        succeeded(&out),
        format!("no cache at {}: nothing to prune\n", absent.display())
    );
    assert!(!absent.exists());
}

#[test]
fn prune_all_empties_the_cache() {
    let registry = TestRegistry::start();
    let (refs, images) = two_images(&registry);
    let ws = Workspace::new();
    ws.define(&Definition::new("emptied").images(&refs));
    package_path(&ws.create(&[]));
    let bytes: u64 = blobs_of(&[&images[0], &images[1]]).values().sum();

    let out = succeeded(&ws.cache(&["prune", "--all"]));
    assert_eq!(
        out,
        format!(
            "removed 7 blobs ({}) and 0 partial downloads (0 B) from {}\n",
            human_bytes(bytes),
            ws.path("cache").display()
        )
    );
    let json = ls_json(&ws);
    assert_eq!((&json["blobs"], &json["bytes"]), (&0.into(), &0.into()));
    assert!(ingest_files(&ws).is_empty());

    let out = ws.cache(&["prune", "--all", "--older-than", "1d"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    // An emptied cache fills again.
    let package = Package::read(&package_path(&ws.create(&[])));
    assert_eq!(package.blob_names().len(), 7);
    assert_eq!(ls_json(&ws)["blobs"], 7);
}

#[test]
fn prune_older_than_drops_only_blobs_unused_that_long() {
    let registry = TestRegistry::start();
    let (refs, images) = two_images(&registry);
    let (only_a, only_b) = (Workspace::new(), Workspace::new());
    only_a.define(&Definition::new("only-a").images(&refs[..1]));
    only_b.define(&Definition::new("only-b").images(&refs[1..]));
    let shared = only_a.path("cache");
    let create = |ws: &Workspace| {
        ws.create_command(&[])
            .env("PKGR_CACHE_DIR", &shared)
            .output()
            .unwrap()
    };
    package_path(&create(&only_a));
    package_path(&create(&only_b));
    assert_eq!(listed(&only_a).len(), 7);

    // Forty days pass; then only app-b is packaged again, from the cache.
    let long_ago = SystemTime::now() - Duration::from_secs(40 * 86_400);
    for digest in listed(&only_a).keys() {
        File::options()
            .write(true)
            .open(only_a.cached_blob(digest))
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
    }
    std::fs::remove_dir_all(only_b.path("out")).unwrap();
    let out = create(&only_b);
    package_path(&out);
    assert!(
        stderr(&out).contains("downloading finished: 0 blobs (0 B)"),
        "{}",
        stderr(&out)
    );

    let out = only_a.cache(&["prune", "--older-than", "30d"]);
    let text = succeeded(&out);
    let b_blobs = blobs_of(&[&images[1]]);
    let a_only: BTreeMap<String, u64> = blobs_of(&[&images[0]])
        .into_iter()
        .filter(|(d, _)| !b_blobs.contains_key(d))
        .collect();
    assert_eq!(a_only.len(), 3, "app-a's manifest, config and own layer");
    assert!(
        text.starts_with(&format!(
            "removed 3 blobs ({}) and 0 partial downloads (0 B)",
            human_bytes(a_only.values().sum())
        )),
        "{text}"
    );
    assert_eq!(
        listed(&only_a),
        b_blobs,
        "the blobs app-b used, its share of the base layer included, stay"
    );

    let text = succeeded(&only_a.cache(&["prune", "--older-than", "30d"]));
    assert!(text.starts_with("removed 0 blobs (0 B)"), "{text}");
    let out = only_a.cache(&["prune", "--older-than", "a while"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("`a while` is not an age"), "{err}");
}

#[test]
fn a_prune_racing_a_create_waits_and_the_create_succeeds() {
    let registry = TestRegistry::start();
    let image = Pusher::new(&registry.addr).image(
        "app",
        "1",
        false,
        "amd64",
        &[layer(&[("data", &noise(31, 400_000))])],
    );
    let layer_digest = image.layers[0].digest.clone();
    let proxy = FaultProxy::start(
        &registry.addr,
        vec![(layer_digest.clone(), Fault::Stall(Duration::from_secs(5)))],
    );
    let ws = Workspace::new();
    ws.define(&Definition::new("raced").image(format!("{}/app:1", proxy.addr)));

    let create = spawn(ws.create_command(&[]));
    // The create holds the cache (it opens it before resolving) and is now stuck on
    // the layer, with its manifest and config already in the cache.
    wait_until("the layer download to start", || {
        proxy.seen().iter().any(|s| s.path.ends_with(&layer_digest))
    });
    let prune = spawn(ws.cache_command(&["prune", "--all"]));

    let created = create.wait_with_output().unwrap();
    let package = Package::read(&package_path(&created));
    assert!(!stderr(&created).contains(WAITING), "{}", stderr(&created));
    for blob in image.all() {
        assert_eq!(
            package.blob(&blob.digest),
            Some(&blob.bytes),
            "{}",
            blob.digest
        );
    }
    let pruned = prune.wait_with_output().unwrap();
    let err = stderr(&pruned);
    assert_eq!(pruned.status.code(), Some(0), "{err}");
    // Only the create held the lock: the prune found it busy and waited.
    assert_eq!(
        err,
        format!("{WAITING} {}\n", ws.path("cache").join("lock").display())
    );
    // It ran after the create: everything the create stored was there to remove.
    let bytes: u64 = blobs_of(&[&image]).values().sum();
    assert!(
        stdout(&pruned).starts_with(&format!("removed 3 blobs ({})", human_bytes(bytes))),
        "{}",
        stdout(&pruned)
    );
    assert_eq!(ls_json(&ws)["blobs"], 0);
}

#[test]
fn a_create_waits_for_a_maintainer_holding_the_cache() {
    let registry = TestRegistry::start();
    let image =
        Pusher::new(&registry.addr).image("app", "1", true, "amd64", &[layer(&[("a", b"a")])]);
    let ws = Workspace::new();
    ws.define(&Definition::new("waited").image(format!("{}/app:1", registry.addr)));

    // What `prune` and `verify` hold while they work.
    let lock_path: &Path = &ws.path("cache").join("lock");
    let maintainer = File::create(lock_path).unwrap();
    maintainer.lock().unwrap();
    let mut create = spawn(ws.create_command(&[]));
    // Read the create's log up to the line that says it is waiting; a create that
    // ended instead shows its whole log here.
    let mut log = BufReader::new(create.stderr.take().unwrap());
    let mut seen = String::new();
    let expected = format!("{WAITING} {}\n", lock_path.display());
    while !seen.ends_with(&expected) {
        let mut line = String::new();
        let read = log.read_line(&mut line).unwrap();
        assert!(read > 0, "the create never waited:\n{seen}");
        seen.push_str(&line);
    }
    assert!(
        !ws.path("cache").join("blobs-v1").exists(),
        "the create must not touch the cache before it has the lock"
    );
    drop(maintainer);

    let mut rest = String::new();
    log.read_to_string(&mut rest).unwrap();
    let out = create.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{seen}{rest}");
    let package = Package::read(&package_path(&out));
    for blob in image.all() {
        assert_eq!(package.blob(&blob.digest), Some(&blob.bytes));
    }
    assert!(
        !rest.contains(WAITING),
        "said it was waiting twice:\n{rest}"
    );
}
