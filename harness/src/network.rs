//! A cell's network. By default every cell gets a **private network namespace**: only `lo`
//! and one interface of its own (`rcnet0`, a dummy device — or a veth pair with both ends
//! inside the namespace where the kernel has no dummy driver) carrying TEST-NET-2
//! (198.51.100.0/24, RFC 5737) addresses, and no route out. The fleet's listeners and its
//! mirrors' upstream connections run on a tokio runtime whose threads live in the namespace;
//! every client and daemon process of the cell enters it before `exec`
//! ([`crate::process::Invocation::netns`]). Nothing is added to the machine's own interfaces.
//!
//! Why not loopback: clients treat loopback specially — oras-go ≥ 2.7 refuses bearer realms
//! in 127.0.0.0/8, dockerd skips certificate checks for any 127.0.0.0/8 registry — so on
//! loopback those paths are never exercised as a user's client runs them.
//!
//! Where namespaces cannot be made (no privilege, no `ip`), or with
//! `REGCOMPAT_NETWORK=loopback`, a cell falls back to loopback addresses, and its report says
//! so ([`CellNetwork::describe`]). `REGCOMPAT_NETWORK=private` makes that fallback an error.

use fake_registry::addresses::{PRIVATE_FIRST_ADDRESS, PRIVATE_INTERFACE_PREFIX};
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The environment variable that chooses the network: `private`, `loopback`, or unset
/// (private, falling back to loopback).
pub const NETWORK_ENV: &str = "REGCOMPAT_NETWORK";

/// The interface carrying the cell's addresses.
const INTERFACE: &str = "rcnet0";
/// The veth peer, when there is no dummy driver.
const PEER: &str = "rcnet1";
/// Addresses configured on the interface: `.1` for the interface, `.2…` for the fleet.
const LAST_HOST_OCTET: u8 = 254;

/// Where a cell's fleet listens and its processes run.
pub enum CellNetwork {
    Private(PrivateNetwork),
    /// Loopback addresses in the machine's namespace, and why.
    Loopback {
        why: String,
    },
}

/// A private network namespace, kept alive by an open handle (it disappears with the last
/// handle and the last process inside — nothing to clean up after a crash).
pub struct PrivateNetwork {
    namespace: Arc<OwnedFd>,
    /// `dummy` or `veth`.
    interface_kind: &'static str,
    runtime: Option<tokio::runtime::Runtime>,
}

impl CellNetwork {
    /// The network a new cell gets, as [`NETWORK_ENV`] says.
    pub fn for_cell() -> Result<Self, String> {
        let wanted = std::env::var(NETWORK_ENV).unwrap_or_default();
        match wanted.as_str() {
            "loopback" => Ok(Self::Loopback {
                why: format!("{NETWORK_ENV}=loopback"),
            }),
            "private" => PrivateNetwork::create()
                .map(Self::Private)
                .map_err(|e| format!("{NETWORK_ENV}=private: {e}")),
            "" => Ok(match PrivateNetwork::create() {
                Ok(net) => Self::Private(net),
                Err(why) => Self::Loopback {
                    why: format!("no private network namespace: {why}"),
                },
            }),
            other => Err(format!(
                "{NETWORK_ENV}={other:?}: expected `private` or `loopback`"
            )),
        }
    }

    /// The namespace client processes enter, if private.
    pub fn namespace(&self) -> Option<Arc<OwnedFd>> {
        match self {
            Self::Private(net) => Some(net.namespace.clone()),
            Self::Loopback { .. } => None,
        }
    }

    /// One line for the report.
    pub fn describe(&self) -> String {
        match self {
            Self::Private(net) => format!(
                "private network namespace: lo + {INTERFACE} ({}) with {}/24, no route out",
                net.interface_kind,
                Ipv4Addr::from(u32::from(PRIVATE_FIRST_ADDRESS) & 0xffff_ff00)
            ),
            Self::Loopback { why } => format!("loopback ({why})"),
        }
    }

