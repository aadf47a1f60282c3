//! The `push --json` document: what a script reads of a push. Versioned by
//! [`SCHEMA_VERSION`], raised only when a field changes meaning or goes away.

use std::time::Duration;

use super::{PushReport, Tally};

pub const SCHEMA_VERSION: u32 = 1;

/// The schema version, the target, each image pushed (from where, to where, its
/// digest) or not (with why), each blob's
/// outcome per repository, the totals (with the blobs the target already held, which
/// push did not read) and the time taken.
pub fn document(report: &PushReport, target: &str, elapsed: Duration) -> serde_json::Value {
    let tally = |t: &Tally| serde_json::json!({ "blobs": t.count, "bytes": t.bytes });
    let pushed = report.pushed.iter().map(|image| {
        serde_json::json!({
            "source": image.source,
            "target": image.target,
            "digest": image.digest,
            "pushed": true,
        })
    });
    let failed = report.failed.iter().map(|(image, err)| {
        serde_json::json!({
            "source": image,
            "pushed": false,
            "error": err.to_string(),
        })
    });
    serde_json::json!({
        "schemaVersion": SCHEMA_VERSION,
        "target": target,
        "images": pushed.chain(failed).collect::<Vec<_>>(),
        "blobs": report.blobs,
        "totals": {
            "sent": tally(&report.uploaded),
            "mounted": tally(&report.mounted),
            "present": tally(&report.skipped),
            "notRead": tally(&report.not_read),
        },
        "elapsedSeconds": elapsed.as_secs_f64(),
    })
}
