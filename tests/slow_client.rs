//! Slow clients: a raw TCP client that sends its request head byte by byte,
//! slower than `server.client_timeout_secs`, is cut off (408 or a closed
//! connection) before it finishes, while other clients are served; an idle
//! keep-alive connection is closed after `server.keep_alive_secs`.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;

#[test]
fn a_slow_request_head_is_cut_and_others_are_served() {
    let s = Server::start_with("client_timeout_secs = 1", "");
    let addr = s.base.trim_start_matches("http://").to_string();
    let head = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nUser-Agent: slowloris\r\n\r\n";
    let mut slow = TcpStream::connect(&addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut sent = 0;
    let mut answer = Vec::new();
    let mut cut = false;
    // One byte every 250 ms: the whole head would take far longer than the
    // one-second limit. The loop ends when the server cuts us off.
    for &byte in head.iter() {
        if slow.write_all(&[byte]).is_err() {
            cut = true;
            break;
        }
        sent += 1;
        let mut buf = [0u8; 512];
        match slow.read(&mut buf) {
            Ok(0) => {
                cut = true;
                break;
            }
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                cut = true;
                break;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => {
                cut = true;
                break;
            }
        }
        // Meanwhile everyone else is served.
        if sent % 4 == 0 {
            let res = client().get(s.url("/healthz")).send().unwrap();
            assert_eq!(res.status(), 200);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(cut, "the slow client was never cut off");
    assert!(
        sent < head.len(),
        "the whole head got through ({sent} bytes)"
    );
    let text = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || text.starts_with("HTTP/1.1 408"),
        "answer to the slow client: {text:?}"
    );
    let res = client().get(s.url("/healthz")).send().unwrap();
    assert_eq!(res.status(), 200);
}

#[test]
fn an_idle_keep_alive_connection_is_closed() {
    let s = Server::start_with("keep_alive_secs = 1", "");
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut conn = TcpStream::connect(&addr).unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = conn.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
    // Idle now: the server closes the connection (read returns 0 or an
    // error); with keep-alive unlimited the 30 s read timeout would fire
    // instead and fail the test.
    let mut closed = false;
    for _ in 0..10 {
        match conn.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                closed = true;
                break;
            }
            Err(e) => panic!("idle connection not closed: {e}"),
        }
    }
    assert!(closed);
}

/// A client that sends its request head at once and then trickles the
/// body, slower than `server.client_timeout_secs` allows for the whole
/// body, is answered 408 and cut off before the body is complete; nothing
/// of it is stored, and others are served meanwhile. The same holds for
/// the opt-out form and for the admin sweep route once its token is
/// accepted.
#[test]
fn a_slow_request_body_is_cut_with_408() {
    let s = Server::start_with("client_timeout_secs = 1", "");
    let addr = s.base.trim_start_matches("http://").to_string();
    let body = br#"{"site":"demo","url":"https://example.org/slow-body-marker"}"#;
    let routes: [(&str, String); 4] = [
        ("/api/event", String::new()),
        ("/matomo.php", String::new()),
        // the opt-out form, from this collector's own page
        ("/optout", "Origin: http://localhost\r\n".to_string()),
        (
            "/api/v1/sweep?dry_run=true",
            format!("Authorization: Bearer {ADMIN_TOKEN}\r\n"),
        ),
    ];
    for (route, auth) in routes {
        let mut slow = TcpStream::connect(&addr).unwrap();
        write!(
            slow,
            "POST {route} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: {CHROME_UA}\r\n{auth}Content-Length: {}\r\n\r\n",
            body.len()
        )
        .unwrap();
        slow.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let mut sent = 0;
        let mut answer = Vec::new();
        // One byte every 200 ms: the whole body would take far longer than
        // the one-second limit.
        for &byte in body.iter() {
            if slow.write_all(&[byte]).is_err() {
                break;
            }
            sent += 1;
            let mut buf = [0u8; 512];
            match slow.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    break;
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => break,
            }
            if sent % 4 == 0 {
                let res = client().get(s.url("/healthz")).send().unwrap();
                assert_eq!(res.status(), 200);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(sent < body.len(), "{route}: the whole body got through");
        let text = String::from_utf8_lossy(&answer);
        assert!(
            text.starts_with("HTTP/1.1 408"),
            "{route}: answer to the slow body: {text:?}"
        );
    }
    assert_eq!(pageviews(&s, "demo"), 0, "nothing of a cut body is stored");
    assert!(metrics(&s).contains("sparsam_slow_bodies_total 4"));
}
