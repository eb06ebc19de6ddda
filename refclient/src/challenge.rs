//! `WWW-Authenticate` challenges (RFC 7235 auth-params, as registries send them).

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Lowercased: `bearer`, `basic`.
    pub scheme: String,
    /// Parameter names lowercased; values unquoted.
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    pub fn is_bearer(&self) -> bool {
        self.scheme == "bearer"
    }

    pub fn is_basic(&self) -> bool {
        self.scheme == "basic"
    }
}

/// Parses one challenge: `Bearer realm="https://a/token",service="a",scope="repository:x:pull,push"`.
/// Quoted values may hold commas and `\"` escapes.
pub fn parse(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = match header.find(char::is_whitespace) {
        Some(i) => (&header[..i], &header[i..]),
        None => (header, ""),
    };
    if scheme.is_empty() {
        return None;
    }
    let mut params = BTreeMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' || c.is_whitespace() {
                break;
            }
            name.push(c);
            chars.next();
        }
        if name.is_empty() {
            break;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek() != Some(&'=') {
            // A token68 or a stray word: keep it as a flag.
            params.insert(name.to_ascii_lowercase(), String::new());
            continue;
        }
        chars.next();
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
            value = value.trim().to_owned();
        }
        params.insert(name.to_ascii_lowercase(), value);
    }
    Some(Challenge {
        scheme: scheme.to_ascii_lowercase(),
        params,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_with_commas_in_the_scope() {
        let c = parse(r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:octo/app:pull,push""#).unwrap();
        assert!(c.is_bearer());
        assert_eq!(c.param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c.param("service"), Some("registry.docker.io"));
        assert_eq!(c.param("scope"), Some("repository:octo/app:pull,push"));
    }

    #[test]
    fn basic_and_error_params_and_escapes() {
        let c = parse(r#"Basic realm="https://123.dkr.ecr.us-east-2.amazonaws.com/",service="ecr.amazonaws.com""#).unwrap();
        assert!(c.is_basic());
        assert_eq!(c.param("service"), Some("ecr.amazonaws.com"));
        let c = parse(r#"bearer Realm="a\"b", error=insufficient_scope ,scope="x""#).unwrap();
        assert!(c.is_bearer());
        assert_eq!(c.param("realm"), Some("a\"b"));
        assert_eq!(c.param("error"), Some("insufficient_scope"));
        assert_eq!(c.param("scope"), Some("x"));
        assert_eq!(parse("Basic").unwrap().params.len(), 0);
        assert_eq!(parse("   "), None);
    }
}
