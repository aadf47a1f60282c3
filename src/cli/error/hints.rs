//! The words of each [`Fix`] a library error suggests: here alone are the options a
//! fix names spelled out, as the user types them.

use crate::hint::{Fix, PlatformPin};

/// The hint line's text for `fix`.
pub fn words(fix: &Fix) -> String {
    match fix {
        Fix::ReportBug => {
            "this is a bug in pkgr: please report it with the command you ran and this output"
                .into()
        }
        Fix::Either(first, second) => format!("{}; or {}", words(first), words(second)),
        Fix::Each(fixes) => fixes.iter().map(words).collect::<Vec<_>>().join("; "),
        Fix::CheckName => {
            "check the repository name and tag, and that the registry holds it".into()
        }
        Fix::CheckCredentials => {
            "log in with `docker login`, or check the credentials in Docker's config.json".into()
        }
        Fix::LogIn { registry } => {
            format!("log in with `docker login {registry}` (pkgr reads Docker's config.json)")
        }
        Fix::TokenServiceOverHttps => {
"the registry's token service must use HTTPS, or be on the registry's own host".into()
        }
        Fix::CheckHost => "check the host and port, and that the registry is running".into(),
        Fix::TrustCa => {
            "pass --ca-file with the CA that signed it, or --insecure-skip-tls-verify".into()
        }
        Fix::PlainHttp => "the registry speaks plain HTTP: pass --plain-http".into(),
        Fix::RaiseTimeout => {
            "it was retried and kept stalling; if the link is only slow, raise --timeout".into()
        }
        Fix::StartDaemon => {
            "start the Docker daemon, or set DOCKER_HOST to one that has the image".into()
        }
        Fix::LoadIntoDaemon => {
            "load the image into the Docker daemon (docker load or docker pull), or fix the registry"
                .into()
        }
        Fix::PackageWithoutSignatures => {
            "without --with-signatures (or withSignatures: true) the images are packaged without them"
                .into()
        }
        Fix::PinPlatform { platforms } => index_listing(platforms),
        Fix::RaiseMaxBlobSize => {
            "if the image really has a blob this large, raise the bound with --max-blob-size (e.g. --max-blob-size 128GiB)"
                .into()
        }
        Fix::RaiseMaxReferrers => {
            "if the image really has that many, raise the bound with --max-referrers (e.g. --max-referrers 5000), or leave out --with-signatures"
                .into()
        }
        Fix::PickArchitecture => {
            "set metadata.architecture (or --architecture) to one of the platforms listed".into()
        }
        Fix::MakeRoom { options } => format!(
            "free some space there, or pass {} a directory on a filesystem with more room",
            options.join(" or ")
        ),
        Fix::CheckDisk => {
            "the new copy was verified when it was stored and had changed by the seal, so check the disk and anything else that writes to the cache or the output directory"
                .into()
        }
        Fix::NameCache => "pass --cache DIR or set $PKGR_CACHE_DIR".into(),
        Fix::AllowOtherArchitecture => {
            "pass --allow-other-architecture if the base's blobs are really wanted, or give a base of this architecture".into()
        }
    }
}

/// An index refusal's help: each platform pinned, the matching one marked,
/// attestations named beside the platform they describe.
fn index_listing(platforms: &[PlatformPin]) -> String {
    let name = |p: &PlatformPin| p.platform.as_deref().unwrap_or("unknown").to_owned();
    let width = platforms.iter().map(|p| name(p).len()).max().unwrap_or(0);
    let mut text = String::from("pin one platform's manifest instead:\n");
    for platform in platforms {
        let marker = if platform.matches {
            "   <- matches this package"
        } else {
            ""
        };
        text.push_str(&format!(
            "    {:<width$}  {}{marker}\n",
            name(platform),
            platform.pinned
        ));
        for attestation in &platform.attestations {
            text.push_str(&format!(
                "    {:<width$}    with its attestation {attestation}\n",
                ""
            ));
        }
    }
    text.push_str("or pass --allow-index to keep the whole index and every platform in it");
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;

    #[test]
    fn a_shortfall_names_each_option_that_moves_a_directory() {
        let make_room = |options: &[&'static str]| {
            words(&Fix::MakeRoom {
                options: options.to_vec(),
            })
        };
        assert_eq!(
            make_room(&["--cache", "--output"]),
            "free some space there, or pass --cache or --output a directory on a filesystem with more room"
        );
        assert_eq!(
            make_room(&["--output"]),
            "free some space there, or pass --output a directory on a filesystem with more room"
        );
    }

    #[test]
    fn fixes_are_worded_with_the_options_they_name() {
        assert_eq!(
            words(&Fix::RaiseMaxBlobSize),
            "if the image really has a blob this large, raise the bound with --max-blob-size (e.g. --max-blob-size 128GiB)"
        );
        assert_eq!(
            words(&Fix::RaiseMaxReferrers),
            "if the image really has that many, raise the bound with --max-referrers (e.g. --max-referrers 5000), or leave out --with-signatures"
        );
        assert_eq!(
            words(&Fix::Either(
                Box::new(Fix::CheckHost),
                Box::new(Fix::StartDaemon)
            )),
            "check the host and port, and that the registry is running; or start the Docker daemon, or set DOCKER_HOST to one that has the image"
        );
        assert_eq!(
            words(&Fix::LogIn {
                registry: "registry.test".into()
            }),
            "log in with `docker login registry.test` (pkgr reads Docker's config.json)"
        );
    }

    #[test]
    fn an_index_listing_aligns_platforms_and_marks_the_match() {
        let attestation = Digest::of(b"attestation");
        let listing = words(&Fix::PinPlatform {
            platforms: vec![
                PlatformPin {
                    platform: Some("linux/amd64".into()),
                    pinned: "r/app@a".into(),
                    matches: true,
                    attestations: vec![attestation.clone()],
                },
                PlatformPin {
                    platform: None,
                    pinned: "r/app@b".into(),
                    matches: false,
                    attestations: Vec::new(),
                },
            ],
        });
        assert_eq!(
            listing,
            format!(
                "pin one platform's manifest instead:\n    linux/amd64  r/app@a   <- matches this package\n                   with its attestation {attestation}\n    unknown      r/app@b\nor pass --allow-index to keep the whole index and every platform in it"
            )
        );
    }
}
