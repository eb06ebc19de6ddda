//! Unit tests: manifest parsing/resolving and the cache stamp. No network, no apt/go/mvn.

use std::collections::BTreeMap;
use std::fs;

use super::*;

const GOOD: &str = r#"
[[client]]
name = "crane"
method = "go"
module = "github.com/google/go-containerregistry"
main = ["./cmd/crane"]
ldflags = "-X main.Version=v{version}"
binaries = ["crane"]
[[client.version]]
version = "0.22.1"

[[client]]
name = "nerdctl"
method = "go"
module = "github.com/containerd/nerdctl/v2"
main = ["./cmd/nerdctl"]
binaries = ["nerdctl"]
requires = ["runc"]
[[client.version]]
version = "2.0.0"
note = "buggy"
[[client.version]]
version = "2.0.3"
note = "fixed"
[[client.version]]
version = "2.0.10"

[[client]]
name = "buildkit"
aliases = ["buildctl", "buildkitd"]
method = "go"
module = "github.com/moby/buildkit"
main = ["./cmd/buildctl", "./cmd/buildkitd"]
build = "module-dir"
binaries = ["buildctl", "buildkitd"]
default = "0.12.5"
[[client.version]]
version = "0.12.5"
[[client.version]]
version = "0.34.2"

[[client]]
name = "runc"
method = "debian"
packages = ["runc"]
binaries = ["runc"]
[[client.version]]
version = "1.1.5"

[[client]]
name = "jib"
method = "maven"
artifact = "com.google.cloud.tools:jib-maven-plugin"
binaries = ["mvn"]
[[client.version]]
version = "3.2.0"
[[client.version]]
version = "3.5.2"
"#;

fn good() -> Manifest {
    Manifest::parse("clients.toml", GOOD).expect("good manifest parses")
}

/// Replace the first `from` in GOOD by `to` and return the parse error.
fn bad(from: &str, to: &str) -> ManifestError {
    assert!(GOOD.contains(from), "{from}");
    let text = GOOD.replacen(from, to, 1);
    Manifest::parse("clients.toml", &text).expect_err("should not parse")
}

