//! regcompat's own reference client (`regcompat-refclient`, the `refclient` crate): every
//! action, mirrors from the cell, and one deliberate misbehaviour (`--mutant`) at a time.
//! It exists for the mutation test (`harness/tests/mutation.rs`): each scenario must fail
//! for some mutant and pass for `correct`.

use super::{CellEnv, Driver, ResolvedAction, cmd};
use crate::scenario::Action;

pub struct RefClient {
    /// The `--mutant` name (`correct` by default).
    pub mutant: String,
}

impl RefClient {
    pub fn new(mutant: &str) -> Self {
        Self {
            mutant: mutant.to_owned(),
        }
    }
}

impl Default for RefClient {
    fn default() -> Self {
        Self::new("correct")
    }
}

impl Driver for RefClient {
    fn name(&self) -> &'static str {
        "refclient"
    }

    fn binary(&self) -> &'static str {
        "regcompat-refclient"
    }

    fn supports(&self, _action: Action) -> bool {
        true
    }

    fn commands(&self, cell: &CellEnv, action: &ResolvedAction) -> Vec<Vec<String>> {
        let mut args = vec!["--mutant".to_owned(), self.mutant.clone()];
        for m in cell.mirrors {
            args.push("--mirror".into());
            let path = if m.path.is_empty() {
                String::new()
            } else {
                format!("/{}", m.path)
            };
            args.push(format!("{}={}{path}", m.upstream, m.mirror));
        }
        let s = |x: &str| x.to_owned();
        match action {
            ResolvedAction::Login {
                registry,
                username,
                password,
            } => args.extend([
                s("login"),
                registry.clone(),
                username.clone(),
                password.clone(),
            ]),
            ResolvedAction::Pull { image, .. } => args.extend([s("pull"), image.clone()]),
            ResolvedAction::Push { layout, to, .. } => {
                args.extend([s("push"), layout.display().to_string(), to.clone()])
            }
            ResolvedAction::Copy { from, to } => args.extend([s("copy"), from.clone(), to.clone()]),
            ResolvedAction::BuildFrom { base, to, .. } => {
                args.extend([s("build-from"), base.clone()]);
                args.extend(to.clone());
            }
            ResolvedAction::BuilderCreate {
                build_image,
                run_image,
                to,
                publish,
                ..
            } => {
                args.extend([
                    s("builder-create"),
                    build_image.clone(),
                    run_image.clone(),
                    to.clone(),
                ]);
                if !publish {
                    args.push(s("--no-publish"));
                }
            }
            ResolvedAction::AppBuild {
                builder,
                run_image,
                to,
                publish,
                ..
            } => {
                args.extend([
                    s("app-build"),
                    builder.clone(),
                    run_image.clone(),
                    to.clone(),
                ]);
                if !publish {
                    args.push(s("--no-publish"));
                }
            }
        }
        vec![cmd(&cell.bin(), &args)]
    }
}
