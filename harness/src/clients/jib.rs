//! Jib (`jib-maven-plugin`), driven by `mvn` on a generated one-class Maven project:
//! `build-from` = `compile jib:build` with `-Djib.from.image`/`-Djib.to.image` (or
//! `jib:buildTar` without `to`). Jib has no pull command; it fetches an image whole when it
//! builds a tarball on it, so `pull` = `jib:buildTar` FROM the image (as buildctl pulls by
//! building): manifest, config and every layer come from the registry, verified, into the
//! tarball. Jib reads `$DOCKER_CONFIG/config.json` and credential
//! helpers on `PATH` (`docker-credential-ecr-login` for `*.amazonaws.com`), and trusts only
//! the JVM truststore: a copy of the JDK's `cacerts` plus the fleet CA, via `MAVEN_OPTS`.
//!
//! Maven never reaches the network: the plugins come from regcompat's Maven repository (the
//! one `cargo xtask install-clients jib` filled) and every remote repository is mirrored to
//! an unroutable loopback address. `mvn -o` is not used: it puts Jib itself offline ("Cannot
//! build to a container registry in offline mode").

use super::{CellEnv, Driver, Mirror, ResolvedAction};
use crate::scenario::Action;
use crate::scenario::ClientSetup;
use std::path::{Path, PathBuf};

pub struct Jib;

const STORE_PASSWORD: &str = "changeit";

impl Driver for Jib {
    fn name(&self) -> &'static str {
        "jib"
    }

    fn binary(&self) -> &'static str {
        "mvn"
    }

    fn supports(&self, action: Action) -> bool {
        matches!(action, Action::BuildFrom | Action::Pull)
    }

    fn unsupported_setup(&self, setup: &ClientSetup) -> Option<String> {
        // Jib's mirrors are registry authorities: `https://<mirror>/v2/<repository>/…`, no
        // path prefix (GlobalConfig `registryMirrors`, PullBaseImageStep#tryMirrors).
        let with_path = setup
            .mirrors
            .values()
            .flatten()
            .any(|m| m.get_ref().contains('/'));
        with_path.then(|| {
            "the scenario puts a mirror under a path prefix; Jib's registryMirrors name \
             registries (host[:port]) only, tried as https://<mirror>/v2/<repository>/… \
             (https://github.com/GoogleContainerTools/jib/pull/3011)"
                .to_owned()
        })
    }

    fn prepare(&self, cell: &CellEnv, action: &ResolvedAction) -> Result<(), String> {
        let Some(JibBuild { context, .. }) = JibBuild::of(action) else {
            return Ok(());
        };
        let version = plugin_version(cell.bin).ok_or("cannot tell the Jib version")?;
        let repo = maven_repo(cell.bin)?;
        let write = |path: PathBuf, text: &str| -> Result<(), String> {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("{}: {e}", parent.display()))?;
            }
            std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
        };
        let project = project_dir(context);
        write(project.join("pom.xml"), &pom(&version))?;
        write(
            project.join("src/main/java/Main.java"),
            "public class Main {\n    public static void main(String[] args) {\n        \
             System.out.println(\"built by regcompat\");\n    }\n}\n",
        )?;
        write(settings(cell), &settings_xml(&repo))?;
        write(
            global_config_dir(cell).join("config.json"),
            &global_config(cell.mirrors),
        )?;
        // The truststore: a fresh copy of the JDK's cacerts; the fleet CA is added by the
        // action's first command (keytool).
        let truststore = truststore(cell);
        let cacerts = jdk_cacerts().ok_or("no JDK cacerts found (is a JDK installed?)")?;
        std::fs::copy(&cacerts, &truststore)
            .map_err(|e| format!("{} → {}: {e}", cacerts.display(), truststore.display()))?;
        Ok(())
    }

    fn commands(&self, cell: &CellEnv, action: &ResolvedAction) -> Vec<Vec<String>> {
        let Some(JibBuild {
            context,
            base,
            to,
            platforms,
        }) = JibBuild::of(action)
        else {
            return Vec::new();
        };
        let Some(version) = plugin_version(cell.bin) else {
            return Vec::new();
        };
        let truststore = truststore(cell).display().to_string();
        let import_ca = super::cmd(
            "keytool",
            &[
                "-importcert",
                "-noprompt",
                "-alias",
                "regcompat-fleet-ca",
                "-file",
                &cell.ca_file.display().to_string(),
                "-keystore",
                &truststore,
                "-storepass",
                STORE_PASSWORD,
            ],
        );
        let goal = match to {
            Some(_) => "build",
            None => "buildTar",
        };
        let mut args = vec![
            "-B".to_owned(),
            "-e".into(),
            "-ntp".into(),
            "-s".into(),
            settings(cell).display().to_string(),
            "-f".into(),
            project_dir(context).join("pom.xml").display().to_string(),
            "compile".into(),
            format!("com.google.cloud.tools:jib-maven-plugin:{version}:{goal}"),
            format!("-Djib.from.image={base}"),
            "-Djib.console=plain".into(),
            "-Djib.disableUpdateChecks=true".into(),
            format!(
                "-Djib.configDirectory={}",
                global_config_dir(cell).display()
            ),
        ];
        if let Some(to) = to {
            args.push(format!("-Djib.to.image={to}"));
        }
        if !platforms.is_empty() {
            args.push(format!("-Djib.from.platforms={}", platforms.join(",")));
        }
        vec![import_ca, super::cmd(&cell.bin(), &args)]
    }

    fn env(&self, cell: &CellEnv) -> Vec<(String, String)> {
        vec![(
            "MAVEN_OPTS".into(),
            format!(
                "-Djavax.net.ssl.trustStore={} -Djavax.net.ssl.trustStorePassword={STORE_PASSWORD}",
                truststore(cell).display()
            ),
        )]
    }
}

