//! Connection-level attacks on the real node: slow headers, idle and stalled connections,
//! stalled bodies, and one client holding every connection.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

fn addr(node: &Node) -> SocketAddr {
    node.url.trim_start_matches("http://").parse().unwrap()
}

/// A connection to the node from the loopback source address `from`.
async fn connect_from(node: &Node, from: [u8; 4]) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(SocketAddr::new(IpAddr::from(from), 0))?;
    s.connect(addr(node)).await
}

/// Reads until the peer closes (true) or `within` passes (false).
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// A raw `GET /healthz` from `from`; the status line's code.
async fn healthz_from(node: &Node, from: [u8; 4]) -> Option<u16> {
    let mut s = tokio::time::timeout(Duration::from_secs(5), connect_from(node, from))
        .await
        .ok()?
        .ok()?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&out);
    text.split(' ').nth(1)?.parse().ok()
}

#[tokio::test]
async fn a_header_dribbled_byte_by_byte_is_cut_off_at_the_header_timeout() {
    let node = Node::start(
        NODE_BIN,
        &[("TINYCLOUD_SERVER__HEADER_READ_TIMEOUT_SECS", "2")],
    );
    let mut s = connect_from(&node, [127, 0, 0, 1]).await.unwrap();
    let started = Instant::now();
    let request = b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: aaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let mut closed = false;
    for b in request {
        if s.write_all(&[*b]).await.is_err() {
            closed = true;
            break;
        }
        if closed_within(&mut s, Duration::from_millis(700)).await {
            closed = true;
            break;
        }
    }
    let took = started.elapsed();
    assert!(closed, "the dribbled header was served after {took:?}");
    assert!(
        took < Duration::from_secs(4),
        "closed only after {took:?} (header timeout 2 s)"
    );
}

#[tokio::test]
async fn idle_and_stalled_connections_are_closed() {
    let node = Node::start(
        NODE_BIN,
        &[
            ("TINYCLOUD_SERVER__HEADER_READ_TIMEOUT_SECS", "30"),
            ("TINYCLOUD_SERVER__IDLE_TIMEOUT_SECS", "2"),
        ],
    );
    // A kept-alive connection that goes quiet after one request.
    let mut s = connect_from(&node, [127, 0, 0, 1]).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let started = Instant::now();
    assert!(
        closed_within(&mut s, Duration::from_secs(5)).await,
        "an idle connection stayed open"
    );
    assert!(started.elapsed() >= Duration::from_millis(1500));
    // A connection that sends half a header and then nothing, with a generous header timeout.
    let mut s = connect_from(&node, [127, 0, 0, 1]).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nhost:")
        .await
        .unwrap();
    assert!(
        closed_within(&mut s, Duration::from_secs(5)).await,
        "a silent half-sent request stayed open"
    );
}

#[tokio::test]
async fn a_stalled_request_body_gets_408() {
    let node = Node::start(
        NODE_BIN,
        &[("TINYCLOUD_SERVER__BODY_READ_TIMEOUT_SECS", "2")],
    );
    let o = Owner::sign_in(&node, 41, "default").await;
    let token = invoke_header(
        &o.session,
        &[o.session_cid],
        &o.res("kv/stalled"),
        "tinycloud.kv/put",
    );
    let mut s = connect_from(&node, [127, 0, 0, 1]).await.unwrap();
    let head = format!(
        "POST /invoke HTTP/1.1\r\nhost: x\r\nauthorization: {token}\r\ncontent-length: 1000\r\n\r\npartial"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(8), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 408"), "got: {text:?}");
    assert!(started.elapsed() < Duration::from_secs(6));
    // Nothing was written.
    o.client(&node)
        .call(&o.res("kv/stalled"), "get")
        .await
        .expect(404);
}

#[tokio::test]
async fn one_client_holding_connections_does_not_starve_others() {
    let node = Node::start(
        NODE_BIN,
        &[
            ("TINYCLOUD_SERVER__MAX_CONNECTIONS", "600"),
            ("TINYCLOUD_SERVER__MAX_CONNECTIONS_PER_IP", "256"),
            ("TINYCLOUD_SERVER__HEADER_READ_TIMEOUT_SECS", "60"),
            ("TINYCLOUD_SERVER__IDLE_TIMEOUT_SECS", "60"),
        ],
    );
    // 1,100 half-sent requests from 127.0.0.1, all held open.
    let mut held = Vec::new();
    for _ in 0..1100 {
        if let Ok(mut s) = connect_from(&node, [127, 0, 0, 1]).await {
            let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nhost:").await;
            held.push(s);
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The node closed every connection beyond the per-address cap.
    let mut open = 0;
    for s in &mut held {
        if !closed_within(s, Duration::from_millis(5)).await {
            open += 1;
        }
    }
    assert!(open <= 256, "{open} connections from one address held open");
    // Another client is still served.
    assert_eq!(healthz_from(&node, [127, 0, 0, 2]).await, Some(200));
    assert_eq!(healthz_from(&node, [127, 0, 0, 3]).await, Some(200));
    drop(held);
    // Once they are gone the first address is served again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(healthz_from(&node, [127, 0, 0, 1]).await, Some(200));
}

/// Started with a low inherited soft limit of open files, the node raises it to the hard limit,
/// so its own caps (connections, open databases) bound descriptors, not the inherited default.
#[cfg(target_os = "linux")]
#[test]
fn the_open_files_soft_limit_is_raised_to_the_hard_limit() {
    let limits = |pid: u32| -> (String, String) {
        let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .unwrap()
            .to_owned();
        let mut f = line["Max open files".len()..].split_whitespace();
        (f.next().unwrap().to_owned(), f.next().unwrap().to_owned())
    };
    let (_, hard) = limits(std::process::id());
    if hard.parse::<u64>().is_ok_and(|h| h <= 256) {
        eprintln!("hard limit {hard}: nothing to raise here");
        return;
    }
    let mut node = Launch::new(NODE_BIN)
        .shell_prefix("ulimit -Sn 256")
        .env(&[("RUST_LOG", "info")])
        .capture_stderr()
        .start();
    let (soft, node_hard) = limits(node.child.id());
    let err = node.kill_and_read_stderr();
    assert_eq!(node_hard, hard);
    assert_eq!(soft, hard, "soft limit left at {soft}");
    assert!(
        err.contains("open file descriptor limit") && err.contains(&hard),
        "the limit is logged: {err}"
    );
}
