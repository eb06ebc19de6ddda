//! `cargo xtask image`: the fake-registry container image, built offline — the binary
//! (debug info stripped) and the shared objects it links, imported by a container engine
//! from a tar (`<engine> import`), tagged `regcompat/fake-registry:<crate version>`. No base
//! image, so nothing is pulled (fake_registry::image).

use anyhow::{Context, Result, bail};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// The container engine's command line program: `docker` (any engine with `import
    /// --change`: `podman` too).
    #[arg(long, default_value = "docker")]
    engine: String,
    /// An argument the engine takes before its subcommand (`--host=…`, `--root=DIR`);
    /// repeatable.
    #[arg(long = "engine-arg", value_name = "ARG", allow_hyphen_values = true)]
    engine_args: Vec<String>,
    /// Use this fake-registry binary instead of building it.
    #[arg(long, value_name = "PATH")]
    registry_bin: Option<PathBuf>,
    /// Also keep the root filesystem tar here.
    #[arg(long, value_name = "FILE")]
    tar: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let root = crate::run_scenarios::workspace_root();
    let target = crate::conformance::target_dir(&cargo, &root)?;
    let binary = match &args.registry_bin {
        Some(p) => p.clone(),
        None => crate::conformance::build_fake_registry(&cargo, &root, &target)?,
    };
    // The dev profile keeps debug info (tens of MB) an image has no use for.
    let stripped = target.join("image").join("fake-registry");
    std::fs::create_dir_all(stripped.parent().context("image dir")?)?;
    let st = Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&stripped)
        .arg(&binary)
        .status()
        .context("running strip (binutils)")?;
    if !st.success() {
        bail!("strip --strip-debug {} failed ({st})", binary.display());
    }
    let tar = fake_registry::image::rootfs_tar(&stripped)
        .with_context(|| format!("the root filesystem of {}", stripped.display()))?;
    if let Some(path) = &args.tar {
        std::fs::write(path, &tar).with_context(|| format!("writing {}", path.display()))?;
    }
    let reference = fake_registry::image::image_reference();
    let started = Instant::now();
    let mut import = Command::new(&args.engine)
        .args(&args.engine_args)
        .args([
            "import",
            "--change",
            r#"ENTRYPOINT ["/fake-registry"]"#,
            "-",
            &reference,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("running {} import", args.engine))?;
    import
        .stdin
        .take()
        .context("the engine's stdin")?
        .write_all(&tar)
        .context("sending the root filesystem to the engine")?;
    let st = import.wait()?;
    if !st.success() {
        bail!("{} import failed ({st})", args.engine);
    }
    println!(
        "{reference}: imported by {} in {:.1} s; root filesystem {:.1} MB (binary {:.1} MB stripped, {:.1} MB with debug info)",
        args.engine,
        started.elapsed().as_secs_f64(),
        tar.len() as f64 / 1e6,
        std::fs::metadata(&stripped)?.len() as f64 / 1e6,
        std::fs::metadata(&binary)?.len() as f64 / 1e6,
    );
    Ok(())
}
