//! `--with-signatures`: cosign signatures, attestations and SBOMs, OCI 1.1 referrers
//! (through the referrers API and through the tag fallback) and buildx attestations
//! travel with their images, byte-exact, and land on the far side under the same tags.

use std::collections::HashMap;
use std::time::Duration;

use crate::support::definition::Definition;
use crate::support::images::{
    layer, noise, sha256, simple_signing, Image, Pusher, OCI_INDEX, OCI_MANIFEST,
};
use crate::support::measure::measure;
use crate::support::package::Package;
use crate::support::proxy::{Fault, FaultProxy};
use crate::support::referrers::{Answers, ReferrersStandIn};
use crate::support::registry::TestRegistry;
use crate::support::{package_path, sha256_file, stderr, stdout, Workspace};

const REPORT: &str = "application/vnd.example.report+json";

/// `sha256-<hex>` for a digest, as cosign and the referrers fallback name tags.
fn tag_of(digest: &str) -> String {
    digest.replace(':', "-")
}

/// Every manifest, config and layer of `image` is in the package with its exact bytes.
fn assert_carried(package: &Package, image: &Image) {
    for pushed in image.all() {
        assert_eq!(
            package.blob(&pushed.digest),
            Some(&pushed.bytes),
            "{} ({}) is not in the package byte-exact",
            pushed.digest,
            pushed.media_type
        );
    }
}

/// The index.json entry for `reference`: its digest, subject and relation.
fn link_of(package: &Package, reference: &str) -> (String, String, String) {
    let entry = package.entry(reference);
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("").to_owned();
    (
        text(&entry["digest"]),
        text(&entry["annotations"]["dev.pkgr.subject"]),
        text(&entry["annotations"]["dev.pkgr.relation"]),
    )
}

