//! Repository-name and tag grammars of the distribution spec.

use crate::error::{ErrorCode, RegistryError};

/// CNCF distribution's limit on a whole repository name; the spec recommends clients keep
/// `<host>/<name>` under 255 characters, so a longer name is certainly a client bug.
pub const MAX_NAME_LEN: usize = 255;

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`
pub fn validate_repository(name: &str) -> Result<(), RegistryError> {
    let invalid = |why: &str| {
        RegistryError::new(ErrorCode::NameInvalid)
            .detail(format!("repository name {name:?}: {why}"))
    };
    if name.is_empty() {
        return Err(invalid("empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(invalid(&format!(
            "longer than {MAX_NAME_LEN} characters ({})",
            name.len()
        )));
    }
    for component in name.split('/') {
        if !valid_component(component) {
            return Err(invalid(&format!(
                "component {component:?} must match [a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)* (lowercase letters, digits, and single separators between them)"
            )));
        }
    }
    Ok(())
}

fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // a separator run: ".", "_", "__" or "-+", always followed by an alnum
        let start = i;
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == start || i >= b.len() || !alnum(b[i]) {
            return false;
        }
    }
    true
}

/// `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`
pub fn is_valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|&x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_grammar() {
        for ok in [
            "a",
            "library/alpine",
            "a.b/c_d/e__f/g-h/i---j",
            "0/1",
            "group/sub/project/image",
        ] {
            assert!(validate_repository(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "A", "Foo/bar", "a//b", "/a", "a/", "a..b", "a___b", "a-", "-a", "a/../b", "..",
            "a b", "a.-b", "a_-b",
        ] {
            assert!(validate_repository(bad).is_err(), "{bad:?}");
        }
        assert!(validate_repository(&"a".repeat(256)).is_err());
        assert!(validate_repository(&"a".repeat(255)).is_ok());
    }

    #[test]
    fn tag_grammar() {
        for ok in ["latest", "v1.0.0", "_x", "A-b_c.d", &"t".repeat(128)] {
            assert!(is_valid_tag(ok), "{ok}");
        }
        for bad in ["", ".x", "-x", "a:b", "a/b", &"t".repeat(129)] {
            assert!(!is_valid_tag(bad), "{bad:?}");
        }
    }
}