/// What Jib builds: on `base`, pushed to `to` (`jib:build`) or into a tarball
/// (`jib:buildTar`).
struct JibBuild<'a> {
    context: &'a Path,
    base: &'a str,
    to: Option<&'a str>,
    platforms: &'a [String],
}

impl<'a> JibBuild<'a> {
    fn of(action: &'a ResolvedAction) -> Option<Self> {
        match action {
            ResolvedAction::BuildFrom {
                context,
                base,
                to,
                platforms,
            } => Some(Self {
                context,
                base,
                to: to.as_deref(),
                platforms,
            }),
            ResolvedAction::Pull { image, context } => Some(Self {
                context,
                base: image,
                to: None,
                platforms: &[],
            }),
            _ => None,
        }
    }
}

fn truststore(cell: &CellEnv) -> PathBuf {
    cell.sandbox.root.join("truststore")
}

/// Jib's global configuration directory for the cell (`jib.configDirectory`; else Jib
/// would read and write `$XDG_CONFIG_HOME/google-cloud-tools-java/jib`).
fn global_config_dir(cell: &CellEnv) -> PathBuf {
    cell.sandbox.root.join("jib-config")
}

/// Jib's global `config.json`: the cell's mirrors as `registryMirrors` (upstream registry →
/// mirror registries, tried in order before the upstream, without credentials).
fn global_config(mirrors: &[Mirror]) -> String {
    let registry_mirrors: Vec<serde_json::Value> = super::mirrors_by_upstream(mirrors)
        .into_iter()
        .map(|(_, mirrors)| {
            // Jib names Docker Hub `registry-1.docker.io` here (its own normalisation).
            let registry = mirrors.first().map_or("", |m| m.upstream.as_str());
            let mirrors: Vec<&str> = mirrors.iter().map(|m| m.mirror.as_str()).collect();
            serde_json::json!({"registry": registry, "mirrors": mirrors})
        })
        .collect();
    serde_json::json!({"disableUpdateCheck": true, "registryMirrors": registry_mirrors}).to_string()
}

fn settings(cell: &CellEnv) -> PathBuf {
    cell.sandbox.root.join("maven-settings.xml")
}

fn project_dir(context: &Path) -> PathBuf {
    context.join("jib-project")
}

/// The installed Jib's version: its directory, `clients/jib/<version>/bin/mvn`.
fn plugin_version(bin: &Path) -> Option<String> {
    let dir = bin.parent()?.parent()?;
    Some(dir.file_name()?.to_str()?.to_owned())
}

