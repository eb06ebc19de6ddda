//! Debian clients (skopeo, podman, buildah, docker.io, containerd, runc): apt-get install
//! with services blocked, then `bin/<binary>` symlinks to the packaged binaries so every
//! client looks the same to the harness. The harness starts daemons itself.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::progress::Task;
use super::{Context, Log, MethodResult, ProvisionError, Spec, symlink, which};

const POLICY_RC_D: &str = "/usr/sbin/policy-rc.d";
const DAEMONS: &[&str] = &["dockerd", "containerd", "buildkitd", "docker-proxy"];

/// `dpkg-query` status of a package: Some(version) when installed ("ii").
fn dpkg_version(pkg: &str) -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${db:Status-Abbrev}|${Version}", pkg])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8_lossy(&out.stdout);
    let (status, version) = s.split_once('|')?;
    status.starts_with("ii").then(|| version.trim().to_string())
}

/// Does Debian version `deb` (`1:20.10.24+dfsg1-1+b6`) carry upstream version `want`?
pub(crate) fn version_matches(deb: &str, want: &str) -> bool {
    let upstream = deb.split_once(':').map_or(deb, |(_, v)| v);
    upstream.strip_prefix(want).is_some_and(|rest| {
        rest.is_empty() || !rest.starts_with(|c: char| c.is_ascii_digit() || c == '.')
    })
}

pub(crate) fn still_installed(spec: &Spec, packages: &[String]) -> bool {
    packages
        .iter()
        .enumerate()
        .all(|(i, p)| match dpkg_version(p) {
            Some(v) => i > 0 || version_matches(&v, &spec.version),
            None => false,
        })
}

fn is_root() -> bool {
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// pids of the daemons we care about that are running now.
fn running_daemons() -> BTreeSet<(u32, String)> {
    let mut out = BTreeSet::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(comm) = fs::read_to_string(e.path().join("comm")) {
            let comm = comm.trim();
            if DAEMONS.contains(&comm) {
                out.insert((pid, comm.to_string()));
            }
        }
    }
    out
}

fn systemd_running() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// Writes `/usr/sbin/policy-rc.d` (exit 101: "action forbidden") for the duration of an
/// install so postinst scripts cannot start services; removes it again unless one was
/// already there.
struct PolicyRcD {
    created: bool,
}

impl PolicyRcD {
    fn install() -> std::io::Result<PolicyRcD> {
        if Path::new(POLICY_RC_D).exists() {
            return Ok(PolicyRcD { created: false });
        }
        fs::write(
            POLICY_RC_D,
            "#!/bin/sh\n# written by regcompat install-clients: no service starts during apt\nexit 101\n",
        )?;
        fs::set_permissions(POLICY_RC_D, fs::Permissions::from_mode(0o755))?;
        Ok(PolicyRcD { created: true })
    }
}

impl Drop for PolicyRcD {
    fn drop(&mut self) {
        if self.created {
            let _ = fs::remove_file(POLICY_RC_D);
        }
    }
}