#[test]
fn signatures_attestations_sboms_and_referrers_travel_byte_exact_and_push_under_their_tags() {
    let registry = TestRegistry::start();
    let pusher = Pusher::new(&registry.addr);
    let app = pusher.image(
        "team/app",
        "1.0",
        false,
        "amd64",
        &[layer(&[("app", &noise(7, 64 << 10))])],
    );
    let signature = pusher.cosign_signature("team/app", &app.manifest);
    let attestation = pusher.cosign_attestation("team/app", &app.manifest);
    let sbom = pusher.cosign_sbom("team/app", &app.manifest);
    // One level further: a signature of the attestation.
    let attestation_signature = pusher.cosign_signature("team/app", &attestation.manifest);
    let referrer = pusher.referrer("team/app", &app.manifest, REPORT, br#"{"report":1}"#);
    // docker-registry 2.8 has no referrers API: the tag fallback lists the referrer.
    let listing = pusher.referrers_tag("team/app", &app.manifest, &[(&referrer, REPORT)]);

    let ws = Workspace::new();
    let app_ref = format!("{}/team/app:1.0", registry.addr);
    ws.define(&Definition::new("signed").image(&app_ref));

    // Without the flag, the image comes alone.
    let plain = Package::read(&package_path(&ws.create(&[])));
    assert_eq!(plain.index().len(), 1);

    let path = package_path(&ws.create(&["--with-signatures"]));
    let package = Package::read(&path);
    let at = |tag: &str| format!("{}/team/app:{tag}", registry.addr);
    let app_digest = app.manifest.digest.clone();
    let expected = [
        (app_ref.clone(), app_digest.clone(), String::new(), ""),
        (
            at(&format!("{}.sig", tag_of(&app_digest))),
            signature.manifest.digest.clone(),
            app_digest.clone(),
            "signature",
        ),
        (
            at(&format!("{}.att", tag_of(&app_digest))),
            attestation.manifest.digest.clone(),
            app_digest.clone(),
            "attestation",
        ),
        (
            at(&format!("{}.sbom", tag_of(&app_digest))),
            sbom.manifest.digest.clone(),
            app_digest.clone(),
            "sbom",
        ),
        (
            at(&tag_of(&app_digest)),
            listing.digest.clone(),
            app_digest.clone(),
            "referrers-tag",
        ),
        (
            format!("{}/team/app@{}", registry.addr, referrer.manifest.digest),
            referrer.manifest.digest.clone(),
            app_digest.clone(),
            "referrer",
        ),
        (
            at(&format!("{}.sig", tag_of(&attestation.manifest.digest))),
            attestation_signature.manifest.digest.clone(),
            attestation.manifest.digest.clone(),
            "signature",
        ),
    ];
    let references: Vec<String> = package
        .index()
        .iter()
        .map(|e| {
            e["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        references,
        expected.iter().map(|e| e.0.clone()).collect::<Vec<_>>(),
        "each artifact its own entry, after its image"
    );
    for (reference, digest, subject, relation) in &expected {
        assert_eq!(
            link_of(&package, reference),
            (digest.clone(), subject.clone(), (*relation).to_owned()),
            "{reference}"
        );
    }
    for image in [
        &app,
        &signature,
        &attestation,
        &sbom,
        &attestation_signature,
        &referrer,
    ] {
        assert_carried(&package, image);
    }
    assert_eq!(package.blob(&listing.digest), Some(&listing.bytes));
    // The cosign signature layer is carried uncompressed, as cosign wrote it.
    assert_eq!(
        package.blob(&signature.layers[0].digest).unwrap()[0],
        b'{',
        "the simplesigning payload is plain JSON"
    );
    let built = String::from_utf8(package.files["pkgr.yaml"].clone()).unwrap();
    assert!(built.contains("relation: attestation"), "{built}");

    // inspect names what is signed and links each artifact to its subject.
    let inspect = ws.inspect(&path, &[]);
    assert!(inspect.status.success(), "{}", stderr(&inspect));
    let text = stdout(&inspect);
    assert!(
        text.contains(&format!(
            "  {app_ref}  signature, attestation, sbom, referrers-tag, referrer"
        )),
        "{text}"
    );
    let json = ws.inspect(&path, &["--json"]);
    let summary: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let images = summary["images"].as_array().unwrap();
    assert_eq!(images.len(), expected.len());
    for (image, (reference, _, subject, relation)) in images.iter().zip(&expected) {
        assert_eq!(image["reference"], reference.as_str());
        if subject.is_empty() {
            assert!(image.get("subject").is_none(), "{image}");
        } else {
            assert_eq!(image["subject"], subject.as_str(), "{reference}");
            assert_eq!(image["relation"], *relation, "{reference}");
        }
    }

    // On the far side, every tag resolves to the same digest, the referrer is there by
    // digest, and the referrers fallback still lists it.
    let far = TestRegistry::start();
    let pushed = ws.push(&path, &far.addr, &[]);
    assert!(pushed.status.success(), "{}", stderr(&pushed));
    // Subjects before what describes them: the image, then each artifact in order.
    let log = stderr(&pushed);
    let order: Vec<usize> = expected
        .iter()
        .map(|(reference, ..)| {
            log.find(&format!("pushed {reference} to "))
                .unwrap_or_else(|| panic!("{reference} not pushed: {log}"))
        })
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{log}");
    let far_pusher = Pusher::new(&far.addr);
    for (reference, digest, _, _) in &expected {
        let tag_or_digest = reference
            .rsplit_once('@')
            .map(|(_, d)| d)
            .or_else(|| reference.rsplit_once(':').map(|(_, t)| t))
            .unwrap();
        let bytes = far_pusher.get_manifest("team/app", tag_or_digest);
        assert_eq!(&sha256(&bytes), digest, "{reference} on the far side");
    }
}

#[test]
fn an_image_without_signatures_packages_alone_with_the_flag() {
    let registry = TestRegistry::start();
    let pusher = Pusher::new(&registry.addr);
    let app = pusher.image("bare", "1", true, "amd64", &[layer(&[("a", b"bare")])]);
    let ws = Workspace::new();
    // `withSignatures: true` in pkgr.yaml asks for discovery as the flag does.
    ws.define(
        &Definition::new("signed")
            .with_signatures(true)
            .image(format!("{}/bare:1", registry.addr)),
    );
    let out = ws.create(&[]);
    let package = Package::read(&package_path(&out));
    let index = package.index();
    assert_eq!(index.len(), 1, "{index:?}");
    assert_eq!(index[0]["digest"], app.manifest.digest.as_str());
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
}

#[test]
fn referrers_come_through_the_referrers_api_where_the_registry_has_it() {
    let registry = TestRegistry::start();
    let pusher = Pusher::new(&registry.addr);
    let app = pusher.image("app", "2.0", false, "amd64", &[layer(&[("a", b"api")])]);
    // Pushed by digest only, with no fallback tag: only the API can find it.
    let referrer = pusher.referrer("app", &app.manifest, REPORT, br#"{"report":2}"#);
    let referrer_signature = pusher.cosign_signature("app", &referrer.manifest);
    // A stand-in for a registry with the referrers API (docker-registry 2.8 has none).
    let stand_in = ReferrersStandIn::start(
        &registry.addr,
        vec![("app".into(), referrer.manifest.digest.clone())],
    );
    let ws = Workspace::new();
    ws.define(&Definition::new("signed").image(format!("{}/app:2.0", stand_in.addr)));
    let package = Package::read(&package_path(&ws.create(&["--with-signatures"])));
    let pinned = format!("{}/app@{}", stand_in.addr, referrer.manifest.digest);
    assert_eq!(
        link_of(&package, &pinned),
        (
            referrer.manifest.digest.clone(),
            app.manifest.digest.clone(),
            "referrer".into()
        )
    );
    let signed = format!(
        "{}/app:{}.sig",
        stand_in.addr,
        tag_of(&referrer.manifest.digest)
    );
    assert_eq!(
        link_of(&package, &signed),
        (
            referrer_signature.manifest.digest.clone(),
            referrer.manifest.digest.clone(),
            "signature".into()
        )
    );
    assert_eq!(package.index().len(), 3);
    assert_carried(&package, &referrer);
    assert_carried(&package, &referrer_signature);
    assert!(stand_in
        .asked()
        .contains(&format!("/v2/app/referrers/{}", app.manifest.digest)));
}

#[test]
fn referrers_listed_over_several_pages_all_come() {
    let registry = TestRegistry::start();
    let pusher = Pusher::new(&registry.addr);
    let app = pusher.image("paged", "1", false, "amd64", &[layer(&[("a", b"p")])]);
    let referrers: Vec<Image> = (0..3)
        .map(|i| {
            pusher.referrer(
                "paged",
                &app.manifest,
                REPORT,
                format!("{{\"page\":{i}}}").as_bytes(),
            )
        })
        .collect();
    // A stand-in for a registry whose referrers API answers one referrer per page.
    let stand_in = ReferrersStandIn::start_paged(
        &registry.addr,
        referrers
            .iter()
            .map(|r| ("paged".to_owned(), r.manifest.digest.clone()))
            .collect(),
        1,
    );
    let ws = Workspace::new();
    ws.define(
        &Definition::new("signed")
            .with_signatures(true)
            .image(format!("{}/paged:1", stand_in.addr)),
    );
    let package = Package::read(&package_path(&ws.create(&[])));
    assert_eq!(package.index().len(), 4);
    for referrer in &referrers {
        let pinned = format!("{}/paged@{}", stand_in.addr, referrer.manifest.digest);
        assert_eq!(
            link_of(&package, &pinned),
            (
                referrer.manifest.digest.clone(),
                app.manifest.digest.clone(),
                "referrer".into()
            )
        );
        assert_carried(&package, referrer);
    }
    let pages: Vec<String> = stand_in
        .asked()
        .into_iter()
        .filter(|p| p.contains(&app.manifest.digest))
        .collect();
    assert_eq!(pages.len(), 3, "{pages:?}");
}

#[test]
fn buildx_attestation_of_the_picked_platform_comes_with_a_tag_resolved_through_its_index() {
    let registry = TestRegistry::start();
    let pusher = Pusher::new(&registry.addr);
    let amd = pusher.image("multi", "", false, "amd64", &[layer(&[("a", b"amd")])]);
    let arm = pusher.image("multi", "", false, "arm64", &[layer(&[("a", b"arm")])]);
    let (_, attestations) = pusher.buildx_index(
        "multi",
        "1",
        &[("linux/amd64", &amd), ("linux/arm64", &arm)],
    );
    let ws = Workspace::new();
    ws.define(
        &Definition::new("signed")
            .with_signatures(true)
            .image(format!("{}/multi:1", registry.addr)),
    );
    let package = Package::read(&package_path(&ws.create(&[])));
    let index = package.index();
    assert_eq!(index.len(), 2, "{index:?}");
    assert_eq!(index[0]["digest"], amd.manifest.digest.as_str());
    let pinned = format!(
        "{}/multi@{}",
        registry.addr, attestations[0].manifest.digest
    );
    assert_eq!(
        link_of(&package, &pinned),
        (
            attestations[0].manifest.digest.clone(),
            amd.manifest.digest.clone(),
            "buildx-attestation".into()
        )
    );
    assert_carried(&package, &attestations[0]);
    assert!(package.blob(&attestations[1].manifest.digest).is_none());
}

#[test]
fn allow_index_brings_the_signatures_of_the_index_and_of_every_platform() {
    let registry = TestRegistry::start();
    let pusher = Pusher::new(&registry.addr);
    let amd = pusher.image("idx", "", false, "amd64", &[layer(&[("a", b"amd")])]);
    let arm = pusher.image("idx", "", false, "arm64", &[layer(&[("a", b"arm")])]);
    let index = pusher.index(
        "idx",
        "1",
        false,
        &[("linux/amd64", &amd), ("linux/arm64", &arm)],
    );
    let signatures = [
        pusher.cosign_signature("idx", &index),
        pusher.cosign_signature("idx", &amd.manifest),
        pusher.cosign_signature("idx", &arm.manifest),
    ];
    let ws = Workspace::new();
    let pinned = format!("{}/idx@{}", registry.addr, index.digest);
    ws.define(&Definition::new("signed").image(&pinned));
    let path = package_path(&ws.create(&["--allow-index", "--with-signatures"]));
    let first = sha256_file(&path);
    // Discovery asks concurrently, yet the package is the same byte for byte.
    let again = package_path(&ws.create(&["--allow-index", "--with-signatures"]));
    assert_eq!(sha256_file(&again), first);
    let package = Package::read(&path);
    assert_eq!(package.index().len(), 4);
    for (signature, subject) in signatures
        .iter()
        .zip([&index, &amd.manifest, &arm.manifest])
    {
        let reference = format!("{}/idx:{}.sig", registry.addr, tag_of(&subject.digest));
        assert_eq!(
            link_of(&package, &reference),
            (
                signature.manifest.digest.clone(),
                subject.digest.clone(),
                "signature".into()
            )
        );
        assert_carried(&package, signature);
    }
    // inspect names a platform that no entry has by its digest.
    let text = stdout(&ws.inspect(&path, &[]));
    assert!(
        text.contains(&format!("  {}  signature", amd.manifest.digest)),
        "{text}"
    );
}

#[test]
fn a_registry_error_other_than_404_during_discovery_fails_the_build() {
    let registry = TestRegistry::start();
    let pusher = Pusher::new(&registry.addr);
    let app = pusher.image("app", "1", false, "amd64", &[layer(&[("a", b"x")])]);
    let sig = format!("GET /v2/app/manifests/{}.sig", tag_of(&app.manifest.digest));
    // Answered 500 on every attempt: retried, then an error, never taken as absence.
    for (pattern, what) in [("GET /v2/app/referrers/", "referrers"), (&sig, ".sig")] {
        let rules = (0..8)
            .map(|_| (pattern.to_owned(), Fault::Status(500)))
            .collect();
        let proxy = FaultProxy::start(&registry.addr, rules);
        let ws = Workspace::new();
        ws.define(&Definition::new("signed").image(format!("{}/app:1", proxy.addr)));
        let out = ws.create(&["--with-signatures"]);
        assert_eq!(out.status.code(), Some(1), "{what}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!(
                "error: cannot look for the signatures, attestations and referrers of {}/app:1\n",
                proxy.addr
            )),
            "{what}: {err}"
        );
        assert!(err.contains("code: 500"), "{what}: {err}");
        assert!(err.contains("hint: "), "{what}: {err}");
        assert!(err.contains(what), "{what}: {err}");
        assert!(ws.output_files().is_empty(), "{:?}", ws.output_files());
    }
}

#[test]
fn a_signature_made_here_verifies_on_the_pushed_copy() {
    use base64::Engine;
    use ring::rand::SystemRandom;
    use ring::signature::{
        EcdsaKeyPair, KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_ASN1,
        ECDSA_P256_SHA256_ASN1_SIGNING,
    };

    let registry = TestRegistry::start();
    let pusher = Pusher::new(&registry.addr);
    let app = pusher.image("signed/app", "1", false, "amd64", &[layer(&[("a", b"s")])]);
    // cosign's scheme: ECDSA P-256 over the simplesigning payload, base64 of the ASN.1
    // signature in the layer's annotation.
    let random = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &random).unwrap();
    let key =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &random).unwrap();
    let payload = simple_signing("signed/app", &app.manifest.digest);
    let signature = key.sign(&random, &payload).unwrap();
    let encoded = base64::engine::general_purpose::STANDARD.encode(signature.as_ref());
    pusher.cosign_signature_with("signed/app", &app.manifest, &encoded);

    let ws = Workspace::new();
    ws.define(&Definition::new("signed").image(format!("{}/signed/app:1", registry.addr)));
    let path = package_path(&ws.create(&["--with-signatures"]));
    let far = TestRegistry::start();
    let pushed = ws.push(&path, &far.addr, &[]);
    assert!(pushed.status.success(), "{}", stderr(&pushed));

    // Verified as cosign would, from the far side only: the image's digest there, its
    // signature manifest by cosign's tag, the payload blob and the annotation.
    let far_pusher = Pusher::new(&far.addr);
    let digest = sha256(&far_pusher.get_manifest("signed/app", "1"));
    let manifest: serde_json::Value = serde_json::from_slice(
        &far_pusher.get_manifest("signed/app", &format!("{}.sig", tag_of(&digest))),
    )
    .unwrap();
    let layer = &manifest["layers"][0];
    let payload_digest = layer["digest"].as_str().unwrap();
    let payload = far_pusher.get_blob("signed/app", payload_digest);
    assert_eq!(sha256(&payload), payload_digest);
    let claimed: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(
        claimed["critical"]["image"]["docker-manifest-digest"],
        digest.as_str()
    );
    let signature = base64::engine::general_purpose::STANDARD
        .decode(
            layer["annotations"]["dev.cosignproject.cosign/signature"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, key.public_key().as_ref());
    assert!(public.verify(&payload, &signature).is_ok());
    // The check can fail: one changed byte of the payload does not verify.
    let mut tampered = payload.clone();
    tampered[0] ^= 1;
    assert!(public.verify(&tampered, &signature).is_err());
}

/// A manifest no registry holds, told apart by `n`, as a hostile listing names them.
fn made_up_manifest(n: usize) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(b"{}"), "size": 2},
        "layers": [],
        "annotations": {"n": n.to_string()},
    }))
    .unwrap()
}

