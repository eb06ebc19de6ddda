//! `--storage DIR` survives a `kill -9` in the middle of a push: everything the registry
//! acknowledged (201 for blobs and manifests, 202 for chunks) is there after a restart.

use fake_registry::digest::Digest;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &std::path::Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fake-registry"))
        .args(["serve", "--listen", "127.0.0.1:0", "--storage"])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn fake-registry");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("ready line");
    let ready: serde_json::Value = serde_json::from_str(&line).expect("ready JSON");
    let url = ready["ready"]["url"].as_str().expect("url").to_owned();
    Server { child, url }
}

fn blob(i: usize) -> Vec<u8> {
    (0..20_000).map(|j| ((i * 31 + j) % 253) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_push_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = start(dir.path());
    let c = reqwest::Client::new();
    let base = server.url.clone();

    // An acknowledged chunk of an upload that is still open at the kill.
    let r = c
        .post(format!("{base}/v2/crash/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let session = r.headers()["location"].to_str().unwrap().to_owned();
    let r = c
        .patch(format!("{base}{session}"))
        .header("Content-Range", "0-9999")
        .body(vec![7u8; 10_000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);

    // A pusher records every blob the registry acknowledged; the kill lands mid-stream.
    let acknowledged: Arc<Mutex<Vec<Digest>>> = Arc::default();
    let pusher = {
        let (c, base, acknowledged) = (c.clone(), base.clone(), acknowledged.clone());
        tokio::spawn(async move {
            for i in 0..200 {
                let data = blob(i);
                let d = Digest::sha256(&data);
                match c
                    .post(format!("{base}/v2/crash/blobs/uploads/?digest={d}"))
                    .body(data)
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 201 => acknowledged.lock().unwrap().push(d),
                    _ => break,
                }
            }
        })
    };
    // Wait until some pushes landed, then kill -9.
    for _ in 0..200 {
        if acknowledged.lock().unwrap().len() >= 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.child.kill().expect("SIGKILL");
    server.child.wait().expect("reaped");
    let _ = tokio::time::timeout(Duration::from_secs(10), pusher).await;
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() >= 10,
        "the pusher made progress before the kill"
    );

    let server = start(dir.path());
    let base = server.url.clone();
    for d in &acknowledged {
        let r = c
            .get(format!("{base}/v2/crash/blobs/{d}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "acknowledged blob {d} lost");
        assert_eq!(&Digest::sha256(&r.bytes().await.unwrap()), d);
    }
    let r = c.get(format!("{base}{session}")).send().await.unwrap();
    assert_eq!(r.status(), 204, "acknowledged upload session lost");
    assert_eq!(r.headers()["range"], "0-9999");
}

#[tokio::test]
async fn restart_keeps_manifests_and_tags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = fake_registry::fixtures::generate(&fake_registry::fixtures::ImageSpec::single(
        fake_registry::fixtures::Format::Oci,
        &[1000],
    ))
    .unwrap();
    {
        let reg = fake_registry::FakeRegistry::builder()
            .storage_dir(dir.path())
            .seed("keep/me", "v1", image.clone())
            .start()
            .await
            .unwrap();
        reg.shutdown().await;
    }
    let server = start(dir.path());
    let r = reqwest::get(format!("{}/v2/keep/me/manifests/v1", server.url))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["docker-content-digest"],
        image.digest().to_string().as_str()
    );
    let cat: serde_json::Value = reqwest::get(format!("{}/v2/_catalog", server.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cat["repositories"], serde_json::json!(["keep/me"]));
}
