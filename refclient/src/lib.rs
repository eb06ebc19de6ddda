//! regcompat's reference registry client: a small, spec-following client whose deliberate
//! misbehaviours ("mutants", [`Mutant`]) are selected with `--mutant`. The mutation test
//! (`harness/tests/mutation.rs`) runs it through the real runner to show that every
//! scenario can fail.
//!
//! ```text
//! regcompat-refclient [--mutant NAME] [--mirror UPSTREAM=MIRROR[/path]]… COMMAND
//!   login REGISTRY USER PASS
//!   pull IMAGE
//!   push OCI_LAYOUT_DIR TO
//!   copy FROM TO
//!   build-from BASE [TO]
//!   builder-create BUILD RUN TO [--no-publish]
//!   app-build BUILDER RUN TO [--no-publish]
//!   mutants                      (lists the mutants)
//! ```
//! Exit 0 on success; otherwise one `error: …` line on stderr and exit 1 (2 for usage).

pub mod challenge;
pub mod credentials;
pub mod image;
pub mod mutant;
pub mod session;

pub use mutant::Mutant;

use credentials::Credential;
use image::{Client, MirrorSpec, Reference};
use session::Session;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Http(String),
    #[error("{0}")]
    Registry(String),
    #[error("verification failed: {0}")]
    Verify(String),
    #[error(transparent)]
    Credential(#[from] credentials::CredentialError),
}

pub type Result<T> = std::result::Result<T, Error>;

const USAGE: &str = "usage: regcompat-refclient [--mutant NAME] [--mirror UPSTREAM=MIRROR[/path]]… \
                     (login REGISTRY USER PASS | pull IMAGE | push LAYOUT TO | copy FROM TO | \
                     build-from BASE [TO] | builder-create BUILD RUN TO [--no-publish] | \
                     app-build BUILDER RUN TO [--no-publish] | mutants)";

/// Runs the client on `args` (without the program name); returns the exit code.
pub fn main_with_args(args: Vec<String>) -> i32 {
    let mut mutant = Mutant::Correct;
    let mut mirrors = Vec::new();
    let mut rest = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--mutant" => match it.next().map(|m| m.parse::<Mutant>()) {
                Some(Ok(m)) => mutant = m,
                Some(Err(e)) => return usage(&e.to_string()),
                None => return usage("--mutant needs a name"),
            },
            "--mirror" => match it.next().map(|m| MirrorSpec::parse(&m)) {
                Some(Ok(m)) => mirrors.push(m),
                Some(Err(e)) => return usage(&e.to_string()),
                None => return usage("--mirror needs UPSTREAM=MIRROR"),
            },
            _ => rest.push(a),
        }
    }
    let result = run(mutant, mirrors, &rest);
    match result {
        Ok(()) => 0,
        Err(Error::Usage(m)) => usage(&m),
        Err(e) => {
            eprintln!("error: {}", one_line(&e.to_string()));
            if mutant == Mutant::ExitZero { 0 } else { 1 }
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn usage(why: &str) -> i32 {
    eprintln!("error: {why}\n{USAGE}");
    2
}

fn run(mutant: Mutant, mirrors: Vec<MirrorSpec>, args: &[String]) -> Result<()> {
    let arg = |i: usize, name: &str| {
        args.get(i)
            .map(String::as_str)
            .ok_or_else(|| Error::Usage(format!("missing {name}")))
    };
    let command = arg(0, "a command")?;
    if command == "mutants" {
        for m in Mutant::all() {
            println!("{m}\t{}", m.describe());
        }
        return Ok(());
    }
    let mut client = Client {
        session: Session::new(mutant)?,
        mirrors,
    };
    match command {
        "login" => {
            let (registry, user, password) =
                (arg(1, "REGISTRY")?, arg(2, "USER")?, arg(3, "PASS")?);
            let credential = (mutant != Mutant::Anonymous).then(|| Credential::Basic {
                username: user.to_owned(),
                password: password.to_owned(),
            });
            client.session.check_login(registry, credential)?;
            client
                .session
                .keychain
                .store_login(registry, user, password)?;
            println!("Login Succeeded");
            Ok(())
        }
        "pull" => {
            let r = Reference::parse(arg(1, "IMAGE")?)?;
            let image = client.pull(&r)?;
            println!("{}", image.manifest.digest);
            Ok(())
        }
        "push" => {
            let image = image::read_layout(Path::new(arg(1, "OCI_LAYOUT_DIR")?))?;
            let to = Reference::parse(arg(2, "TO")?)?;
            println!("{}", client.push(&to, &image)?);
            Ok(())
        }
        "copy" => {
            let from = Reference::parse(arg(1, "FROM")?)?;
            let to = Reference::parse(arg(2, "TO")?)?;
            let image = client.pull(&from)?;
            println!("{}", client.push(&to, &image)?);
            Ok(())
        }
        "build-from" => {
            let base = Reference::parse(arg(1, "BASE")?)?;
            let image = client.pull(&base)?;
            let built = image::add_layer(
                &image,
                "regcompat.txt",
                b"built by regcompat\n",
                "regcompat-refclient build-from",
            )?;
            match args.get(2) {
                Some(to) => println!("{}", client.push(&Reference::parse(to)?, &built)?),
                None => println!("{}", built.manifest.digest),
            }
            Ok(())
        }
        "builder-create" => {
            let build = Reference::parse(arg(1, "BUILD")?)?;
            let run = Reference::parse(arg(2, "RUN")?)?;
            let to = Reference::parse(arg(3, "TO")?)?;
            let publish = args.get(4).map(String::as_str) != Some("--no-publish");
            let build_image = client.pull(&build)?;
            let run_image = client.pull(&run)?;
            let toml = format!(
                "[stack]\nrun-image = \"{}/{}\"\n# run image {}\n",
                run.registry, run.name, run_image.manifest.digest
            );
            let builder = image::add_layer(
                &build_image,
                "cnb/builder.toml",
                toml.as_bytes(),
                "regcompat-refclient builder-create",
            )?;
            if publish {
                println!("{}", client.push(&to, &builder)?);
            } else {
                println!("{}", builder.manifest.digest);
            }
            Ok(())
        }
        // What a buildpacks lifecycle does for `pack build --publish`: read the builder,
        // fetch its run image, export the app as a layer on it to TO.
        "app-build" => {
            let builder = Reference::parse(arg(1, "BUILDER")?)?;
            let run = Reference::parse(arg(2, "RUN")?)?;
            let to = Reference::parse(arg(3, "TO")?)?;
            let publish = args.get(4).map(String::as_str) != Some("--no-publish");
            client.pull(&builder)?;
            let run_image = client.pull(&run)?;
            let app = image::add_layer(
                &run_image,
                "workspace/hello.txt",
                b"built by regcompat\n",
                "regcompat-refclient app-build",
            )?;
            if publish {
                println!("{}", client.push(&to, &app)?);
            } else {
                println!("{}", app.manifest.digest);
            }
            Ok(())
        }
        other => Err(Error::Usage(format!("unknown command {other:?}"))),
    }
}