fn descriptor_of(bytes: &[u8]) -> serde_json::Value {
    serde_json::json!({
        "mediaType": OCI_MANIFEST,
        "digest": sha256(bytes),
        "size": bytes.len(),
        "artifactType": REPORT,
    })
}

/// Runs `create --with-signatures` (plus `extra`) of `reference` and checks that it is
/// refused within the bounds, naming `subject` in one sentence, with nothing left.
fn assert_refused_in_bounds(reference: &str, subject: &str, extra: &[&str]) {
    let ws = Workspace::new();
    ws.define(&Definition::new("flood").image(reference));
    let mut args = vec!["--with-signatures"];
    args.extend_from_slice(extra);
    let run = measure(&ws.create_command(&args), ws.dir.path());
    let err = stderr(&run.out);
    eprintln!(
        "{reference}: refused in {:?}, peak RSS {} KiB",
        run.elapsed, run.peak_rss_kib
    );
    assert_eq!(run.out.status.code(), Some(1), "{err}");
    assert!(
        run.elapsed < Duration::from_secs(5),
        "took {:?}: {err}",
        run.elapsed
    );
    assert!(
        run.peak_rss_kib < 100 << 10,
        "peak RSS {} KiB: {err}",
        run.peak_rss_kib
    );
    assert!(
        err.contains(&format!(
            "  caused by: {subject} in {reference} has more than 1000 signatures, attestations, SBOMs and referrers, the most one image or artifact may bring\n"
        )),
        "{err}"
    );
    assert!(
        err.contains("hint: ") && err.contains("--max-referrers"),
        "{err}"
    );
    assert!(ws.output_files().is_empty(), "{:?}", ws.output_files());
    let partials: Vec<_> = std::fs::read_dir(ws.path("cache").join("ingest-v1"))
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(partials.is_empty(), "{partials:?}");
}

