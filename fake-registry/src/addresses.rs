//! The addresses a fleet may listen on and its mirrors may contact. Loopback always. The
//! documentation ranges of RFC 5737 (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24) only
//! inside a private network namespace with no route out — the harness's per-cell network —
//! where they never reach a real host; outside one, a packet to them would follow the
//! machine's default route, so they are refused there.

use std::net::{IpAddr, Ipv4Addr};

/// The first address a fleet in a private network hands out (198.51.100.1 is the
/// namespace's own interface address). TEST-NET-2 rather than TEST-NET-1, which some
/// machines (this project's CI among them) use for their own interfaces.
pub const PRIVATE_FIRST_ADDRESS: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);

/// Interfaces a private network may have besides `lo`: the ones the harness creates are
/// named with this prefix.
pub const PRIVATE_INTERFACE_PREFIX: &str = "rcnet";

/// Whether `ip` is in one of RFC 5737's documentation ranges (TEST-NET-1/2/3).
pub fn is_documentation(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            matches!((a, b, c), (192, 0, 2) | (198, 51, 100) | (203, 0, 113))
        }
        IpAddr::V6(_) => false,
    }
}

/// Whether a fleet may use `ip`: loopback, or a documentation address when the fleet runs
/// in a private network ([`check_private_network`]).
pub fn permitted(ip: IpAddr, private_network: bool) -> bool {
    ip.is_loopback() || (private_network && is_documentation(ip))
}

/// What [`permitted`] allows, for error messages.
pub fn permitted_text(private_network: bool) -> &'static str {
    if private_network {
        "loopback (127.0.0.0/8, ::1) or RFC 5737 (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24)"
    } else {
        "loopback (127.0.0.0/8 or ::1)"
    }
}

/// Devices the kernel creates, down, in every new namespace while their module is loaded.
const KERNEL_FALLBACK_DEVICES: &[&str] = &[
    "sit0", "tunl0", "ip6tnl0", "gre0", "gretap0", "erspan0", "ip_vti0", "ip6_vti0", "ip6gre0",
];

/// Checks that the calling thread's network namespace is a private one: no interface but
/// `lo` and the harness's own (`rcnet*`), and no default route, IPv4 or IPv6 — the promise
/// behind allowing documentation addresses. The machine's namespace always fails it (its
/// interfaces lead out).
pub fn check_private_network() -> Result<(), String> {
    let read =
        |path: &str| std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"));
    let devices = read("/proc/thread-self/net/dev")?;
    // Two header lines, then `name: counters…`.
    for line in devices.lines().skip(2) {
        let name = line.split(':').next().unwrap_or_default().trim();
        if name != "lo"
            && !name.starts_with(PRIVATE_INTERFACE_PREFIX)
            && !KERNEL_FALLBACK_DEVICES.contains(&name)
        {
            return Err(format!(
                "not a private network: it has the interface {name:?}"
            ));
        }
    }
    let v4 = read("/proc/thread-self/net/route")?;
    // Columns: Iface Destination Gateway Flags RefCnt Use Metric Mask …
    if v4.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.get(1) == Some(&"00000000") && f.get(7) == Some(&"00000000")
    }) {
        return Err("not a private network: it has an IPv4 default route".into());
    }
    // Missing when IPv6 is off: no IPv6 route at all. Columns: destination, prefix length,
    // …, device. The kernel's unreachable default on `lo` leads nowhere.
    let v6 = std::fs::read_to_string("/proc/thread-self/net/ipv6_route").unwrap_or_default();
    if v6.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.first() == Some(&"00000000000000000000000000000000")
            && f.get(1) == Some(&"00")
            && f.last() != Some(&"lo")
    }) {
        return Err("not a private network: it has an IPv6 default route".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documentation_ranges_and_nothing_else() {
        for ok in ["192.0.2.2", "198.51.100.7", "203.0.113.254"] {
            assert!(is_documentation(ok.parse().unwrap()), "{ok}");
        }
        for no in ["192.0.3.1", "10.0.0.1", "127.0.0.1", "8.8.8.8", "::1"] {
            assert!(!is_documentation(no.parse().unwrap()), "{no}");
        }
    }

    #[test]
    fn documentation_addresses_only_in_a_private_network() {
        let doc: IpAddr = "198.51.100.9".parse().unwrap();
        assert!(!permitted(doc, false));
        assert!(permitted(doc, true));
        assert!(permitted("127.0.0.2".parse().unwrap(), false));
        assert!(!permitted("93.184.216.34".parse().unwrap(), true));
    }

    #[test]
    fn the_machines_own_namespace_is_not_private() {
        // Tests run in the machine's network namespace, which has a way out.
        let e = check_private_network().unwrap_err();
        assert!(e.starts_with("not a private network"), "{e}");
    }
}
