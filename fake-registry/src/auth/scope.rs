//! Token scopes (`repository:group/app:pull,push`), as the distribution token spec defines
//! them, and the `access` entries of a token.

use serde::{Deserialize, Serialize};
use std::fmt;

/// One requested or granted resource scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    /// `repository`, `registry`, or another type (`artifact-repository` for ACR's Helm).
    #[serde(rename = "type")]
    pub kind: String,
    /// The resource: a repository name, or `catalog` for `registry:catalog:*`.
    pub name: String,
    /// `pull`, `push`, `delete`, `*`…
    pub actions: Vec<String>,
}

impl Scope {
    pub fn repository(name: &str, actions: &[&str]) -> Self {
        Self {
            kind: "repository".into(),
            name: name.into(),
            actions: actions.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    /// Parses `type[(class)]:name:actions`. The name may itself contain `:` (a host with a
    /// port), so the type ends at the first colon and the actions start after the last.
    pub fn parse(text: &str) -> Option<Self> {
        let (kind, rest) = text.split_once(':')?;
        let (name, actions) = rest.rsplit_once(':')?;
        // `repository(plugin)`: the class is informational.
        let kind = kind.split('(').next().unwrap_or(kind);
        if kind.is_empty() || name.is_empty() {
            return None;
        }
        let actions: Vec<String> = actions
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect();
        Some(Self {
            kind: kind.to_owned(),
            name: name.to_owned(),
            actions,
        })
    }

    /// Every scope in a list of `scope` query/form values: each value may hold several,
    /// space-separated (docker sends one parameter per scope; GitLab also splits on spaces).
    pub fn parse_all<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<Scope> {
        values
            .into_iter()
            .flat_map(|v| v.split(' '))
            .filter(|s| !s.is_empty())
            .filter_map(Scope::parse)
            .collect()
    }

    /// The actions of this scope that `granted` allows (`*` grants everything).
    pub fn intersect(&self, granted: &[String]) -> Vec<String> {
        if granted.iter().any(|g| g == "*") {
            return self.actions.clone();
        }
        self.actions
            .iter()
            .filter(|a| granted.contains(a))
            .cloned()
            .collect()
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.kind, self.name, self.actions.join(","))
    }
}

/// What a registry request needs: the scope a token must carry for it.
pub fn required_scope(method: &http::Method, route: &crate::api::route::Route) -> Option<Scope> {
    use crate::api::route::Route;
    use http::Method;
    let write = !matches!(*method, Method::GET | Method::HEAD);
    let (name, actions): (&str, &[&str]) = match route {
        Route::Base => return None,
        Route::Catalog => {
            return Some(Scope {
                kind: "registry".into(),
                name: "catalog".into(),
                actions: vec!["*".into()],
            });
        }
        Route::Tags { name } | Route::Referrers { name, .. } => (name, &["pull"]),
        Route::Manifest { name, .. } | Route::Blob { name, .. } => match *method {
            Method::DELETE => (name, &["delete"]),
            _ if write => (name, &["pull", "push"]),
            _ => (name, &["pull"]),
        },
        Route::UploadStart { name } | Route::Upload { name, .. } => (name, &["pull", "push"]),
    };
    Some(Scope::repository(name, actions))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("repository:group/app:pull", "repository", "group/app", &["pull"])]
    #[case("repository:group/app:pull,push", "repository", "group/app", &["pull", "push"])]
    #[case("registry:catalog:*", "registry", "catalog", &["*"])]
    #[case("repository(plugin):x:pull", "repository", "x", &["pull"])]
    #[case("repository:localhost:5000/app:pull", "repository", "localhost:5000/app", &["pull"])]
    #[case("repository:app:", "repository", "app", &[])]
    fn parses(
        #[case] text: &str,
        #[case] kind: &str,
        #[case] name: &str,
        #[case] actions: &[&str],
    ) {
        let s = Scope::parse(text).expect("parses");
        assert_eq!((s.kind.as_str(), s.name.as_str()), (kind, name));
        assert_eq!(s.actions, actions);
    }

    #[rstest]
    #[case("")]
    #[case("repository")]
    #[case("repository:app")]
    #[case(":app:pull")]
    fn rejects(#[case] text: &str) {
        assert!(Scope::parse(text).is_none(), "{text:?}");
    }

    #[test]
    fn repeated_and_space_separated_scopes() {
        let all = Scope::parse_all(["repository:a:pull repository:b:push", "repository:c:pull"]);
        let names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
    }

    #[test]
    fn intersection_honours_wildcards() {
        let s = Scope::repository("a", &["pull", "push"]);
        assert_eq!(s.intersect(&["pull".into()]), ["pull"]);
        assert_eq!(s.intersect(&["*".into()]), ["pull", "push"]);
        assert!(s.intersect(&["delete".into()]).is_empty());
    }
}