#[test]
fn a_referrers_listing_of_ten_thousand_is_refused_at_once_naming_its_subject() {
    let registry = TestRegistry::start();
    let pusher = Pusher::new(&registry.addr);
    let app = pusher.image("flood", "1", false, "amd64", &[layer(&[("a", b"f")])]);
    // Ten thousand referrers that no registry holds: none need be asked for.
    let listing = (0..10_000)
        .map(|n| descriptor_of(&made_up_manifest(n)))
        .collect();
    let stand_in = ReferrersStandIn::start_answering(
        &registry.addr,
        Answers {
            listing: Some(listing),
            ..Answers::default()
        },
    );
    let reference = format!("{}/flood:1", stand_in.addr);
    assert_refused_in_bounds(&reference, &app.manifest.digest, &[]);
    let requests = stand_in.requests();
    assert!(
        requests.len() < 20,
        "{} requests: {requests:?}",
        requests.len()
    );
}

#[test]
fn a_signature_index_of_three_thousand_is_refused_before_any_is_fetched() {
    let registry = TestRegistry::start();
    let pusher = Pusher::new(&registry.addr);
    let app = pusher.image("flood", "1", false, "amd64", &[layer(&[("a", b"g")])]);
    // cosign's `.sig` tag holds an index of three thousand manifests, each served.
    let children: Vec<Vec<u8>> = (0..3_000).map(made_up_manifest).collect();
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": children.iter().map(|c| descriptor_of(c)).collect::<Vec<_>>(),
    }))
    .unwrap();
    let mut manifests: HashMap<String, (String, Vec<u8>)> = children
        .iter()
        .map(|c| {
            let path = format!("flood/manifests/{}", sha256(c));
            (path, (OCI_MANIFEST.to_owned(), c.clone()))
        })
        .collect();
    let sig = format!("flood/manifests/{}.sig", tag_of(&app.manifest.digest));
    manifests.insert(sig, (OCI_INDEX.to_owned(), index));
    let stand_in = ReferrersStandIn::start_answering(
        &registry.addr,
        Answers {
            manifests,
            ..Answers::default()
        },
    );
    let reference = format!("{}/flood:1", stand_in.addr);
    assert_refused_in_bounds(&reference, &app.manifest.digest, &[]);
    let fetched = stand_in
        .requests()
        .iter()
        .filter(|p| children.iter().any(|c| p.ends_with(&sha256(c))))
        .count();
    assert_eq!(fetched, 0, "children fetched after the index was refused");
}