fn line_of(needle: &str, text: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn good_manifest_parses_and_sorts_versions() {
    let m = good();
    assert_eq!(m.clients.len(), 5);
    let n = m.client("nerdctl").unwrap();
    let vs: Vec<&str> = n.versions.iter().map(|v| v.version.as_str()).collect();
    assert_eq!(vs, ["2.0.10", "2.0.3", "2.0.0"], "numeric, newest first");
    assert_eq!(n.default_version, "2.0.10");
    assert_eq!(m.client("buildctl").unwrap().name, "buildkit");
    assert_eq!(m.all_specs().len(), 1 + 3 + 2 + 1 + 2);
}

#[test]
fn resolve_default_explicit_latest_alias() {
    let m = good();
    assert_eq!(m.resolve("nerdctl").unwrap().version, "2.0.10");
    let s = m.resolve("nerdctl@2.0.3").unwrap();
    assert_eq!((s.name.as_str(), s.version.as_str()), ("nerdctl", "2.0.3"));
    assert_eq!(s.note.as_deref(), Some("fixed"));
    assert_eq!(m.resolve("nerdctl@v2.0.0").unwrap().version, "2.0.0");
    assert_eq!(
        m.resolve("buildctl").unwrap().version,
        "0.12.5",
        "explicit default"
    );
    assert_eq!(m.resolve("buildkitd@latest").unwrap().version, "0.34.2");
    assert_eq!(m.resolve("jib@latest").unwrap().version, "3.5.2");
    let Recipe::Go {
        module_version,
        ldflags,
        build,
        ..
    } = m.resolve("crane").unwrap().recipe
    else {
        panic!()
    };
    assert_eq!(module_version, "v0.22.1");
    assert_eq!(ldflags.as_deref(), Some("-X main.Version=v0.22.1"));
    assert_eq!(build, GoBuild::Install);
    let Recipe::Maven { coordinates, .. } = m.resolve("jib@3.2.0").unwrap().recipe else {
        panic!()
    };
    assert_eq!(coordinates, "com.google.cloud.tools:jib-maven-plugin:3.2.0");
}

#[test]
fn resolve_all_adds_requires_once() {
    let m = good();
    let specs = m
        .resolve_all(&["nerdctl@2.0.0", "nerdctl@2.0.3", "runc"], true)
        .unwrap();
    let names: Vec<String> = specs.iter().map(|s| s.to_string()).collect();
    assert_eq!(names, ["nerdctl@2.0.0", "nerdctl@2.0.3", "runc@1.1.5"]);
    let specs = m.resolve_all(&["nerdctl"], true).unwrap();
    assert_eq!(specs.len(), 2);
    assert_eq!(m.resolve_all(&["nerdctl"], false).unwrap().len(), 1);
}

#[test]
fn unknown_client_and_version() {
    let m = good();
    match m.resolve("podman").unwrap_err() {
        ResolveError::UnknownClient { name, known } => {
            assert_eq!(name, "podman");
            assert!(known.contains(&"crane".to_string()));
        }
        e => panic!("{e}"),
    }
    let e = m.resolve("nerdctl@2.0.2").unwrap_err();
    assert!(matches!(e, ResolveError::UnknownVersion { .. }), "{e}");
    assert!(
        e.to_string().contains("2.0.3"),
        "lists the pinned ones: {e}"
    );
}

#[test]
fn unknown_field_names_line_and_field() {
    let e = bad(
        "module = \"github.com/moby/buildkit\"",
        "modul = \"github.com/moby/buildkit\"",
    );
    assert_eq!(e.field.as_deref(), Some("modul"));
    assert_eq!(
        e.line,
        line_of("module = \"github.com/moby/buildkit\"", GOOD)
    );
    let shown = e.to_string();
    assert!(
        shown.starts_with(&format!("clients.toml:{}:", e.line)),
        "{shown}"
    );
    assert!(shown.contains("modul"), "{shown}");
}

#[test]
fn wrong_type_names_line_and_field() {
    let e = bad("build = \"module-dir\"", "cgo = \"yes\"");
    assert_eq!(e.field.as_deref(), Some("cgo"), "{e}");
    assert_eq!(e.line, line_of("build = \"module-dir\"", GOOD), "{e}");
}

#[test]
fn bad_values_name_line_and_field() {
    let e = bad("method = \"debian\"", "method = \"snap\"");
    assert_eq!(e.field.as_deref(), Some("method"));
    assert_eq!(e.line, line_of("method = \"debian\"", GOOD));
    assert!(e.message.contains("snap"), "{e}");

    let e = bad("build = \"module-dir\"", "build = \"vendor\"");
    assert_eq!(
        (e.field.as_deref(), e.line),
        (Some("build"), line_of("build = \"module-dir\"", GOOD))
    );

    let e = bad("default = \"0.12.5\"", "default = \"0.99.0\"");
    assert_eq!(e.field.as_deref(), Some("default"));
    assert_eq!(e.line, line_of("default = \"0.12.5\"", GOOD));

    let e = bad("requires = [\"runc\"]", "requires = [\"runx\"]");
    assert_eq!(e.field.as_deref(), Some("requires"));
    assert_eq!(e.line, line_of("requires = [\"runc\"]", GOOD));

    let e = bad("version = \"1.1.5\"", "version = \"v1.1.5\"");
    assert_eq!(e.field.as_deref(), Some("version"));
    assert_eq!(e.line, line_of("version = \"1.1.5\"", GOOD));

    // a go-only field on a debian client
    let e = bad(
        "packages = [\"runc\"]",
        "packages = [\"runc\"]\nmodule = \"x\"",
    );
    assert_eq!(e.field.as_deref(), Some("module"));
    assert_eq!(e.line, line_of("packages = [\"runc\"]", GOOD) + 1);

    let e = bad("name = \"runc\"", "name = \"crane\"");
    assert!(e.message.contains("twice"), "{e}");
}

#[test]
fn missing_field_is_named() {
    let e = bad("method = \"debian\"\n", "");
    assert_eq!(e.field.as_deref(), Some("method"), "{e}");
    assert!(e.line > 0);
}

#[test]
fn syntax_error_has_line() {
    let e = bad("version = \"3.2.0\"", "version = \"3.2.0");
    assert_eq!(e.line, line_of("version = \"3.2.0\"", GOOD), "{e}");
}

#[test]
fn the_project_manifest_parses() {
    let m = Manifest::load(default_manifest_path()).expect("clients.toml");
    for name in [
        "crane",
        "skopeo",
        "docker",
        "containerd",
        "runc",
        "buildkit",
        "nerdctl",
        "pack",
        "jib",
    ] {
        assert!(m.client(name).is_some(), "{name}");
    }
    let specs = m
        .resolve_all(&["nerdctl", "buildctl", "docker.io"], true)
        .unwrap();
    assert!(specs.iter().any(|s| s.name == "runc"));
    assert_eq!(m.resolve("nerdctl").unwrap().version, "2.0.3");
}

#[test]
fn helpers() {
    assert!(debian::version_matches(
        "20.10.24+dfsg1-1+deb12u1+b6",
        "20.10.24"
    ));
    assert!(debian::version_matches("1.6.20~ds1-1+deb12u3", "1.6.20"));
    assert!(debian::version_matches("1:1.9.3+ds1-1", "1.9.3"));
    assert!(!debian::version_matches("1.6.200-1", "1.6.20"));
    assert!(!debian::version_matches("1.6.20.1-1", "1.6.20"));
    assert_eq!(
        go::proxy_without_direct("https://proxy.golang.org,direct"),
        "https://proxy.golang.org"
    );
    assert_eq!(go::proxy_without_direct("a|direct,b"), "a,b");
    assert_eq!(go::proxy_without_direct("direct"), "off");
    assert_eq!(go::proxy_without_direct("off"), "off");
    assert_eq!(go::proxy_without_direct(""), "https://proxy.golang.org");
    assert_eq!(go::package_path("m/x", "./cmd/y"), "m/x/cmd/y");
    assert_eq!(go::package_path("m/x", "."), "m/x");
    assert_eq!(
        maven::jar_path(
            Path::new("/r"),
            "com.google.cloud.tools:jib-maven-plugin:3.2.0"
        )
        .unwrap(),
        Path::new("/r/com/google/cloud/tools/jib-maven-plugin/3.2.0/jib-maven-plugin-3.2.0.jar")
    );
    assert_eq!(
        compare_versions("0.12.5", "0.34.2"),
        std::cmp::Ordering::Less
    );
    assert_eq!(
        compare_versions("v2.0.10", "2.0.9"),
        std::cmp::Ordering::Greater
    );
}

// ---------------------------------------------------------------- stamp / cache

fn fake_install(cache: &Cache, spec: &Spec) -> Stamp {
    let dir = cache.client_dir(spec);
    fs::create_dir_all(dir.join("bin")).unwrap();
    let mut binaries = BTreeMap::new();
    for b in &spec.binaries {
        let p = dir.join("bin").join(b);
        fs::write(&p, b"#!/bin/sh\n").unwrap();
        binaries.insert(
            b.clone(),
            StampBinary {
                path: p.clone(),
                sha256: sha256_file(&p).unwrap(),
            },
        );
    }
    Stamp {
        schema: STAMP_SCHEMA,
        name: spec.name.clone(),
        version: spec.version.clone(),
        method: spec.recipe.method().into(),
        recipe_sha256: recipe_hash(spec),
        recipe: spec.recipe.clone(),
        installed_at: 0,
        install_seconds: 1.0,
        binaries,
        files: vec![],
        details: BTreeMap::new(),
    }
}

#[test]
fn stamp_missing_means_not_installed() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = Cache::new(tmp.path());
    let spec = good().resolve("buildctl@0.34.2").unwrap();
    assert!(cache.installed(&spec).is_none(), "empty cache");
    // binaries present but no stamp (an interrupted install)
    fake_install(&cache, &spec);
    assert!(cache.installed(&spec).is_none(), "no stamp yet");
}