    /// The runtime the fleet must run on (its threads are in the namespace), if private.
    pub fn runtime(&self) -> Option<tokio::runtime::Handle> {
        match self {
            Self::Private(net) => net.runtime.as_ref().map(|r| r.handle().clone()),
            Self::Loopback { .. } => None,
        }
    }
}

impl PrivateNetwork {
    /// A new namespace with its interfaces, checked private, and a runtime inside it.
    pub fn create() -> Result<Self, String> {
        let (namespace, interface_kind) = std::thread::Builder::new()
            .name("rc-netns".into())
            .spawn(make_namespace)
            .map_err(|e| format!("cannot start a thread: {e}"))?
            .join()
            .map_err(|_| "the namespace thread panicked".to_owned())??;
        let namespace = Arc::new(namespace);
        let runtime = namespace_runtime(&namespace)?;
        Ok(Self {
            namespace,
            interface_kind,
            runtime: Some(runtime),
        })
    }
}

impl Drop for PrivateNetwork {
    fn drop(&mut self) {
        // Dropped inside the harness's own runtime: a blocking shutdown is not allowed
        // there. The fleet has already shut down; its threads go in the background.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Runs on a thread of its own, which it moves into a new network namespace (only this
/// thread: `unshare(CLONE_NEWNET)` is per thread); `ip` started from it inherits it.
fn make_namespace() -> Result<(OwnedFd, &'static str), String> {
    // SAFETY: unshare(2) with a constant flag; affects only the calling thread.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(format!(
            "unshare(CLONE_NEWNET): {}",
            std::io::Error::last_os_error()
        ));
    }
    let handle = std::fs::File::open("/proc/thread-self/ns/net")
        .map_err(|e| format!("/proc/thread-self/ns/net: {e}"))?;
    let kind = if ip(&["link", "add", INTERFACE, "type", "dummy"], None).is_ok() {
        "dummy"
    } else {
        ip(
            &[
                "link", "add", INTERFACE, "type", "veth", "peer", "name", PEER,
            ],
            None,
        )?;
        ip(&["link", "set", PEER, "up"], None)?;
        "veth"
    };
    let base = u32::from(PRIVATE_FIRST_ADDRESS) & 0xffff_ff00;
    let mut batch = format!("link set lo up\nlink set {INTERFACE} up\n");
    for octet in 1..=LAST_HOST_OCTET {
        let addr = Ipv4Addr::from(base | u32::from(octet));
        batch.push_str(&format!("address add {addr}/24 dev {INTERFACE}\n"));
    }
    ip(&["-batch", "-"], Some(&batch))?;
    debug_assert!(INTERFACE.starts_with(PRIVATE_INTERFACE_PREFIX));
    fake_registry::addresses::check_private_network()?;
    Ok((OwnedFd::from(handle), kind))
}