#[test]
fn max_referrers_counts_each_manifest_a_subject_brings_once_and_can_be_raised() {
    let registry = TestRegistry::start();
    let pusher = Pusher::new(&registry.addr);
    let app = pusher.image("few", "1", false, "amd64", &[layer(&[("a", b"r")])]);
    let referrers: Vec<Image> = (0..3)
        .map(|i| pusher.referrer("few", &app.manifest, REPORT, format!("{i}").as_bytes()))
        .collect();
    let listed: Vec<(&Image, &str)> = referrers.iter().map(|r| (r, REPORT)).collect();
    pusher.referrers_tag("few", &app.manifest, &listed);
    let ws = Workspace::new();
    let reference = format!("{}/few:1", registry.addr);
    ws.define(&Definition::new("few").image(&reference));
    // The fallback tag's index and the three referrers it lists: four manifests, each
    // counted once though the index lists what is then resolved on its own.
    let refused = ws.create(&["--with-signatures", "--max-referrers", "3"]);
    let err = stderr(&refused);
    assert_eq!(refused.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "  caused by: {} in {reference} has more than 3 signatures",
            app.manifest.digest
        )),
        "{err}"
    );
    let package = Package::read(&package_path(&ws.create(&[
        "--with-signatures",
        "--max-referrers",
        "4",
    ])));
    assert_eq!(package.index().len(), 5);
}
