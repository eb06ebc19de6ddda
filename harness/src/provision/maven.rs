//! Maven clients (Jib): resolve the plugin (and a few build plugins a minimal project
//! needs) from Maven Central into regcompat's own local repository, so the harness can
//! later run `mvn -Dmaven.repo.local=<repo> ...` with a fresh HOME. No binary: `bin/mvn`.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::progress::Task;
use super::{
    Context, Log, MethodResult, ProvisionError, Recipe, Spec, sha256_file, symlink, which,
};

/// Pinned so `dependency:get` behaves the same whatever Maven's default binding is.
const DEPENDENCY_PLUGIN: &str = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1:get";

/// `<repo>/<group as dirs>/<artifact>/<version>/<artifact>-<version>.jar`
pub(crate) fn jar_path(repo: &Path, coordinates: &str) -> Option<PathBuf> {
    let mut it = coordinates.split(':');
    let (g, a, v) = (it.next()?, it.next()?, it.next()?);
    let mut p = repo.to_path_buf();
    for part in g.split('.') {
        p.push(part);
    }
    Some(p.join(a).join(v).join(format!("{a}-{v}.jar")))
}

pub(crate) fn install(
    cx: &mut Context,
    spec: &Spec,
    dir: &Path,
    log: &mut Log,
    task: &Task<'_>,
) -> Result<MethodResult, ProvisionError> {
    let Recipe::Maven {
        coordinates,
        extra_artifacts,
    } = &spec.recipe
    else {
        unreachable!("maven::install on a non-maven recipe")
    };
    let mvn = which("mvn").ok_or_else(|| {
        ProvisionError::failed(spec, "`mvn` not found on PATH (apt-get install maven)")
    })?;
    let repo = cx.cache.maven_repo();
    std::fs::create_dir_all(&repo)
        .map_err(|e| ProvisionError::io(spec, format!("creating {}", repo.display()), e))?;

    for artifact in std::iter::once(coordinates).chain(extra_artifacts) {
        task.step(&format!("resolving {artifact} from Maven Central…"));
        let mut c = Command::new(&mvn);
        c.args(["-B", "-ntp"])
            .arg(format!("-Dmaven.repo.local={}", repo.display()))
            .arg(DEPENDENCY_PLUGIN)
            .arg(format!("-Dartifact={artifact}"))
            .arg("-Dtransitive=true")
            .current_dir(dir);
        log.run(spec, &format!("mvn dependency:get {artifact}"), &mut c)?;
    }

    let jar = jar_path(&repo, coordinates)
        .filter(|j| j.is_file())
        .ok_or_else(|| {
            ProvisionError::failed(
                spec,
                format!(
                    "{coordinates} resolved but its jar is not in {}",
                    repo.display()
                ),
            )
        })?;
    symlink(&mvn, &dir.join("bin/mvn"))
        .map_err(|e| ProvisionError::io(spec, "linking bin/mvn", e))?;

    let mut result = MethodResult::default();
    result
        .details
        .insert("coordinates".into(), coordinates.clone());
    result
        .details
        .insert("maven_repo".into(), repo.display().to_string());
    result
        .details
        .insert("mvn".into(), mvn.display().to_string());
    result.details.insert(
        "jar_sha256".into(),
        sha256_file(&jar).map_err(|e| ProvisionError::io(spec, "hashing the plugin jar", e))?,
    );
    let version_line = log
        .output(spec, "mvn -v", Command::new(&mvn).args(["-B", "-v"]))
        .ok()
        .and_then(|v| v.lines().next().map(str::to_string));
    if let Some(first) = version_line {
        // strip ANSI colour codes Maven may print
        let mut parts = first.split('\u{1b}');
        let mut clean = parts.next().unwrap_or_default().to_string();
        for p in parts {
            clean.push_str(p.split_once('m').map_or(p, |(_, r)| r));
        }
        result.details.insert("maven_version".into(), clean);
    }
    result.files.push(jar);
    Ok(result)
}
