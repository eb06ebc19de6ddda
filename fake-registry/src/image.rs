//! The fake-registry container image's root filesystem: the binary and exactly the shared
//! objects it links (its `ldd` list: the dynamic loader, libc, libm, libgcc_s), nothing
//! else — imported by a container engine from a tar (`docker import`, `podman import`), so
//! building it pulls no base image. `cargo xtask image` builds and imports it; the
//! `container` module (feature `testcontainers`) runs it.
//!
//! Why not a static musl binary `FROM scratch`: the musl target cannot be installed offline
//! here, and the dynamically linked binary with four libraries is about as small.

use std::path::{Path, PathBuf};

/// The image's repository; its tag is the crate's version.
pub const IMAGE_NAME: &str = "regcompat/fake-registry";

/// The image's tag: `regcompat/fake-registry:<crate version>`.
pub fn image_reference() -> String {
    format!("{IMAGE_NAME}:{}", env!("CARGO_PKG_VERSION"))
}

/// The image's root filesystem as a tar: `binary` as `/fake-registry`, every shared object
/// `ldd` lists for it at its own path, and an empty `/tmp`.
pub fn rootfs_tar(binary: &Path) -> std::io::Result<Vec<u8>> {
    let out = std::process::Command::new("ldd").arg(binary).output()?;
    if !out.status.success() {
        return Err(std::io::Error::other(format!(
            "ldd {}: {}",
            binary.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let libraries = linked_objects(&String::from_utf8_lossy(&out.stdout));
    let mut tar = tar::Builder::new(Vec::new());
    tar.follow_symlinks(true);
    tar.append_path_with_name(binary, "fake-registry")?;
    for lib in &libraries {
        let inside = lib.strip_prefix("/").unwrap_or(lib);
        tar.append_path_with_name(lib, inside)?;
    }
    let mut tmp = tar::Header::new_ustar();
    tmp.set_entry_type(tar::EntryType::Directory);
    tmp.set_mode(0o1777);
    tmp.set_size(0);
    tar.append_data(&mut tmp, "tmp", std::io::empty())?;
    tar.into_inner()
}

/// The absolute paths in `ldd` output: `libc.so.6 => /lib/…/libc.so.6 (0x…)` and the
/// loader's own `/lib64/ld-linux-x86-64.so.2 (0x…)`; the vDSO has none.
fn linked_objects(ldd: &str) -> Vec<PathBuf> {
    ldd.lines()
        .filter_map(|line| {
            let path = match line.split_once("=>") {
                Some((_, right)) => right.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_yields_the_loader_and_the_libraries() {
        let ldd = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                   \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f42)\n\
                   \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f41)\n\
                   \t/lib64/ld-linux-x86-64.so.2 (0x00007f43)\n";
        assert_eq!(
            linked_objects(ldd),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libgcc_s.so.1"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
    }

    #[test]
    fn the_rootfs_holds_the_binary_and_what_it_links() {
        let me = std::env::current_exe().unwrap();
        let tar = rootfs_tar(&me).unwrap();
        let mut names = Vec::new();
        for entry in tar::Archive::new(tar.as_slice()).entries().unwrap() {
            names.push(entry.unwrap().path().unwrap().display().to_string());
        }
        assert_eq!(names[0], "fake-registry");
        assert!(names.iter().any(|n| n.contains("libc.so")), "{names:?}");
        assert!(names.iter().any(|n| n.contains("ld-linux")), "{names:?}");
        assert_eq!(names.last().map(String::as_str), Some("tmp"));
    }
}