#[test]
fn stamp_and_binaries_present_means_installed() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = Cache::new(tmp.path());
    let spec = good().resolve("buildctl@0.34.2").unwrap();
    let stamp = fake_install(&cache, &spec);
    write_stamp(&cache.client_dir(&spec), &stamp).unwrap();
    let i = cache.installed(&spec).expect("installed");
    assert_eq!(i.version, "0.34.2");
    assert_eq!(
        i.bin_dir,
        tmp.path().join("clients/buildkit/0.34.2/bin"),
        "layout clients/<name>/<version>/bin"
    );
    assert_eq!(i.binary("buildkitd").unwrap(), i.bin_dir.join("buildkitd"));
    assert_eq!(i.binaries.len(), 2);
    // the other version is not
    assert!(
        cache
            .installed(&good().resolve("buildctl@0.12.5").unwrap())
            .is_none()
    );
}

#[test]
fn stamp_with_missing_binary_or_changed_recipe_is_not_installed() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = Cache::new(tmp.path());
    let spec = good().resolve("buildkit@0.34.2").unwrap();
    let stamp = fake_install(&cache, &spec);
    let dir = cache.client_dir(&spec);
    write_stamp(&dir, &stamp).unwrap();
    assert!(cache.installed(&spec).is_some());

    // manifest changed (e.g. other ldflags) → reinstall
    let mut changed = spec.clone();
    if let Recipe::Go { ldflags, .. } = &mut changed.recipe {
        *ldflags = Some("-s -w".into());
    }
    assert!(cache.installed(&changed).is_none());

    // a dangling symlink (Debian package removed) or a deleted binary → not installed
    fs::remove_file(dir.join("bin/buildctl")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/buildctl", dir.join("bin/buildctl")).unwrap();
    assert!(cache.installed(&spec).is_none());

    // a corrupt stamp
    fs::write(dir.join(STAMP_FILE), "{").unwrap();
    assert!(cache.installed(&spec).is_none());
}