/// Runs `ip ARGS` (iproute2), with `batch` on its stdin when given (`ip -batch -`).
fn ip(args: &[&str], batch: Option<&str>) -> Result<(), String> {
    let mut child = Command::new("ip")
        .args(args)
        .stdin(if batch.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run ip (iproute2): {e}"))?;
    // The pipe closes when `stdin` drops at the end of this block, before the wait.
    if let (Some(batch), Some(mut stdin)) = (batch, child.stdin.take()) {
        stdin
            .write_all(batch.as_bytes())
            .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A small runtime whose every thread (workers and blocking pool) enters the namespace when
/// it starts, so the sockets the fleet makes — listeners and mirror upstream connections —
/// belong to it. Checked from inside before use.
fn namespace_runtime(namespace: &Arc<OwnedFd>) -> Result<tokio::runtime::Runtime, String> {
    let entered_everywhere = Arc::new(AtomicBool::new(true));
    let (ns, flag) = (namespace.clone(), entered_everywhere.clone());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(2)
        .thread_name("rc-cell-net")
        .enable_all()
        .on_thread_start(move || {
            // SAFETY: setns(2) on an open namespace handle, for the calling thread only.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                flag.store(false, Ordering::SeqCst);
            }
        })
        .build()
        .map_err(|e| format!("cannot build the namespace's runtime: {e}"))?;
    check_inside(runtime.handle().clone())?;
    if !entered_everywhere.load(Ordering::SeqCst) {
        return Err("a runtime thread could not enter the namespace".into());
    }
    Ok(runtime)
}

/// [`fake_registry::addresses::check_private_network`] run on one of the runtime's worker
/// threads; from a plain thread, since the caller may itself be inside a runtime.
fn check_inside(handle: tokio::runtime::Handle) -> Result<(), String> {
    std::thread::spawn(move || {
        handle.block_on(async {
            tokio::spawn(async { fake_registry::addresses::check_private_network() })
                .await
                .map_err(|e| format!("namespace check: {e}"))?
        })
    })
    .join()
    .map_err(|_| "the namespace check panicked".to_owned())?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn private_or_skip() -> Option<PrivateNetwork> {
        match PrivateNetwork::create() {
            Ok(net) => Some(net),
            // Unprivileged test runs cannot make namespaces; the matrix reports loopback.
            Err(e) if !nix_is_root() => {
                eprintln!("skipped: {e}");
                None
            }
            Err(e) => panic!("root but no private network: {e}"),
        }
    }

    fn nix_is_root() -> bool {
        // SAFETY: geteuid(2) has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    #[test]
    fn a_private_network_has_no_way_out_and_listens_on_test_net_2() {
        let Some(net) = private_or_skip() else { return };
        let handle = net.runtime.as_ref().unwrap().handle().clone();
        let result = std::thread::spawn(move || {
            handle.block_on(async {
                tokio::spawn(async {
                    let listener = tokio::net::TcpListener::bind("198.51.100.9:443").await?;
                    let addr = listener.local_addr()?;
                    let accept = tokio::spawn(async move { listener.accept().await.map(|_| ()) });
                    tokio::net::TcpStream::connect(addr).await?;
                    accept.await.expect("accept task")?;
                    // An address outside the namespace's own: no route at all.
                    let out = tokio::net::TcpStream::connect("93.184.216.34:443").await;
                    Ok::<_, std::io::Error>(out.map(|_| ()))
                })
                .await
                .expect("task")
            })
        })
        .join()
        .expect("thread")
        .expect("listen and connect inside the namespace");
        let e = result.expect_err("nothing may leave the namespace");
        assert_eq!(e.raw_os_error(), Some(libc::ENETUNREACH), "{e}");
        // The machine's own namespace cannot bind the address.
        assert!(std::net::TcpListener::bind("198.51.100.9:0").is_err());
    }

    #[test]
    fn a_process_entering_the_namespace_sees_only_its_interfaces() {
        let Some(net) = private_or_skip() else { return };
        let fd = net.namespace.as_raw_fd();
        let mut cmd = Command::new("cat");
        cmd.arg("/proc/self/net/dev");
        // SAFETY: setns(2) between fork and exec on a handle that outlives the spawn.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                if libc::setns(fd, libc::CLONE_NEWNET) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        let out = cmd.output().expect("cat");
        let text = String::from_utf8_lossy(&out.stdout);
        let names: Vec<&str> = text
            .lines()
            .skip(2)
            .map(|l| l.split(':').next().unwrap_or_default().trim())
            .collect();
        assert!(
            names.contains(&"lo") && names.contains(&INTERFACE),
            "{names:?}"
        );
        assert!(!names.contains(&"eth0"), "{names:?}");
    }

    #[test]
    fn the_describe_line_names_the_range() {
        let lo = CellNetwork::Loopback { why: "test".into() };
        assert_eq!(lo.describe(), "loopback (test)");
        assert!(lo.namespace().is_none() && lo.runtime().is_none());
        if let Some(net) = private_or_skip() {
            let d = CellNetwork::Private(net).describe();
            assert!(d.contains("198.51.100.0/24"), "{d}");
        }
    }
}