pub(crate) fn install(
    cx: &mut Context,
    spec: &Spec,
    packages: &[String],
    dir: &Path,
    log: &mut Log,
    task: &Task<'_>,
) -> Result<MethodResult, ProvisionError> {
    let missing: Vec<&String> = packages
        .iter()
        .filter(|p| dpkg_version(p).is_none())
        .collect();
    let mut result = MethodResult::default();
    if !missing.is_empty() {
        let list = missing
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        if !is_root() {
            return Err(ProvisionError::failed(
                spec,
                format!(
                    "Debian package(s) {list} not installed and we are not root: run \
                     `sudo apt-get install -y --no-install-recommends {list}` (or rerun as root)"
                ),
            ));
        }
        if !cx.apt_updated {
            task.step("apt-get update…");
            log.run(
                spec,
                "apt-get update",
                Command::new("apt-get").args(["update", "-q"]),
            )?;
            cx.apt_updated = true;
        }
        task.step(&format!("apt-get install {list}…"));
        let before = running_daemons();
        {
            let _guard = PolicyRcD::install()
                .map_err(|e| ProvisionError::io(spec, format!("writing {POLICY_RC_D}"), e))?;
            log.run(
                spec,
                "apt-get install",
                Command::new("apt-get")
                    .env("DEBIAN_FRONTEND", "noninteractive")
                    .args(["install", "-y", "-q", "--no-install-recommends"])
                    .args(&missing),
            )?;
        }
        // The postinst also *enables* the units (docker.service, docker.socket,
        // containerd.service): disable them so nothing starts at boot either; `--now`
        // stops them too when systemd is actually running.
        let units = package_units(&missing);
        if !units.is_empty() && which("systemctl").is_some() {
            task.step("disabling system services…");
            let mut c = Command::new("systemctl");
            c.arg("disable");
            if systemd_running() {
                c.arg("--now");
            }
            c.args(&units);
            match log.run(spec, "systemctl disable", &mut c) {
                Ok(()) => {
                    result
                        .details
                        .insert("disabled_units".into(), units.join(" "));
                }
                Err(e) if systemd_running() => return Err(e),
                Err(_) => log.note("(not fatal: systemd is not running here)"),
            }
        }
        let started: Vec<String> = running_daemons()
            .difference(&before)
            .map(|(pid, c)| format!("{c} (pid {pid})"))
            .collect();
        if !started.is_empty() {
            return Err(ProvisionError::failed(
                spec,
                format!(
                    "apt started daemon(s) despite policy-rc.d: {}; stop them, the harness starts its own",
                    started.join(", ")
                ),
            ));
        }
        result.details.insert("apt_installed".into(), list);
    }

    for (i, p) in packages.iter().enumerate() {
        let v = dpkg_version(p).ok_or_else(|| {
            ProvisionError::failed(
                spec,
                format!("package {p} still not installed after apt-get"),
            )
        })?;
        if i == 0 && !version_matches(&v, &spec.version) {
            return Err(ProvisionError::failed(
                spec,
                format!(
                    "Debian has {p} {v}, but clients.toml pins {}; update the pin",
                    spec.version
                ),
            ));
        }
        result.details.insert(format!("deb:{p}"), v);
    }
    result
        .details
        .insert("systemd_running".into(), systemd_running().to_string());

    let files = package_files(packages);
    for b in &spec.binaries {
        let real = find_binary(&files, b).ok_or_else(|| {
            ProvisionError::failed(
                spec,
                format!("no executable `{b}` in package(s) {}", packages.join(" ")),
            )
        })?;
        symlink(&real, &dir.join("bin").join(b))
            .map_err(|e| ProvisionError::io(spec, format!("linking bin/{b}"), e))?;
    }
    Ok(result)
}

fn package_files(packages: &[String]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in packages {
        if let Ok(o) = Command::new("dpkg").args(["-L", p]).output() {
            out.extend(
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .map(|l| PathBuf::from(l.trim())),
            );
        }
    }
    out
}

fn package_units(packages: &[&String]) -> Vec<String> {
    let owned: Vec<String> = packages.iter().map(|s| s.to_string()).collect();
    package_files(&owned)
        .into_iter()
        .filter(|p| {
            let s = p.to_string_lossy();
            (s.starts_with("/lib/systemd/system/") || s.starts_with("/usr/lib/systemd/system/"))
                && (s.ends_with(".service") || s.ends_with(".socket"))
                && !s.contains('@')
        })
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect()
}

/// The packaged executable called `name` in a bin/sbin dir.
fn find_binary(files: &[PathBuf], name: &str) -> Option<PathBuf> {
    files
        .iter()
        .filter(|p| p.file_name().is_some_and(|n| n == name))
        .filter(|p| {
            p.parent()
                .and_then(|d| d.file_name())
                .is_some_and(|d| d == "bin" || d == "sbin")
        })
        .find(|p| fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
        .cloned()
}