#[test]
fn install_is_a_no_op_when_cached() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = Cache::new(tmp.path());
    // a go spec: if this tried to build, it would need `go` and the network
    let spec = good().resolve("crane").unwrap();
    let stamp = fake_install(&cache, &spec);
    write_stamp(&cache.client_dir(&spec), &stamp).unwrap();
    let opts = InstallOptions {
        cache: cache.clone(),
        force: false,
    };
    let r = install_with(std::slice::from_ref(&spec), &Progress::quiet(), &opts);
    let (i, outcome) = r.into_iter().next().unwrap().expect("cached");
    assert_eq!(outcome, Outcome::Cached);
    assert_eq!(i.stamp, stamp);
}

#[test]
fn cache_root_from_env_prefers_regcompat_dir() {
    // only checks the pure part: an explicit root is used as-is
    let c = Cache::new("/x");
    let spec = good().resolve("jib@3.2.0").unwrap();
    assert_eq!(c.client_dir(&spec), Path::new("/x/clients/jib/3.2.0"));
    assert_eq!(c.maven_repo(), Path::new("/x/maven/repository"));
}

#[test]
fn per_version_overrides_and_sumdb() {
    let text = GOOD.replacen(
        "[[client.version]]\nversion = \"0.22.1\"",
        "sumdb = false\n[[client.version]]\nversion = \"0.22.1\"\n[[client.version]]\nversion = \"0.1.0\"\nmain = [\".\"]\nldflags = \"-X old={version}\"",
        1,
    );
    let m = Manifest::parse("clients.toml", &text).unwrap();
    let Recipe::Go {
        main,
        ldflags,
        sumdb,
        ..
    } = m.resolve("crane@0.1.0").unwrap().recipe
    else {
        panic!()
    };
    assert_eq!(
        (main, ldflags.as_deref(), sumdb),
        (vec![".".to_string()], Some("-X old=0.1.0"), false)
    );
    let Recipe::Go { main, .. } = m.resolve("crane@0.22.1").unwrap().recipe else {
        panic!()
    };
    assert_eq!(main, ["./cmd/crane"]);
    // overrides are for go clients only
    let e = bad("version = \"1.1.5\"", "version = \"1.1.5\"\nmain = [\".\"]");
    assert_eq!(e.field.as_deref(), Some("main"));
    assert_eq!(e.line, line_of("version = \"1.1.5\"", GOOD) + 1);
}

#[test]
fn failure_summary_joins_go_continuation_lines() {
    let lines: Vec<String> = [
        "$ go install x@v1",
        "go: x@v1 (in x@v1):",
        "\tThe go.mod file for the module providing named packages contains one or",
        "\tmore exclude directives.",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(
        summary_line(&lines),
        "go: x@v1 (in x@v1): The go.mod file for the module providing named packages contains one or more exclude directives."
    );
    assert_eq!(
        summary_line(&["E: Unable to locate package nope".to_string()]),
        "E: Unable to locate package nope"
    );
    assert_eq!(summary_line(&[]), "");
    let json: Vec<String> = [
        "{",
        "\t\"Path\": \"m\",",
        "\t\"Error\": \"m@v2.0.2: reading https://proxy/m/@v/v2.0.2.info: 403 Forbidden\\n\\tserver response: not available.\"",
        "}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(
        summary_line(&json),
        "m@v2.0.2: reading https://proxy/m/@v/v2.0.2.info: 403 Forbidden server response: not available."
    );
}

#[test]
fn cnb_lifecycle_package_needs_module_dir() {
    let e = bad(
        "ldflags = \"-X main.Version=v{version}\"",
        "package = \"cnb-lifecycle\"",
    );
    assert_eq!(e.field.as_deref(), Some("package"), "{e}");
    assert!(e.message.contains("module-dir"), "{e}");
    let text = GOOD.replacen(
        "build = \"module-dir\"",
        "build = \"module-dir\"\npackage = \"cnb-lifecycle\"",
        1,
    );
    let m = Manifest::parse("clients.toml", &text).unwrap();
    let Recipe::Go { package, .. } = m.resolve("buildkit").unwrap().recipe else {
        panic!()
    };
    assert_eq!(package, Some(GoPackage::CnbLifecycle));
}

#[test]
fn error_display_names_file_line_field() {
    let e = bad(
        "module = \"github.com/moby/buildkit\"",
        "modul = \"github.com/moby/buildkit\"",
    );
    let shown = e.to_string();
    let line = line_of("module = \"github.com/moby/buildkit\"", GOOD);
    assert!(
        shown.starts_with(&format!("clients.toml:{line}:1: field `modul`: ")),
        "{shown}"
    );
}
