//! Go clients from the module proxy: `go install module/pkg@vX`, or, for modules whose
//! go.mod has `replace` directives, `go mod download -json` → copy `Dir` → `go build`.
//! Uses the normal GOMODCACHE/GOCACHE; GOTOOLCHAIN=local (never download a toolchain);
//! GOPROXY without `direct` (the proxy only, never a VCS host).

use std::fs;
use std::path::Path;
use std::process::Command;

use super::progress::Task;
use super::{Context, GoBuild, GoPackage, Log, MethodResult, ProvisionError, Recipe, Spec, which};

pub(crate) fn install(
    _cx: &mut Context,
    spec: &Spec,
    dir: &Path,
    log: &mut Log,
    task: &Task<'_>,
) -> Result<MethodResult, ProvisionError> {
    let Recipe::Go {
        module,
        module_version,
        main,
        build,
        cgo,
        tags,
        ldflags,
        sumdb,
        package,
    } = &spec.recipe
    else {
        unreachable!("go::install on a non-go recipe")
    };
    let go = which("go").ok_or_else(|| {
        ProvisionError::failed(
            spec,
            "`go` not found on PATH (Go >= the module's go line is needed)",
        )
    })?;
    let env_out = log.output(
        spec,
        "go env",
        Command::new(&go).args(["env", "GOVERSION", "GOPROXY", "GOMODCACHE", "GOCACHE"]),
    )?;
    let mut env_lines = env_out.lines();
    let go_version = env_lines.next().unwrap_or_default().to_string();
    let user_proxy = env_lines.next().unwrap_or_default().to_string();
    let gomodcache = env_lines.next().unwrap_or_default().to_string();
    let proxy = proxy_without_direct(&user_proxy);
    if proxy == "off" {
        return Err(ProvisionError::failed(
            spec,
            format!(
                "GOPROXY={user_proxy:?} names no module proxy; regcompat fetches Go modules from a proxy only"
            ),
        ));
    }

    let bin = dir.join("bin");
    // GONOSUMDB only for this module, and only when the manifest says the checksum DB
    // (reached through the proxy) has no entry for it; its dependencies are still
    // checked against its go.sum.
    let nosumdb = (!*sumdb).then(|| {
        let user = std::env::var("GONOSUMDB").unwrap_or_default();
        if user.is_empty() {
            module.clone()
        } else {
            format!("{user},{module}")
        }
    });
    let base = |c: &mut Command| {
        c.env("GOTOOLCHAIN", "local")
            .env("GOWORK", "off")
            .env("GOPROXY", &proxy)
            .env("CGO_ENABLED", if *cgo { "1" } else { "0" });
        if let Some(n) = &nosumdb {
            c.env("GONOSUMDB", n);
        }
    };
    let mut build_flags: Vec<String> = vec!["-trimpath".into()];
    if !tags.is_empty() {
        build_flags.push(format!("-tags={}", tags.join(",")));
    }
    if let Some(l) = ldflags {
        build_flags.push(format!("-ldflags={l}"));
    }

    let mut result = MethodResult::default();
    result.details.insert("go_version".into(), go_version);
    result.details.insert("goproxy".into(), proxy.clone());
    if let Some(n) = &nosumdb {
        result.details.insert("gonosumdb".into(), n.clone());
    }
    result
        .details
        .insert("module".into(), format!("{module}@{module_version}"));

    match build {
        GoBuild::Install => {
            task.step(&format!(
                "building ({module}@{module_version}, go install)…"
            ));
            let pkgs: Vec<String> = main
                .iter()
                .map(|p| format!("{}@{module_version}", package_path(module, p)))
                .collect();
            let mut c = Command::new(&go);
            base(&mut c);
            c.env("GOBIN", &bin)
                .arg("install")
                .args(&build_flags)
                .args(&pkgs)
                .current_dir(dir);
            log.run(spec, "go install", &mut c)?;
        }
        GoBuild::ModuleDir => {
            task.step(&format!("downloading {module}@{module_version}…"));
            let mut c = Command::new(&go);
            base(&mut c);
            c.args([
                "mod",
                "download",
                "-json",
                &format!("{module}@{module_version}"),
            ])
            .current_dir(dir);
            let json = log.output(spec, "go mod download", &mut c)?;
            log.note(&json);
            let v: serde_json::Value = serde_json::from_str(&json).map_err(|e| {
                ProvisionError::failed(spec, format!("go mod download -json: bad JSON: {e}"))
            })?;
            if let Some(err) = v.get("Error").and_then(|e| e.as_str()) {
                return Err(ProvisionError::failed(
                    spec,
                    format!("go mod download: {err}"),
                ));
            }
            let mod_dir = v
                .get("Dir")
                .and_then(|d| d.as_str())
                .ok_or_else(|| ProvisionError::failed(spec, "go mod download -json gave no Dir"))?;
            let src = dir.join("src");
            if src.exists() {
                fs::remove_dir_all(&src)
                    .map_err(|e| ProvisionError::io(spec, "clearing src/", e))?;
            }
            copy_tree(Path::new(mod_dir), &src)
                .map_err(|e| ProvisionError::io(spec, format!("copying {mod_dir}"), e))?;
            task.step(&format!(
                "building ({module}@{module_version}, go build in module dir)…"
            ));
            let mut c = Command::new(&go);
            base(&mut c);
            // Module zips drop vendored packages (only vendor/modules.txt stays), so a
            // module that vendors (buildkit v0.12) must not build with the implied
            // -mod=vendor: take deps from the module cache, checked against its go.sum.
            c.arg("build")
                .arg("-mod=readonly")
                .args(&build_flags)
                .arg("-o")
                .arg(format!("{}/", bin.display()))
                .args(main)
                .current_dir(&src);
            let mut r = log.run(spec, "go build", &mut c);
            if r.is_ok() && *package == Some(GoPackage::CnbLifecycle) {
                task.step("packaging the lifecycle tarball (tools/packager)…");
                r = package_cnb_lifecycle(spec, dir, &src, &go, &base, log).map(|tgz| {
                    result
                        .details
                        .insert("lifecycle_tgz".into(), tgz.display().to_string());
                    result.files.push(tgz);
                });
            }
            // The copy is only needed for the build; the module cache keeps the original.
            let _ = fs::remove_dir_all(&src);
            r?;
            result
                .details
                .insert("module_dir".into(), mod_dir.to_string());
        }
    }
    result.details.insert("gomodcache".into(), gomodcache);
    Ok(result)
}

