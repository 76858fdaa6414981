//! 503 Slow Down over a real HTTP path: a small proxy in front of the moto server answers the
//! first n requests with S3's 503 and forwards the rest. object_store retries server errors
//! with backoff, so a save through 503s answered a few times then passed succeeds; a service
//! that answers 503 forever makes the save fail, after the attempts `AWS_MAX_ATTEMPTS` allows,
//! with an error naming the object and the status. Without the server the tests SKIP with the
//! reason, except under `CI=true`, where they fail.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{bits, f64_meta, load, sample};
use ndstore_conformance::python::{S3_BUCKET, S3Server, s3_server_or_skip};
use ndstore_core::SaveOptions;
use ndstore_zarr::{ObjectTarget, save_object};

/// S3's answer to a client that should slow down.
const SLOW_DOWN: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";

/// A proxy on 127.0.0.1 that answers 503 while `left` is above zero (counting it down), and
/// otherwise forwards each request to `upstream`, one request per connection.
struct Proxy {
    port: u16,
    left: Arc<AtomicUsize>,
    answered: Arc<AtomicUsize>,
}

/// The request on `client`: its head (up to the blank line) and its body (by Content-Length).
fn read_request(client: &mut TcpStream) -> Option<Vec<u8>> {
    let mut request = Vec::new();
    let mut byte = [0u8; 1];
    while !request.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte).ok()? == 0 {
            return None;
        }
        request.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&request).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    client.read_exact(&mut body).ok()?;
    request.extend_from_slice(&body);
    Some(request)
}

fn serve(mut client: TcpStream, upstream: u16, left: &AtomicUsize, answered: &AtomicUsize) {
    let Some(request) = read_request(&mut client) else {
        return;
    };
    if left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        answered.fetch_add(1, Ordering::SeqCst);
        let response = format!(
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{SLOW_DOWN}",
            SLOW_DOWN.len()
        );
        let _ = client.write_all(response.as_bytes());
        return;
    }
    // One request per upstream connection, which the upstream closes after its answer.
    let Some(split) = request.windows(4).position(|w| w == b"\r\n\r\n") else {
        return;
    };
    let mut forwarded = request[..split].to_vec();
    forwarded.extend_from_slice(b"\r\nConnection: close");
    forwarded.extend_from_slice(&request[split..]);
    let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    if up.write_all(&forwarded).is_ok() {
        let _ = std::io::copy(&mut up, &mut client);
    }
}

impl Proxy {
    fn start(server: &S3Server, unavailable: usize) -> Proxy {
        let upstream: u16 = server
            .endpoint()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let left = Arc::new(AtomicUsize::new(unavailable));
        let answered = Arc::new(AtomicUsize::new(0));
        let (l, a) = (left.clone(), answered.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                let (l, a) = (l.clone(), a.clone());
                std::thread::spawn(move || serve(client, upstream, &l, &a));
            }
        });
        Proxy {
            port,
            left,
            answered,
        }
    }

    /// The array at `prefix` in the bucket, reached through this proxy, with `attempts`
    /// attempts per request.
    fn target(&self, prefix: &str, attempts: &str) -> ObjectTarget {
        let endpoint = format!("http://127.0.0.1:{}", self.port);
        let settings = ndstore_conformance::python::s3_settings(&endpoint);
        let mut settings: Vec<(&str, &str)> =
            settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
        settings.push(("AWS_MAX_ATTEMPTS", attempts));
        ObjectTarget::from_url_with(&format!("s3://{S3_BUCKET}/{prefix}"), &settings).unwrap()
    }
}

#[test]
fn a_save_through_503s_answered_three_times_succeeds() {
    let Some(server) = s3_server_or_skip("the 503 retry test") else {
        return;
    };
    let proxy = Proxy::start(&server, 3);
    let target = proxy.target("retry/a.zarr", "10");
    let values = sample(&[20, 20], 5);
    save_object(
        &target,
        &values,
        f64_meta(&[20, 20], &[10, 10]),
        &SaveOptions::default(),
    )
    .unwrap();
    assert_eq!(proxy.answered.load(Ordering::SeqCst), 3);
    assert_eq!(bits(&load(&target).unwrap()), bits(&values));
}

#[test]
fn a_save_through_503_forever_fails_naming_the_object_and_the_status() {
    let Some(server) = s3_server_or_skip("the 503 retry test") else {
        return;
    };
    let proxy = Proxy::start(&server, usize::MAX);
    let target = proxy.target("retry/b.zarr", "3");
    let e = save_object(
        &target,
        &sample(&[4, 4], 6),
        f64_meta(&[4, 4], &[4, 4]),
        &SaveOptions::default(),
    )
    .unwrap_err();
    let named = e.path().map(|p| p.to_string_lossy().into_owned());
    let array = target.name().to_string_lossy().into_owned();
    assert!(
        named
            .as_deref()
            .is_some_and(|p| p.starts_with(&format!("{array}/"))),
        "the error names an object of the array: {e}"
    );
    assert!(
        e.to_string().contains("503"),
        "the error names the status: {e}"
    );
    // The first request and two retries, as AWS_MAX_ATTEMPTS allows.
    assert_eq!(usize::MAX - proxy.left.load(Ordering::SeqCst), 3);
}