/// The Maven repository the install resolved the plugin into (`installed.json`
/// `details.maven_repo`).
fn maven_repo(bin: &Path) -> Result<PathBuf, String> {
    let stamp = bin
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("installed.json"))
        .ok_or("no version directory")?;
    let text = std::fs::read_to_string(&stamp).map_err(|e| format!("{}: {e}", stamp.display()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", stamp.display()))?;
    json["details"]["maven_repo"]
        .as_str()
        .map(PathBuf::from)
        .ok_or_else(|| format!("{}: no details.maven_repo", stamp.display()))
}

/// The JDK's `cacerts`: beside the real `keytool` (`<jdk>/bin/keytool` →
/// `<jdk>/lib/security/cacerts`), else Debian's shared store.
fn jdk_cacerts() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("keytool"))
        .find(|k| k.is_file())
        .and_then(|k| k.canonicalize().ok())
        .and_then(|k| Some(k.parent()?.parent()?.join("lib/security/cacerts")))
        .into_iter()
        .chain([PathBuf::from("/etc/ssl/certs/java/cacerts")])
        .find(|p| p.is_file())
}

fn pom(jib_version: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>regcompat</groupId>
  <artifactId>jibapp</artifactId>
  <version>1.0</version>
  <properties>
    <maven.compiler.release>17</maven.compiler.release>
    <project.build.sourceEncoding>UTF-8</project.build.sourceEncoding>
  </properties>
  <build>
    <plugins>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-resources-plugin</artifactId>
        <version>3.3.1</version>
      </plugin>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-compiler-plugin</artifactId>
        <version>3.13.0</version>
      </plugin>
      <plugin>
        <groupId>com.google.cloud.tools</groupId>
        <artifactId>jib-maven-plugin</artifactId>
        <version>{jib_version}</version>
      </plugin>
    </plugins>
  </build>
</project>
"#
    )
}

/// Maven settings: regcompat's repository, every remote mirrored to a loopback address
/// where nothing listens (the mirror keeps the id `central`, so artifacts the install
/// fetched from Central stay valid).
fn settings_xml(repo: &Path) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<settings xmlns="http://maven.apache.org/SETTINGS/1.0.0">
  <localRepository>{}</localRepository>
  <interactiveMode>false</interactiveMode>
  <mirrors>
    <mirror>
      <id>central</id>
      <mirrorOf>*</mirrorOf>
      <url>http://127.255.255.254:9/unreachable</url>
    </mirror>
  </mirrors>
</settings>
"#,
        repo.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_become_registry_mirrors_grouped_by_upstream() {
        let m = |upstream: &str, mirror: &str| Mirror {
            upstream: upstream.into(),
            mirror: mirror.into(),
            path: String::new(),
        };
        let json: serde_json::Value = serde_json::from_str(&global_config(&[
            m("registry.gitlab.example.com", "mirror.example.com:5443"),
            m("registry.gitlab.example.com", "backup.example.com"),
        ]))
        .unwrap();
        assert_eq!(
            json["registryMirrors"],
            serde_json::json!([{"registry": "registry.gitlab.example.com",
                "mirrors": ["mirror.example.com:5443", "backup.example.com"]}])
        );
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&global_config(&[])).unwrap()["registryMirrors"],
            serde_json::json!([])
        );
    }

    #[test]
    fn version_comes_from_the_install_directory() {
        let bin = Path::new("/c/clients/jib/3.2.0/bin/mvn");
        assert_eq!(plugin_version(bin).as_deref(), Some("3.2.0"));
    }

    #[test]
    fn maven_repo_comes_from_the_stamp() {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("3.5.2/bin/mvn");
        std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
        assert!(maven_repo(&bin).is_err());
        std::fs::write(
            tmp.path().join("3.5.2/installed.json"),
            r#"{"details":{"maven_repo":"/r/maven/repository"}}"#,
        )
        .unwrap();
        assert_eq!(
            maven_repo(&bin).unwrap(),
            PathBuf::from("/r/maven/repository")
        );
    }
}