/// The lifecycle's own release packaging (its Makefile's `package-linux-amd64`):
/// `<dir>/lifecycle-v<version>+linux.x86-64.tgz`, for a builder.toml `[lifecycle] uri`.
fn package_cnb_lifecycle(
    spec: &Spec,
    dir: &Path,
    src: &Path,
    go: &Path,
    base: &dyn Fn(&mut Command),
    log: &mut Log,
) -> Result<std::path::PathBuf, ProvisionError> {
    let io = |what: &str| {
        let what = what.to_string();
        move |e| ProvisionError::io(spec, what, e)
    };
    let stage = dir.join("package/lifecycle");
    if stage.exists() {
        fs::remove_dir_all(&stage).map_err(io("clearing package/"))?;
    }
    fs::create_dir_all(&stage).map_err(io("creating package/lifecycle"))?;
    for b in ["lifecycle", "launcher"] {
        fs::copy(dir.join("bin").join(b), stage.join(b)).map_err(io(&format!("staging {b}")))?;
    }
    for phase in [
        "detector", "analyzer", "restorer", "builder", "exporter", "rebaser", "creator", "extender",
    ] {
        std::os::unix::fs::symlink("lifecycle", stage.join(phase))
            .map_err(io(&format!("linking {phase}")))?;
    }
    let tgz = dir.join(format!("lifecycle-v{}+linux.x86-64.tgz", spec.version));
    let mut c = Command::new(go);
    base(&mut c);
    // the packager chdirs, so every path is absolute
    c.args(["run", "-mod=readonly", "./tools/packager", "-inputDir"])
        .arg(&stage)
        .arg("-archivePath")
        .arg(&tgz)
        .arg("-descriptorPath")
        .arg(src.join("lifecycle.toml"))
        .arg("-version")
        .arg(&spec.version)
        .current_dir(src);
    let r = log.run(spec, "lifecycle tools/packager", &mut c);
    let _ = fs::remove_dir_all(dir.join("package"));
    r?;
    match fs::metadata(&tgz) {
        Ok(m) if m.len() > 1024 => Ok(tgz),
        _ => Err(ProvisionError::failed(
            spec,
            format!("tools/packager wrote no usable {}", tgz.display()),
        )),
    }
}

/// `github.com/x/y` + `./cmd/z` → `github.com/x/y/cmd/z`.
pub(crate) fn package_path(module: &str, rel: &str) -> String {
    match rel.trim_start_matches("./").trim_end_matches('/') {
        "" | "." => module.to_string(),
        r => format!("{module}/{r}"),
    }
}

/// Drop `direct` (VCS fetches) from a GOPROXY list; `off` when nothing is left.
pub(crate) fn proxy_without_direct(goproxy: &str) -> String {
    // GOPROXY separators: ',' (fall through on 404/410) and '|' (on any error).
    let mut out = String::new();
    let mut sep = None;
    let mut item = String::new();
    let flush = |item: &mut String, sep: Option<char>, out: &mut String| {
        let it = item.trim();
        if !it.is_empty() && it != "direct" && it != "off" {
            if !out.is_empty() {
                out.push(sep.unwrap_or(','));
            }
            out.push_str(it);
        }
        item.clear();
    };
    for ch in goproxy.chars() {
        if ch == ',' || ch == '|' {
            flush(&mut item, sep, &mut out);
            sep = Some(ch);
        } else {
            item.push(ch);
        }
    }
    flush(&mut item, sep, &mut out);
    if out.is_empty() {
        if goproxy.trim().is_empty() {
            "https://proxy.golang.org".into()
        } else {
            "off".into()
        }
    } else {
        out
    }
}

fn copy_tree(src: &Path, dst: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::create_dir_all(dst)?;
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        let ty = entry.file_type()?;
        let to = dst.join(entry.file_name());
        if ty.is_dir() {
            copy_tree(&entry.path(), &to)?;
        } else if ty.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(entry.path())?, &to)?;
        } else {
            fs::copy(entry.path(), &to)?;
            let mut perm = fs::metadata(&to)?.permissions();
            perm.set_mode(perm.mode() | 0o200);
            fs::set_permissions(&to, perm)?;
        }
    }
    Ok(())
}
